"""What `keepa-deals status` and the Diagnostics report: progress, not just liveness.

Dashboards can stay green for 20 hours while nothing is ingested
(failure mode: green but idle). So this reports the newest deal's age, the watermark's age, deals
per hour and why each run stopped, beside the token state and the locks.

Progress is judged from what the runs record, not from the deals table: a rejection
does not touch `deals.last_evaluated_s`, and a quiet market adds no deal rows, yet both
are a healthy evaluator at work. A run made progress when it evaluated anything
(accepted or rejected) or ended `done` (caught up, nothing left to do).
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import redis

from keepa_deals.config import Settings, mask_url_password
from keepa_deals.infra.redis_client import CLI, redis_client
from keepa_deals.infra.redis_failure import describe
from keepa_deals.infra.redis_keys import RedisKeys
from keepa_deals.locking.lock import read_holder
from keepa_deals.service.timebase import now_s as service_now_s
from keepa_deals.service.timebase import service_clock
from keepa_deals.store import (
    Run,
    connect_readonly,
    get_cursor,
    get_watermark,
    recent_runs,
    updated_at,
)
from keepa_deals.store.rows import from_row
from keepa_deals.tokens import TokenManager

TASKS = ("upsert", "backfill")
# Stop reasons the token budget explains: the run stopped rather than wait for tokens.
TOKEN_STOP_REASONS = ("tokens", "http_429")
# One SQL predicate for "this run made progress" (see the module docstring).
PROGRESS_SQL = (
    "(deals_peeked + deals_committed + deals_accepted + deals_rejected > 0"
    " OR stop_reason IS 'done')"
)
# When a run's progress happened: its end, or its start while it is still open (its
# counters are written with each batch, but without a time).
_RUN_TIME_SQL = "COALESCE(ended_s, started_s)"
_SUMS_SQL = (
    "COUNT(*), COALESCE(SUM(deals_seen), 0),"
    " COALESCE(SUM(deals_accepted + deals_rejected), 0), COALESCE(SUM(deals_accepted), 0),"
    " COALESCE(SUM(deals_rejected), 0), COALESCE(SUM(deals_deferred), 0),"
    " COALESCE(SUM(tokens_discovery + tokens_peek + tokens_commit), 0)"
)
_REASONS_SQL = "COALESCE(stop_reason, 'running'), COUNT(*)"
_BY_REASON_SQL = "GROUP BY 1 ORDER BY 2 DESC, 1"


def token_status(settings: Settings, client: redis.Redis) -> dict[str, Any]:
    """The TokenManager's view; reads Redis only (never Keepa)."""
    return (
        TokenManager.from_settings(settings, redis=client, clock=service_clock(settings))
        .status()
        .as_dict()
    )


def lock_status(settings: Settings, client: redis.Redis) -> dict[str, Any]:
    """Each task's lock: None when free, else its owner, TTL left and whether it expires.

    `expires` False means the key has no TTL at all: no keepa-deals heartbeat sets such
    a lock, and it would never free itself (failure mode "stuck locks"'s 10-day locks, worse)."""
    keys = RedisKeys(settings.redis_prefix)
    out: dict[str, Any] = {}
    for task in TASKS:
        key = keys.task_lock(task)
        holder = read_holder(client, key, task)
        if holder is None:
            out[task] = None
            continue
        # read_holder clamps PTTL's -1 ("no expiry") to 0; ask again only then.
        expires = holder.ttl_left_s > 0 or int(client.pttl(key)) != -1
        out[task] = {**asdict(holder), "expires": expires}
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
    last_progress_s = conn.execute(
        f"SELECT MAX({_RUN_TIME_SQL}) FROM runs WHERE {PROGRESS_SQL}"  # noqa: S608 - constants
    ).fetchone()[0]
    first_run_s = conn.execute("SELECT MIN(started_s) FROM runs").fetchone()[0]
    runs_24h = _runs_summary(conn, "started_s >= :since", {"since": day_ago})
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
        "first_run_s": first_run_s,
        "last_progress_s": last_progress_s,
        "last_progress_age_s": _age(now_s, last_progress_s),
        "evaluated_per_hour_24h": round(runs_24h["deals_evaluated"] / 24, 2),
        "runs_24h": runs_24h,
        "runs_since_progress": _since_progress(conn, last_progress_s),
        "tasks": {task: _task_runs(conn, task) for task in TASKS},
    }


