"""`keepa-deals doctor`: every check, each with a verdict and the reason.

Liveness is not health (story 23): besides Redis, the database, Keepa and the workers,
it judges progress: runs happening on schedule, deals arriving, and no lock held by a
run that has stopped moving.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

import redis

from keepa_deals.config import Settings
from keepa_deals.errors import KeepaDealsError, KeepaError
from keepa_deals.keepa_api import KeepaClient
from keepa_deals.preflight import Check, check_deal_query, check_redis
from keepa_deals.service_status import db_status, lock_status, token_status
from keepa_deals.store import check_schema, connect_readonly
from keepa_deals.timebase import now_s as service_now_s

# No new deal for this long while tokens were available is the predecessor's stall.
STALL_AFTER_S = 3 * 3600


def check_database_readonly(settings: Settings) -> Check:
    path = settings.deals_db_path
    if not path.exists():
        return Check("database", "fail", f"{path} does not exist: run `keepa-deals migrate`")
    try:
        conn = connect_readonly(path)
        try:
            check_schema(conn)
            version = conn.execute("PRAGMA user_version").fetchone()[0]
        finally:
            conn.close()
    except (KeepaDealsError, sqlite3.Error) as exc:
        return Check("database", "fail", f"{path}: {exc}")
    return Check("database", "ok", f"{path} (schema v{version})")


def check_keepa(settings: Settings) -> Check:
    if not settings.keepa_api_key:
        return Check("keepa", "warn", "no KEEPA_API_KEY: only the simulator can be used")
    client = KeepaClient.from_settings(settings)
    try:
        env = client.token().envelope
    except KeepaError as exc:
        return Check("keepa", "fail", f"{settings.keepa_api_url}: {exc}")
    finally:
        client.session.close()
    return Check(
        "keepa",
        "ok",
        f"{settings.keepa_api_url}: key accepted, {env.tokens_left} tokens, "
        f"{env.refill_rate}/min (a free /token call)",
    )


def check_workers(settings: Settings) -> Check:
    from keepa_deals.celery_app import make_app  # noqa: PLC0415

    app = make_app(settings)
    try:
        replies = app.control.inspect(timeout=2.0).ping() or {}
    except (OSError, redis.RedisError) as exc:
        return Check("workers", "fail", f"cannot ask the workers: {exc}")
    finally:
        app.close()
    if not replies:
        return Check("workers", "fail", "no Celery worker answered a ping within 2 s")
    return Check("workers", "ok", f"{len(replies)} alive: {', '.join(sorted(replies))}")


def check_tokens(settings: Settings) -> Check:
    client = redis.Redis.from_url(settings.redis_url, socket_timeout=3)
    try:
        st = token_status(settings, client)
    except redis.RedisError as exc:
        return Check("tokens", "fail", f"Redis: {exc}")
    finally:
        client.close()
    if st.get("state") != "ok":
        return Check("tokens", "warn", st.get("detail", "no token state yet"))
    waits = [
        f"{name} waits {c['wait_s']}s ({c['reason']})"
        for name, c in st["classes"].items()
        if c["waiting"]
    ]
    detail = f"balance {st['balance']} of {st['capacity']}, rate {st['rate_per_min']}/min"
    if st["recharge"]["active"]:
        detail += f", recharging toward {st['recharge']['target']}"
    return Check("tokens", "ok", "; ".join([detail, *waits]))


def check_progress(settings: Settings, now_s: float | None = None) -> Check:
    now_s = service_now_s(settings) if now_s is None else now_s
    db = db_status(settings.deals_db_path, now_s)
    if db.get("state") != "ok":
        return Check("progress", "fail", f"database {db.get('state')}")
    runs = db["last_runs"]
    if not runs:
        return Check("progress", "warn", "no run recorded yet (is beat running?)")
    latest = max(r["started_s"] for r in runs)
    expected = 2 * max(settings.upsert_every_s, settings.backfill_every_s) + 60
    if now_s - latest > expected:
        return Check(
            "progress",
            "fail",
            f"no run started for {now_s - latest:.0f}s: beat or the worker is down",
        )
    age = db["newest_evaluation_age_s"]
    with_tokens = [r for r in runs if r["stop_reason"] not in ("tokens", "http_429")]
    if age is not None and age > STALL_AFTER_S and with_tokens:
        return Check(
            "progress",
            "fail",
            f"nothing evaluated for {age / 3600:.1f}h although runs stopped for other reasons "
            f"than tokens ({with_tokens[0]['stop_reason']})",
        )
    return Check(
        "progress",
        "ok",
        f"last run {now_s - latest:.0f}s ago; {db['deals_per_hour_24h']} new deals/hour; "
        f"{db['pending']} pending",
    )


def check_locks(settings: Settings) -> Check:
    client = redis.Redis.from_url(settings.redis_url, socket_timeout=3)
    try:
        locks = lock_status(settings, client)
    except redis.RedisError as exc:
        return Check("locks", "fail", f"Redis: {exc}")
    finally:
        client.close()
    held = {task: h for task, h in locks.items() if h}
    if not held:
        return Check("locks", "ok", "none held")
    now_s = service_now_s(settings)
    db = db_status(settings.deals_db_path, now_s)
    stuck = []
    for task in held:
        open_runs = [r for r in db.get("last_runs", []) if r["task"] == task and not r["ended_s"]]
        if open_runs and now_s - open_runs[0]["started_s"] > settings.task_time_limit_s:
            stuck.append(task)
    detail = ", ".join(f"{t} by {h['owner']}" for t, h in held.items())
    if stuck:
        return Check("locks", "fail", f"held with no run finishing: {', '.join(stuck)} ({detail})")
    return Check("locks", "ok", f"held: {detail}")


DOCTOR_CHECKS: tuple[Callable[[Settings], Check], ...] = (
    check_deal_query,
    check_redis,
    check_database_readonly,
    check_keepa,
    check_workers,
    check_tokens,
    check_locks,
    check_progress,
)


def run_doctor(settings: Settings) -> list[Check]:
    out = []
    for run in DOCTOR_CHECKS:
        try:
            out.append(run(settings))
        except Exception as exc:
            out.append(Check(run.__name__.removeprefix("check_"), "fail", repr(exc)))
    return out


def summary(checks: list[Check]) -> dict[str, Any]:
    return {"ok": all(c.outcome != "fail" for c in checks), "checks": [c.__dict__ for c in checks]}
