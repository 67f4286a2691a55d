"""Start-up checks: each impossible or broken setting stops the process with one line.

`worker`, `beat` and `run` call `preflight()` before starting Celery; `doctor` runs the
same checks and more, and reports every result instead of stopping at the first.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

import redis
from kombu.connection import Connection

from keepa_deals.config import Settings, mask_url_password
from keepa_deals.errors import KeepaDealsError
from keepa_deals.infra.checks import Check
from keepa_deals.infra.redis_check import check_eviction
from keepa_deals.infra.redis_client import DIAGNOSTICS, redis_client
from keepa_deals.keepa.deal_query import load_deal_query
from keepa_deals.store import open_from_settings


class PreflightFailed(KeepaDealsError):
    def __init__(self, check: Check) -> None:
        super().__init__(f"{check.name}: {check.detail}")
        self.check = check


def check_deal_query(settings: Settings) -> Check:
    try:
        load_deal_query(settings.deal_query_path)
    except KeepaDealsError as exc:
        return Check("deal query", "fail", str(exc))
    return Check("deal query", "ok", str(settings.deal_query_path))


def broker_problem(redis_url: str) -> str | None:
    """Why Celery's broker (kombu) cannot use a URL redis-py takes, or None.

    The two read REDIS_URL differently: kombu fails with a TypeError on a query
    parameter redis-py passes on (`?password=`, `?db=`), and has no `unix://`
    transport. The worker would die on it with a traceback, after every other check
    had passed. Parsing makes no connection."""
    try:
        Connection(redis_url).release()  # type: ignore[no-untyped-call]
    except Exception as exc:  # kombu's parse errors are TypeError, KeyError, ValueError
        return f"{type(exc).__name__}: {exc}"
    return None


def check_redis(settings: Settings) -> Check:
    where = mask_url_password(settings.redis_url)
    problem = broker_problem(settings.redis_url)
    if problem is not None:
        return Check(
            "redis",
            "fail",
            f"REDIS_URL {where}: Celery's broker cannot use it ({mask_url_password(problem)}); "
            "write it as redis://[:PASSWORD@]HOST:PORT/DB, or rediss:// for TLS",
        )
    client = redis_client(settings.redis_url, DIAGNOSTICS)
    try:
        client.ping()
        eviction = check_eviction(client)
    except redis.RedisError as exc:
        return Check("redis", "fail", f"unreachable at {where}: {exc}")
    finally:
        client.close()
    return Check("redis", eviction.outcome, f"{where}: {eviction.detail}")


def check_database(settings: Settings) -> Check:
    """Creates or migrates the database: every process that writes runs this first.
    Opening it checks that this user may write it (store.connection.check_writable):
    SQLite would open it read-only without a word."""
    try:
        conn = open_from_settings(settings)
    except KeepaDealsError as exc:
        return Check("database", "fail", str(exc))  # names the file and what to do
    except (sqlite3.Error, OSError) as exc:
        return Check("database", "fail", f"{settings.deals_db_path}: {exc}")
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
    finally:
        conn.close()
    return Check("database", "ok", f"{settings.deals_db_path} (schema v{version}, {mode})")


STARTUP_CHECKS: tuple[Callable[[Settings], Check], ...] = (
    check_deal_query,
    check_redis,
    check_database,
)


def preflight(settings: Settings) -> list[Check]:
    """Run the start-up checks; raise PreflightFailed at the first failure."""
    done = []
    for run in STARTUP_CHECKS:
        check = run(settings)
        if check.outcome == "fail":
            raise PreflightFailed(check)
        done.append(check)
    return done