def _task_runs(conn: sqlite3.Connection, task: str) -> dict[str, Any]:
    """One task's newest open run and when its runs last started and ended, read per
    task: the last ten runs overall can all be the backfiller's (every 60 s) while the
    upserter (every 900 s) holds its lock."""
    open_row = conn.execute(
        "SELECT * FROM runs WHERE task = ? AND ended_s IS NULL ORDER BY started_s DESC, id DESC"
        " LIMIT 1",
        (task,),
    ).fetchone()
    last_started_s, last_ended_s = conn.execute(
        "SELECT MAX(started_s), MAX(ended_s) FROM runs WHERE task = ?", (task,)
    ).fetchone()
    return {
        "open_run": None if open_row is None else asdict(from_row(Run, open_row)),
        "last_started_s": last_started_s,
        "last_ended_s": last_ended_s,
    }


def _runs_summary(conn: sqlite3.Connection, where: str, params: dict[str, Any]) -> dict[str, Any]:
    """Counts over the runs matching `where`: how many, why they stopped, what they did."""
    # `where` is one of this module's constant predicates; the values are parameters.
    sums_sql = f"SELECT {_SUMS_SQL} FROM runs WHERE {where}"  # noqa: S608
    reasons_sql = f"SELECT {_REASONS_SQL} FROM runs WHERE {where} {_BY_REASON_SQL}"  # noqa: S608
    sums = conn.execute(sums_sql, params).fetchone()
    reasons = conn.execute(reasons_sql, params).fetchall()
    names = ("runs", "deals_seen", "deals_evaluated", "deals_accepted", "deals_rejected")
    out: dict[str, Any] = {name: int(v) for name, v in zip(names, sums[:5], strict=True)}
    out["deals_deferred"], out["tokens_total"] = int(sums[5]), int(sums[6])
    out["stop_reasons"] = {str(reason): int(n) for reason, n in reasons}
    return out


def _since_progress(conn: sqlite3.Connection, last_progress_s: int | None) -> dict[str, Any]:
    """The runs that made no progress since the last one that did (all of them when none
    ever did), split by whether the token budget explains their stop."""
    where = f"NOT {PROGRESS_SQL}"
    params: dict[str, Any] = {}
    if last_progress_s is not None:
        where += f" AND {_RUN_TIME_SQL} >= :since"
        params["since"] = last_progress_s
    out = _runs_summary(conn, where, params)
    reasons: dict[str, int] = out["stop_reasons"]
    out["token_stops"] = sum(n for r, n in reasons.items() if r in TOKEN_STOP_REASONS)
    out["other_stops"] = sum(
        n for r, n in reasons.items() if r not in TOKEN_STOP_REASONS and r != "running"
    )
    out["open"] = reasons.get("running", 0)
    return out


def gather(settings: Settings, client: redis.Redis | None = None) -> dict[str, Any]:
    """Everything, each part independently: one broken part never hides the others.

    A part that cannot be read is `{"state": "unknown", "cause": ..., "error": ...}`
    (see redis_failure), never an empty one: the locks then read unknown for each task,
    keyed by task as when Redis answers, and never free."""
    out: dict[str, Any] = {"settings": {"KEEPA_API_URL": settings.keepa_api_url}}
    own = client is None
    client = client or redis_client(settings.redis_url, CLI)
    where = mask_url_password(settings.redis_url)
    try:
        try:
            out["tokens"] = token_status(settings, client)
        except Exception as exc:  # a report part that fails is reported, whatever failed
            out["tokens"] = describe(exc, where, script="token script").as_part()
        try:
            out["locks"] = lock_status(settings, client)
        except Exception as exc:
            unknown = describe(exc, where).as_part()
            out["locks"] = {task: dict(unknown) for task in TASKS}
        try:
            out["database"] = db_status(settings.deals_db_path, service_now_s(settings))
        except sqlite3.Error as exc:
            out["database"] = {"state": "error", "error": str(exc)}
    finally:
        if own:
            client.close()
    return out
