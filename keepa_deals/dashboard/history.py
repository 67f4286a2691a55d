"""A deal's price and sales-rank history, as stored when it was accepted (schema v4's
`deal_history`): the detail page's chart costs no token."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from keepa_deals.dashboard.deals import iso

CHART_DAYS = 90


def price_history(
    conn: sqlite3.Connection, asin: str, domain: int, *, now_s: float
) -> dict[str, Any] | None:
    """{"used": [[t_s, cents], ...], "rank": [[t_s, rank], ...], "captured_s": ...} for the
    last CHART_DAYS, or None when the deal was accepted before history was stored."""
    row = conn.execute(
        "SELECT points_json, captured_s FROM deal_history WHERE asin = ? AND domain = ?",
        (asin, domain),
    ).fetchone()
    if row is None:
        return None
    since_s = int(now_s) - CHART_DAYS * 86_400
    points: dict[str, list[list[int]]] = json.loads(row["points_json"])
    return {
        "captured_s": row["captured_s"],
        "captured": iso(row["captured_s"]),
        **{name: [p for p in series if p[0] >= since_s] for name, series in points.items()},
    }
