"""What the Health and Rejections pages summarise, read from the runs and rejections
tables: per-hour series for the last day, rejection reasons with their token cost."""

from __future__ import annotations

import sqlite3
from typing import Any

from keepa_deals.dashboard.deals import iso

HOUR_S = 3600
TASKS = ("upsert", "backfill")
STAGES = ("discovery", "peek", "commit")


def rejection_summary(conn: sqlite3.Connection, hours: int, now_s: float) -> dict[str, Any]:
    """Rejections made in the last `hours`, by stage and reason, with the tokens they
    cost (summed over every rejection of the same ASIN at the same price)."""
    since_s = int(now_s) - hours * HOUR_S
    rows = conn.execute(
        "SELECT stage, reason, COUNT(*) AS deals, COALESCE(SUM(times), 0) AS times,"
        " COALESCE(SUM(tokens_spent), 0) AS tokens FROM rejections WHERE rejected_s >= ?"
        " GROUP BY stage, reason ORDER BY deals DESC, stage, reason",
        (since_s,),
    ).fetchall()
    reasons = [dict(r) for r in rows]
    return {
        "hours": hours,
        "since_s": since_s,
        "since": iso(since_s),
        "reasons": reasons,
        "total_deals": sum(r["deals"] for r in reasons),
        "total_tokens": sum(r["tokens"] for r in reasons),
    }


def runs(conn: sqlite3.Connection, task: str | None, limit: int) -> list[dict[str, Any]]:
    where, args = ("WHERE task = ?", (task, limit)) if task else ("", (limit,))
    rows = conn.execute(
        f"SELECT * FROM runs {where} ORDER BY started_s DESC, id DESC LIMIT ?",  # noqa: S608
        args,
    ).fetchall()
    out = []
    for r in rows:
        row = dict(r)
        row["tokens_total"] = row["tokens_discovery"] + row["tokens_peek"] + row["tokens_commit"]
        row["started"], row["ended"] = iso(row["started_s"]), iso(row["ended_s"])
        out.append(row)
    return out


def hourly(conn: sqlite3.Connection, now_s: float, hours: int = 24) -> dict[str, Any]:
    """Per-hour series of the last `hours`, oldest first, by the runs' start hour:
    tokens by task (the token class) and by stage, deals accepted, runs stopped by a 429."""
    end_s = (int(now_s) // HOUR_S + 1) * HOUR_S
    start_s = end_s - hours * HOUR_S
    slots = [start_s + i * HOUR_S for i in range(hours)]
    series: dict[str, list[int]] = {
        **{f"tokens_{t}": [0] * hours for t in TASKS},
        **{f"tokens_{s}": [0] * hours for s in STAGES},
        "accepted": [0] * hours,
        "http_429": [0] * hours,
    }
    rows = conn.execute(
        "SELECT (started_s - ?) / 3600 AS slot, task, SUM(tokens_discovery) AS discovery,"
        " SUM(tokens_peek) AS peek, SUM(tokens_commit) AS commit_,"
        " SUM(deals_accepted) AS accepted,"
        " SUM(CASE WHEN stop_reason = 'http_429' THEN 1 ELSE 0 END) AS http_429"
        " FROM runs WHERE started_s >= ? AND started_s < ? GROUP BY slot, task",
        (start_s, start_s, end_s),
    ).fetchall()
    for r in rows:
        i = int(r["slot"])
        total = int(r["discovery"] + r["peek"] + r["commit_"])
        if r["task"] in TASKS:
            series[f"tokens_{r['task']}"][i] += total
        series["tokens_discovery"][i] += int(r["discovery"])
        series["tokens_peek"][i] += int(r["peek"])
        series["tokens_commit"][i] += int(r["commit_"])
        series["accepted"][i] += int(r["accepted"])
        series["http_429"][i] += int(r["http_429"])
    return {"hour_s": slots, **series}
