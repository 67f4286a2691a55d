"""The figures `status`, doctor and the Diagnostics report, from a real deals database
and a real redis-server: newest deal age, watermark age, deals per hour, and progress as
the runs record it (failure mode: green but idle)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import redis

from keepa_deals.config import Settings
from keepa_deals.infra.redis_keys import RedisKeys
from keepa_deals.infra.redis_server import RedisServerProcess
from keepa_deals.service.status import db_status, gather, lock_status
from keepa_deals.store import (
    advance_watermark,
    transaction,
    upsert_deal,
)
from tests.support.service_rows import add_run, deal

NOW_S = 1_768_089_600  # 2026-01-11 00:00 UTC


def test_an_empty_database_reports_no_figures(conn: sqlite3.Connection, db_path: Path) -> None:
    db = db_status(db_path, NOW_S)
    assert db["state"] == "ok"
    assert db["newest_deal_age_s"] is None
    assert db["watermark_age_s"] is None
    assert db["deals_per_hour_24h"] == 0.0
    assert db["last_progress_s"] is None and db["last_progress_age_s"] is None
    assert db["first_run_s"] is None
    assert db["runs_24h"] == {
        "runs": 0,
        "deals_seen": 0,
        "deals_evaluated": 0,
        "deals_accepted": 0,
        "deals_rejected": 0,
        "deals_deferred": 0,
        "tokens_total": 0,
        "stop_reasons": {},
    }
    assert db["tasks"] == {
        "upsert": {"open_run": None, "last_started_s": None, "last_ended_s": None},
        "backfill": {"open_run": None, "last_started_s": None, "last_ended_s": None},
    }


def test_a_missing_database_says_so(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.db"
    assert db_status(path, NOW_S) == {"state": "missing", "path": str(path)}


def test_progress_figures_are_exact(conn: sqlite3.Connection, db_path: Path) -> None:
    with transaction(conn):
        upsert_deal(conn, deal("000000000A", NOW_S - 600))  # the newest
        upsert_deal(conn, deal("000000000B", NOW_S - 5 * 3600))
        upsert_deal(conn, deal("000000000C", NOW_S - 2 * 86_400))  # outside the 24 h
        advance_watermark(conn, NOW_S - 900, NOW_S - 800)
    add_run(
        conn,
        "upsert",
        NOW_S - 4000,
        NOW_S - 3990,
        "done",
        deals_seen=5,
        deals_accepted=1,
        deals_rejected=3,
        tokens_discovery=10,
        tokens_peek=4,
        tokens_commit=12,
    )
    add_run(conn, "backfill", NOW_S - 1000, NOW_S - 980, "keepa_error")
    add_run(conn, "backfill", NOW_S - 500, NOW_S - 450, "tokens", deals_seen=2, deals_deferred=2)
    add_run(conn, "backfill", NOW_S - 90_000, NOW_S - 89_990, "done", deals_accepted=7)
    open_id = add_run(conn, "backfill", NOW_S - 30, None, None)

    db = db_status(db_path, NOW_S)

    assert db["newest_deal_age_s"] == 600.0
    assert db["watermark_s"] == NOW_S - 900
    assert db["watermark_age_s"] == 900.0
    assert db["watermark_updated_age_s"] == 800.0
    assert db["deals_per_hour_24h"] == round(2 / 24, 2) == 0.08
    assert db["deals_by_status"] == {"accepted": 3}
    # The last run that made progress is the upserter's `done` run; the open run has
    # evaluated nothing yet, the failed and the token-stopped ones nothing at all.
    assert db["first_run_s"] == NOW_S - 90_000
    assert db["last_progress_s"] == NOW_S - 3990
    assert db["last_progress_age_s"] == 3990.0
    assert db["runs_24h"] == {
        "runs": 4,
        "deals_seen": 7,
        "deals_evaluated": 4,
        "deals_accepted": 1,
        "deals_rejected": 3,
        "deals_deferred": 2,
        "tokens_total": 26,
        "stop_reasons": {"done": 1, "keepa_error": 1, "running": 1, "tokens": 1},
    }
    assert db["evaluated_per_hour_24h"] == round(4 / 24, 2)
    since = db["runs_since_progress"]
    assert since["runs"] == 3
    assert since["stop_reasons"] == {"keepa_error": 1, "running": 1, "tokens": 1}
    assert (since["token_stops"], since["other_stops"], since["open"]) == (1, 1, 1)
    assert db["tasks"]["upsert"] == {
        "open_run": None,
        "last_started_s": NOW_S - 4000,
        "last_ended_s": NOW_S - 3990,
    }
    backfill = db["tasks"]["backfill"]
    assert backfill["open_run"]["id"] == open_id
    assert backfill["open_run"]["started_s"] == NOW_S - 30
    assert (backfill["last_started_s"], backfill["last_ended_s"]) == (NOW_S - 30, NOW_S - 450)


def test_a_rejecting_run_is_progress_though_no_deal_row_moves(
    conn: sqlite3.Connection, db_path: Path
) -> None:
    """A rejection does not touch deals.last_evaluated_s; the run's counts still show the
    evaluator at work."""
    with transaction(conn):
        upsert_deal(conn, deal("000000000A", NOW_S - 6 * 3600))
    add_run(conn, "backfill", NOW_S - 120, NOW_S - 100, "tokens", deals_rejected=4)
    db = db_status(db_path, NOW_S)
    assert db["newest_evaluation_age_s"] == 6 * 3600.0
    assert db["last_progress_s"] == NOW_S - 100
    assert db["runs_since_progress"]["runs"] == 0


def test_a_done_run_with_nothing_new_is_progress(conn: sqlite3.Connection, db_path: Path) -> None:
    add_run(conn, "upsert", NOW_S - 70, NOW_S - 60, "done")
    add_run(conn, "backfill", NOW_S - 50, NOW_S - 40, "keepa_unreachable")
    db = db_status(db_path, NOW_S)
    assert db["last_progress_s"] == NOW_S - 60
    assert db["runs_since_progress"]["stop_reasons"] == {"keepa_unreachable": 1}


def test_an_open_run_with_counts_made_progress_at_its_start(
    conn: sqlite3.Connection, db_path: Path
) -> None:
    add_run(conn, "backfill", NOW_S - 300, None, None, deals_peeked=3)
    assert db_status(db_path, NOW_S)["last_progress_s"] == NOW_S - 300


def test_without_any_progress_every_run_counts_as_idle(
    conn: sqlite3.Connection, db_path: Path
) -> None:
    for i in range(3):
        add_run(conn, "backfill", NOW_S - 1000 + i * 60, NOW_S - 990 + i * 60, "keepa_key")
    add_run(conn, "upsert", NOW_S - 500, NOW_S - 490, "http_429")
    db = db_status(db_path, NOW_S)
    assert db["last_progress_s"] is None
    assert db["runs_since_progress"]["stop_reasons"] == {"keepa_key": 3, "http_429": 1}
    assert db["runs_since_progress"]["token_stops"] == 1
    assert db["runs_since_progress"]["other_stops"] == 3


def settings_for(redis_url: str, prefix: str, db_path: Path) -> Settings:
    return Settings.from_mapping(
        {"REDIS_URL": redis_url, "KEEPA_REDIS_PREFIX": prefix, "DEALS_DB_PATH": str(db_path)}
    )


def test_lock_status_reports_owner_ttl_and_expiry(
    redis_server: RedisServerProcess, redis_client: redis.Redis, prefix: str, db_path: Path
) -> None:
    settings = settings_for(redis_server.url, prefix, db_path)
    keys = RedisKeys(prefix)
    assert lock_status(settings, redis_client) == {"upsert": None, "backfill": None}
    redis_client.set(keys.task_lock("upsert"), "host-a:11:aa", px=60_000)
    redis_client.set(keys.task_lock("backfill"), "host-b:22:bb")  # no TTL at all
    locks = lock_status(settings, redis_client)
    upsert: dict[str, Any] = locks["upsert"]
    assert upsert["owner"] == "host-a:11:aa" and upsert["expires"] is True
    assert 59.0 < upsert["ttl_left_s"] <= 60.0
    assert locks["backfill"] == {
        "task": "backfill",
        "owner": "host-b:22:bb",
        "ttl_left_s": 0.0,
        "expires": False,
    }


def test_gather_reports_each_part_when_redis_is_unreachable(
    conn: sqlite3.Connection, db_path: Path
) -> None:
    settings = settings_for("redis://127.0.0.1:9/0", "t:", db_path)
    report = gather(settings)
    assert report["tokens"]["state"] == "unknown"
    assert report["tokens"]["cause"] == "unreachable"
    assert report["tokens"]["error"].startswith("Redis unreachable at redis://127.0.0.1:9/0: ")
    # Unknown for each task, never a None (free) nor an object walked as task names.
    assert set(report["locks"]) == {"upsert", "backfill"}
    for task in ("upsert", "backfill"):
        assert report["locks"][task]["state"] == "unknown"
        assert report["locks"][task]["cause"] == "unreachable"
    assert report["database"]["state"] == "ok"
