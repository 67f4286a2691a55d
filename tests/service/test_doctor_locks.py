"""doctor's lock verdict against a real redis-server: a lock must belong to a run that
moves, and expire (lock TTLs are wall time in Redis, as the service keeps them)."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from keepa_deals.config import Settings
from keepa_deals.infra.checks import Check
from keepa_deals.infra.redis_keys import RedisKeys
from keepa_deals.service.doctor import (
    LOCK_CONFIRM_S,
    check_locks,
    run_overdue_after_s,
)
from tests.support.doctor_state import NOW_S, OWNER, every
from tests.support.service_rows import add_run

# --- check_locks --------------------------------------------------------------------


class Sleeps:
    """A sleep that records its waits and can change the world meanwhile."""

    def __init__(self, meanwhile: Callable[[], object] | None = None) -> None:
        self.waits: list[float] = []
        self.meanwhile = meanwhile

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        if self.meanwhile is not None:
            self.meanwhile()


def hold(
    client: redis.Redis, prefix: str, task: str, owner: str = OWNER, ttl_ms: int = 60_000
) -> None:
    client.set(RedisKeys(prefix).task_lock(task), owner, px=ttl_ms)


def test_no_lock_held_is_ok(settings: Settings, conn: sqlite3.Connection) -> None:
    sleeps = Sleeps()
    assert check_locks(settings, now_s=NOW_S, sleep=sleeps) == Check("locks", "ok", "none held")
    assert sleeps.waits == []


def test_a_lock_held_by_a_running_run_is_ok(
    settings: Settings, conn: sqlite3.Connection, redis_client: redis.Redis, prefix: str
) -> None:
    add_run(conn, "backfill", NOW_S - 30, None, None, deals_peeked=5)
    hold(redis_client, prefix, "backfill")
    sleeps = Sleeps()
    assert check_locks(settings, now_s=NOW_S, sleep=sleeps) == Check(
        "locks", "ok", f"held: backfill by {OWNER}"
    )
    assert sleeps.waits == []


def test_an_open_run_past_its_bound_is_flagged_before_the_task_time_limit(
    settings: Settings, conn: sqlite3.Connection, redis_client: redis.Redis, prefix: str
) -> None:
    # HARVEST_MAX_RUN_S 600 + one call at worst (20 inline + 4 x (5 + 40) + 5.25 backoff),
    # below TASK_SOFT_TIME_LIMIT_S 900, plus two lock TTLs.
    bound_s = run_overdue_after_s(settings)
    assert bound_s == 600 + 20 + 4 * 45 + 5.25 + 2 * 60 == 925.25
    assert bound_s < settings.task_time_limit_s
    run_id = add_run(conn, "backfill", NOW_S - 926, None, None, deals_peeked=5)
    hold(redis_client, prefix, "backfill")
    assert check_locks(settings, now_s=NOW_S - 1, sleep=Sleeps()).outcome == "ok"
    assert check_locks(settings, now_s=NOW_S, sleep=Sleeps()) == Check(
        "locks",
        "fail",
        f"held with nothing moving: backfill: run {run_id} open for 926s, past 925s "
        f"(it stops itself at HARVEST_MAX_RUN_S=600) (backfill by {OWNER})",
    )


def test_on_scaled_time_the_http_timeouts_count_scaled(db_path: Path) -> None:
    """Against a simulator at 60x, one wall second of HTTP is a service minute: the
    bound is then the soft time limit's."""
    settings = Settings.from_mapping(
        {
            "DEALS_DB_PATH": str(db_path),
            "KEEPA_TIME_SCALE": "60",
            "KEEPA_TIME_ORIGIN_S": str(NOW_S),
            "KEEPA_API_URL": "http://127.0.0.1:9",
        }
    )
    assert run_overdue_after_s(settings) == 900 + 2 * 60


def test_a_lock_with_no_open_run_is_flagged_after_a_second_look(
    settings: Settings, conn: sqlite3.Connection, redis_client: redis.Redis, prefix: str
) -> None:
    add_run(conn, "backfill", NOW_S - 620, NOW_S - 600, "done")
    hold(redis_client, prefix, "backfill")
    sleeps = Sleeps()
    assert check_locks(settings, now_s=NOW_S, sleep=sleeps) == Check(
        "locks",
        "fail",
        f"held with nothing moving: backfill: no open run (last run ended 605s ago) "
        f"(backfill by {OWNER})",
    )
    assert sleeps.waits == [LOCK_CONFIRM_S]


def test_a_lock_of_a_task_that_never_ran_is_flagged(
    settings: Settings, conn: sqlite3.Connection, redis_client: redis.Redis, prefix: str
) -> None:
    hold(redis_client, prefix, "upsert")
    assert check_locks(settings, now_s=NOW_S, sleep=Sleeps()) == Check(
        "locks",
        "fail",
        f"held with nothing moving: upsert: no open run (no run recorded) (upsert by {OWNER})",
    )


