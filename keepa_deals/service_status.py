"""What `keepa-deals status` and the Diagnostics report: progress, not just liveness.

The predecessor's dashboards were green for 20 hours while nothing was ingested
(story 23). So this reports the newest deal's age, the watermark's age, deals per hour
and why each run stopped, beside the token state and the locks.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import redis

from keepa_deals.config import Settings
from keepa_deals.locking.lock import read_holder
from keepa_deals.redis_keys import RedisKeys
from keepa_deals.store import connect_readonly, get_cursor, get_watermark, recent_runs, updated_at
from keepa_deals.timebase import now_s as service_now_s
from keepa_deals.timebase import service_clock
from keepa_deals.tokens import TokenManager

TASKS = ("upsert", "backfill")


def token_status(settings: Settings, client: redis.Redis) -> dict[str, Any]:
    """The TokenManager's view; reads Redis only (never Keepa)."""
    return TokenManager.from_settings(
        settings, redis=client, clock=service_clock(settings)
    ).status()


def lock_status(settings: Settings, client: redis.Redis) -> dict[str, Any]:
    keys = RedisKeys(settings.redis_prefix)
    out: dict[str, Any] = {}
    for task in TASKS:
        holder = read_holder(client, keys.task_lock(task), task)
        out[task] = None if holder is None else asdict(holder)
    return out


def db_status(db_path: Path, now_s: float | None = None) -> dict[str, Any]:
    """Progress from the deals database, read-only (a dashboard's view)."""
    now_s = time.time() if now_s is None else now_s
    if not db_path.exists():
        return {"state": "missing", "path": str(db_path)}
    conn = connect_readonly(db_path)
    try:
        return _db_status(conn, now_s)
    finally:
        conn.close()


def _age(now_s: float, then_s: int | None) -> float | None:
    return None if then_s is None else max(0.0, now_s - then_s)


def _db_status(conn: sqlite3.Connection, now_s: float) -> dict[str, Any]:
    watermark = get_watermark(conn)
    newest = conn.execute("SELECT MAX(first_seen_s) FROM deals").fetchone()[0]
    newest_eval = conn.execute("SELECT MAX(last_evaluated_s) FROM deals").fetchone()[0]
    day_ago = int(now_s) - 86_400
    new_24h = conn.execute("SELECT COUNT(*) FROM deals WHERE first_seen_s >= ?", (day_ago,))
    new_deals_24h = int(new_24h.fetchone()[0])
    by_status = dict(conn.execute("SELECT status, COUNT(*) FROM deals GROUP BY status").fetchall())
    pending = int(conn.execute("SELECT COUNT(*) FROM pending").fetchone()[0])
    cursor = get_cursor(conn)
    runs = []
    for run in recent_runs(conn, limit=10):
        row = asdict(run)
        row["tokens_total"] = run.tokens_discovery + run.tokens_peek + run.tokens_commit
        runs.append(row)
    return {
        "state": "ok",
        "watermark_s": watermark,
        "watermark_age_s": _age(now_s, watermark),
        "watermark_updated_age_s": _age(now_s, updated_at(conn, "watermark_s")),
        "newest_deal_age_s": _age(now_s, newest),
        "newest_evaluation_age_s": _age(now_s, newest_eval),
        "deals_by_status": by_status,
        "deals_per_hour_24h": round(new_deals_24h / 24, 2),
        "pending": pending,
        "backfill_cursor": {"page": cursor.page, "passes": cursor.passes},
        "last_runs": runs,
    }


def gather(settings: Settings, client: redis.Redis | None = None) -> dict[str, Any]:
    """Everything, each part independently: one broken part never hides the others."""
    out: dict[str, Any] = {"settings": {"KEEPA_API_URL": settings.keepa_api_url}}
    own = client is None
    client = client or redis.Redis.from_url(settings.redis_url, socket_timeout=5)
    try:
        parts: dict[str, Callable[[Settings, redis.Redis], dict[str, Any]]] = {
            "tokens": token_status,
            "locks": lock_status,
        }
        for name, part in parts.items():
            try:
                out[name] = part(settings, client)
            except redis.RedisError as exc:
                out[name] = {"state": "error", "error": f"Redis unreachable: {exc}"}
        try:
            out["database"] = db_status(settings.deals_db_path, service_now_s(settings))
        except sqlite3.Error as exc:
            out["database"] = {"state": "error", "error": str(exc)}
    finally:
        if own:
            client.close()
    return out
