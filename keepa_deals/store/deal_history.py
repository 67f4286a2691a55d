"""`deal_history`: a compact price and sales-rank history per accepted deal (schema v4).

Stage 2 pays for a product's history to judge it; keeping the part a person looks at
(the used price and the sales rank over the last 90 days) lets the dashboard chart a
deal without spending a token. Bounded by construction: one row per product, replaced
at each commit, at most MAX_POINTS points a series (about 10 KB at most; the table's
CHECK refuses more than 16 KiB).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping

from keepa_deals.keepa.keepa_time import KEEPA_EPOCH_OFFSET_MIN

WINDOW_S = 90 * 86_400
MAX_POINTS = 200
# Keepa csv indexes: 2 = USED price (the buy side), 3 = SALES rank.
SERIES = {"used": 2, "rank": 3}

Points = dict[str, list[list[int]]]


def _series(raw: object, since_s: int) -> list[list[int]]:
    """[[unix_s, value], ...] of a Keepa csv series (pairs of Keepa minute, value) from
    `since_s` on, the value in force at `since_s` first; -1 (no offer, no rank) is a gap
    and dropped. At most MAX_POINTS: the last point of each of MAX_POINTS equal slices
    of the window."""
    if not isinstance(raw, list) or len(raw) < 2:
        return []
    points: list[list[int]] = []
    before: list[int] | None = None
    for i in range(0, len(raw) - 1, 2):
        minute, value = raw[i], raw[i + 1]
        if not isinstance(minute, int) or not isinstance(value, int) or isinstance(value, bool):
            continue
        at_s = (minute + KEEPA_EPOCH_OFFSET_MIN) * 60
        if value < 0:
            continue
        if at_s < since_s:
            before = [since_s, value]
        else:
            points.append([at_s, value])
    if before is not None:
        points.insert(0, before)
    if len(points) <= MAX_POINTS:
        return points
    span_s = max(1, points[-1][0] - since_s + 1)
    slices: dict[int, list[int]] = {}
    for point in points:
        slices[min(MAX_POINTS - 1, (point[0] - since_s) * MAX_POINTS // span_s)] = point
    return [slices[k] for k in sorted(slices)]


def compact_history(product: Mapping[str, object], now_s: int) -> Points:
    """The chart's series from a product with history (stage 2's reply)."""
    csv = product.get("csv")
    since_s = now_s - WINDOW_S
    out: Points = {}
    for name, index in SERIES.items():
        raw = csv[index] if isinstance(csv, list) and index < len(csv) else None
        out[name] = _series(raw, since_s)
    return out


def save_history(
    conn: sqlite3.Connection, asin: str, domain: int, points: Points, now_s: int
) -> None:
    conn.execute(
        "INSERT INTO deal_history (asin, domain, captured_s, points_json) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (asin, domain) DO UPDATE SET captured_s = excluded.captured_s,"
        " points_json = excluded.points_json",
        (asin, domain, now_s, json.dumps(points, separators=(",", ":"))),
    )