def test_a_run_starting_during_the_second_look_is_ok(
    settings: Settings, conn: sqlite3.Connection, redis_client: redis.Redis, prefix: str
) -> None:
    """A snapshot between taking the lock and writing the run row is a run starting."""
    add_run(conn, "upsert", NOW_S - 1000, NOW_S - 990, "done")
    hold(redis_client, prefix, "upsert")
    sleeps = Sleeps(lambda: add_run(conn, "upsert", NOW_S + 1, None, None))
    assert check_locks(settings, now_s=NOW_S, sleep=sleeps) == Check(
        "locks", "ok", f"held: upsert by {OWNER}"
    )
    assert sleeps.waits == [LOCK_CONFIRM_S]


@pytest.mark.parametrize("change", ["taken anew", "released"])
def test_a_lock_that_changes_hands_during_the_second_look_is_ok(
    change: str,
    settings: Settings,
    conn: sqlite3.Connection,
    redis_client: redis.Redis,
    prefix: str,
) -> None:
    add_run(conn, "backfill", NOW_S - 620, NOW_S - 600, "done")
    hold(redis_client, prefix, "backfill")

    def meanwhile() -> None:
        if change == "released":
            redis_client.delete(RedisKeys(prefix).task_lock("backfill"))
        else:
            hold(redis_client, prefix, "backfill", owner="worker-2:77:ffff0000")

    assert check_locks(settings, now_s=NOW_S, sleep=Sleeps(meanwhile)).outcome == "ok"


def test_a_lock_just_after_its_run_ended_is_not_suspect(
    settings: Settings, conn: sqlite3.Connection, redis_client: redis.Redis, prefix: str
) -> None:
    """Releasing follows closing the run row: within two lock TTLs of the end, no look."""
    add_run(conn, "backfill", NOW_S - 150, NOW_S - 120, "done")
    hold(redis_client, prefix, "backfill")
    sleeps = Sleeps()
    assert check_locks(settings, now_s=NOW_S, sleep=sleeps).outcome == "ok"
    assert sleeps.waits == []
    assert check_locks(settings, now_s=NOW_S + 1, sleep=sleeps).outcome == "fail"
    assert sleeps.waits == [LOCK_CONFIRM_S]


def test_a_lock_without_expiry_fails_at_once(
    settings: Settings, conn: sqlite3.Connection, redis_client: redis.Redis, prefix: str
) -> None:
    add_run(conn, "upsert", NOW_S - 30, None, None)
    redis_client.set(RedisKeys(prefix).task_lock("upsert"), OWNER)  # no TTL
    sleeps = Sleeps()
    assert check_locks(settings, now_s=NOW_S, sleep=sleeps) == Check(
        "locks",
        "fail",
        f"held with nothing moving: upsert: the lock has no expiry, it will never free "
        f"itself (upsert by {OWNER})",
    )
    assert sleeps.waits == []


def test_a_late_heartbeat_is_a_warning(
    settings: Settings, conn: sqlite3.Connection, redis_client: redis.Redis, prefix: str
) -> None:
    """Renewed every TTL/3, a live lock keeps at least 2/3 of its 60 s; under 20 s left,
    two renewals were missed. It frees itself: a warning, not a failure."""
    add_run(conn, "backfill", NOW_S - 30, None, None)
    hold(redis_client, prefix, "backfill", ttl_ms=15_000)
    check = check_locks(settings, now_s=NOW_S, sleep=Sleeps())
    assert check.outcome == "warn"
    assert re.fullmatch(
        r"heartbeat late for backfill \(1[45]\.\ds left\): its holder died or stalls; the "
        rf"lock frees itself when its TTL runs out \(backfill by {OWNER}\)",
        check.detail,
    ), check.detail


def test_a_sparse_task_s_open_run_is_found_behind_many_runs_of_the_other(
    settings: Settings, conn: sqlite3.Connection, redis_client: redis.Redis, prefix: str
) -> None:
    """The upserter's open run is older than the backfiller's last ten runs."""
    add_run(conn, "upsert", NOW_S - 500, None, None, deals_peeked=40)
    for started in every(NOW_S - 480, 40, 12):
        add_run(conn, "backfill", started, started + 10, "done")
    hold(redis_client, prefix, "upsert")
    sleeps = Sleeps()
    assert check_locks(settings, now_s=NOW_S, sleep=sleeps) == Check(
        "locks", "ok", f"held: upsert by {OWNER}"
    )
    assert sleeps.waits == []


def test_unreachable_redis_fails_the_lock_check(db_path: Path) -> None:
    settings = Settings.from_mapping(
        {"REDIS_URL": "redis://127.0.0.1:9/0", "DEALS_DB_PATH": str(db_path)}
    )
    check = check_locks(settings, now_s=NOW_S, sleep=Sleeps())
    assert check.name == "locks" and check.outcome == "fail"
    # Unknown, never "none held": a lock that could not be read may be held.
    assert check.detail.startswith("unknown: Redis unreachable at redis://127.0.0.1:9/0: ")
