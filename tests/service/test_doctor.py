"""doctor's story-23 verdicts, from a real deals database and a real redis-server in
specific states, and `doctor --wait-s` on a virtual clock.

Times are service seconds passed in as `now_s` (no wall clock), except the lock TTLs,
which Redis keeps on wall time as the service does.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner

from keepa_deals import doctor
from keepa_deals.cli import main
from keepa_deals.config import Settings
from keepa_deals.doctor import (
    LOCK_CONFIRM_S,
    STALL_AFTER_S,
    check_locks,
    check_progress,
    run_doctor,
    run_overdue_after_s,
)
from keepa_deals.preflight import Check
from keepa_deals.redis_keys import RedisKeys
from keepa_deals.redis_server import RedisServerProcess
from keepa_deals.service_status import db_status
from keepa_deals.store import (
    transaction,
    upsert_deal,
)
from tests.service.conftest import add_run, deal

NOW_S = 1_768_089_600  # 2026-01-11 00:00 UTC
HOUR_S = 3600
OWNER = "worker-1:4242:0a1b2c3d"
KEY = "doctortestkey0123456789abcdef"


# --- a deals database in a given state ---------------------------------------------


@pytest.fixture
def settings(redis_server: RedisServerProcess, prefix: str, db_path: Path) -> Settings:
    # Defaults otherwise: UPSERT_EVERY_S=900, BACKFILL_EVERY_S=60, LOCK_TTL_S=60,
    # HARVEST_MAX_RUN_S=600, TASK_SOFT_TIME_LIMIT_S=900, TASK_TIME_LIMIT_S=1020.
    return Settings.from_mapping(
        {"REDIS_URL": redis_server.url, "KEEPA_REDIS_PREFIX": prefix, "DEALS_DB_PATH": str(db_path)}
    )


def add_deal(conn: sqlite3.Connection, asin: str, first_seen_s: int) -> None:
    with transaction(conn):
        upsert_deal(conn, deal(asin, first_seen_s))


def every(start_s: int, step_s: int, count: int) -> list[int]:
    return [start_s + i * step_s for i in range(count)]


# --- check_progress -----------------------------------------------------------------


def test_healthy_runs_and_deals_pass(settings: Settings, conn: sqlite3.Connection) -> None:
    for i, first_seen in enumerate((NOW_S - 200, NOW_S - 3 * HOUR_S, NOW_S - 20 * HOUR_S)):
        add_deal(conn, f"00000000{i:02d}", first_seen)
    add_run(conn, "upsert", NOW_S - 300, NOW_S - 290, "done", deals_seen=4, deals_accepted=1)
    add_run(conn, "upsert", NOW_S - 300 - 900, NOW_S - 1190, "done", deals_rejected=2)
    for started in every(NOW_S - 600, 60, 10):
        add_run(conn, "backfill", started, started + 20, "tokens", deals_rejected=1)
    check = check_progress(settings, now_s=NOW_S)
    assert check == Check(
        "progress",
        "ok",
        "last run 60s ago; last progress 40s ago; 24h: 12 runs evaluated 13 deals "
        "(1 accepted, 12 rejected); 0.12 new deals/hour; 0 pending",
    )


def test_stalled_with_tokens_available_fails(settings: Settings, conn: sqlite3.Connection) -> None:
    """The predecessor's 20 green hours: runs keep happening, stop for reasons other than
    tokens, and evaluate nothing."""
    add_run(conn, "upsert", NOW_S - 4 * HOUR_S - 10, NOW_S - 4 * HOUR_S, "done", deals_accepted=1)
    for started in every(NOW_S - 4 * HOUR_S + 60, 600, 24):
        add_run(conn, "backfill", started, started + 5, "keepa_error")
    for started in (NOW_S - 2 * HOUR_S + 30, NOW_S - HOUR_S + 30):
        add_run(conn, "upsert", started, started + 5, "tokens", deals_seen=3, deals_deferred=3)
    check = check_progress(settings, now_s=NOW_S)
    assert check == Check(
        "progress",
        "fail",
        "nothing evaluated for 4.0h although runs stopped for other reasons than tokens: "
        "keepa_error x24, tokens x2",
    )


def test_stalled_only_for_tokens_is_explained_not_failed(
    settings: Settings, conn: sqlite3.Connection
) -> None:
    add_run(conn, "upsert", NOW_S - 4 * HOUR_S - 10, NOW_S - 4 * HOUR_S, "done", deals_accepted=1)
    for started in every(NOW_S - 4 * HOUR_S + 60, 600, 24):
        add_run(conn, "backfill", started, started + 5, "tokens", deals_deferred=2)
    for started in every(NOW_S - 3 * HOUR_S, 3600, 3):
        add_run(conn, "upsert", started, started + 5, "http_429")
    add_run(conn, "upsert", NOW_S - 1800, NOW_S - 1795, "keepa_timeout")
    check = check_progress(settings, now_s=NOW_S)
    assert check == Check(
        "progress",
        "warn",
        "nothing evaluated for 4.0h, explained by the token budget: runs since stopped "
        "tokens x24, http_429 x3, keepa_timeout x1",
    )


def test_as_many_other_stops_as_token_stops_is_not_explained_by_tokens(
    settings: Settings, conn: sqlite3.Connection
) -> None:
    add_run(conn, "upsert", NOW_S - 4 * HOUR_S - 10, NOW_S - 4 * HOUR_S, "done", deals_accepted=1)
    for i, started in enumerate(every(NOW_S - 3 * HOUR_S, 600, 18)):
        add_run(conn, "backfill", started, started + 5, "tokens" if i % 2 else "abandoned")
    check = check_progress(settings, now_s=NOW_S)
    assert check.outcome == "fail"
    assert check.detail.endswith("than tokens: abandoned x9, tokens x9")


def test_only_rejecting_is_progress(settings: Settings, conn: sqlite3.Connection) -> None:
    """Rejections leave deals.last_evaluated_s alone: judged by it, this healthy service
    would have failed after 3 h."""
    add_deal(conn, "0000000001", NOW_S - 5 * HOUR_S)
    for started in every(NOW_S - 5 * HOUR_S, 600, 30):
        add_run(conn, "backfill", started, started + 30, "tokens", deals_peeked=4, deals_rejected=4)
    assert db_status(settings.deals_db_path, NOW_S)["newest_evaluation_age_s"] > STALL_AFTER_S
    check = check_progress(settings, now_s=NOW_S)
    assert check.outcome == "ok", check
    assert check.detail.startswith("last run 600s ago; last progress 570s ago; 24h: 30 runs ")
    assert "evaluated 120 deals (0 accepted, 120 rejected)" in check.detail


def test_a_quiet_market_is_healthy(settings: Settings, conn: sqlite3.Connection) -> None:
    """No new deal for hours, runs finishing `done` with nothing to do: caught up."""
    add_deal(conn, "0000000001", NOW_S - 6 * HOUR_S)
    for started in every(NOW_S - 5 * HOUR_S, 900, 20):
        add_run(conn, "upsert", started, started + 3, "done", tokens_discovery=1)
    check = check_progress(settings, now_s=NOW_S)
    assert check == Check(
        "progress",
        "ok",
        "last run 900s ago; last progress 897s ago; 24h: 20 runs evaluated 0 deals "
        "(0 accepted, 0 rejected); 0.04 new deals/hour; 0 pending",
    )


def test_no_run_started_recently_fails(settings: Settings, conn: sqlite3.Connection) -> None:
    # Allowed: twice the longest schedule (UPSERT_EVERY_S=900) plus a minute.
    add_run(conn, "backfill", NOW_S - 1861, NOW_S - 1850, "done")
    assert check_progress(settings, now_s=NOW_S) == Check(
        "progress", "fail", "no run started for 1861s: beat or the worker is down"
    )
    assert check_progress(settings, now_s=NOW_S - 1).outcome == "ok"


def test_runs_that_never_evaluated_anything_fail_after_the_stall_time(
    settings: Settings, conn: sqlite3.Connection
) -> None:
    for started in every(NOW_S - STALL_AFTER_S, 600, 18):
        add_run(conn, "backfill", started, started + 2, "keepa_key")
    # Exactly STALL_AFTER_S since the first run: not yet.
    assert check_progress(settings, now_s=NOW_S).outcome == "ok"
    assert check_progress(settings, now_s=NOW_S + 1) == Check(
        "progress",
        "fail",
        "nothing evaluated ever for 3.0h although runs stopped for other reasons than tokens: "
        "keepa_key x18",
    )


def test_no_run_recorded_yet_is_a_warning(settings: Settings, conn: sqlite3.Connection) -> None:
    assert check_progress(settings, now_s=NOW_S) == Check(
        "progress", "warn", "no run recorded yet (is beat running?)"
    )


def test_a_missing_database_fails(settings: Settings) -> None:
    assert check_progress(settings, now_s=NOW_S) == Check("progress", "fail", "database missing")


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


# --- doctor --wait-s on a virtual clock ------------------------------------------


class FakeTime:
    def __init__(self) -> None:
        self.now_s = 0.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now_s

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now_s += seconds


class Flaky:
    """A workers check that fails `failures` times, each attempt taking `takes_s` (as a
    Celery ping does), then passes."""

    def __init__(self, clock: FakeTime, failures: int, takes_s: float = 2.0) -> None:
        self.clock, self.failures, self.takes_s = clock, failures, takes_s
        self.calls = 0
        self.__name__ = "check_workers"

    def __call__(self, settings: Settings) -> Check:
        self.calls += 1
        self.clock.now_s += self.takes_s
        if self.calls <= self.failures:
            return Check("workers", "fail", "no Celery worker answered a ping within 2 s")
        return Check("workers", "ok", "1 alive: celery@host")


class Counting:
    def __init__(self, check: Check) -> None:
        self.check, self.calls = check, 0
        self.__name__ = f"check_{check.name}"

    def __call__(self, settings: Settings) -> Check:
        self.calls += 1
        return self.check


def test_wait_retries_failing_checks_until_they_pass(settings: Settings) -> None:
    clock = FakeTime()
    fine = Counting(Check("redis", "ok", "fine"))
    flaky = Flaky(clock, failures=2)
    retries: list[tuple[list[str], float]] = []
    checks = run_doctor(
        settings,
        wait_s=60,
        checks=(fine, flaky),
        monotonic_s=clock.monotonic,
        sleep=clock.sleep,
        on_retry=lambda failing, left_s: retries.append(([c.name for c in failing], left_s)),
    )
    assert [c.outcome for c in checks] == ["ok", "ok"]
    assert (fine.calls, flaky.calls) == (1, 3)  # only the failing check is retried
    assert clock.sleeps == [2.0, 2.0]
    assert retries == [(["workers"], 58.0), (["workers"], 54.0)]


def test_wait_stops_at_its_deadline(settings: Settings) -> None:
    clock = FakeTime()
    flaky = Flaky(clock, failures=1000)
    checks = run_doctor(
        settings, wait_s=7, checks=(flaky,), monotonic_s=clock.monotonic, sleep=clock.sleep
    )
    assert checks == [Check("workers", "fail", "no Celery worker answered a ping within 2 s")]
    # t=2 fail, sleep 2; t=6 fail, sleep the 1 s left; t=9 fail, past the deadline.
    assert clock.sleeps == [2.0, 1.0]
    assert flaky.calls == 3
    assert clock.now_s == 9.0  # wait_s plus one round of checks, no more


def test_without_wait_each_check_runs_once(settings: Settings) -> None:
    clock = FakeTime()
    flaky = Flaky(clock, failures=1)
    checks = run_doctor(settings, checks=(flaky,), monotonic_s=clock.monotonic, sleep=clock.sleep)
    assert [c.outcome for c in checks] == ["fail"]
    assert (flaky.calls, clock.sleeps) == (1, [])


def test_a_check_that_raises_is_a_failed_check_and_retried(settings: Settings) -> None:
    clock = FakeTime()
    calls: list[int] = []

    def check_exploding(s: Settings) -> Check:
        calls.append(1)
        raise RuntimeError("boom")

    checks = run_doctor(
        settings,
        wait_s=3,
        checks=(check_exploding,),
        monotonic_s=clock.monotonic,
        sleep=clock.sleep,
    )
    assert checks == [Check("exploding", "fail", "RuntimeError('boom')")]
    assert len(calls) == 3 and clock.sleeps == [2.0, 1.0]


def test_a_negative_wait_is_refused(settings: Settings) -> None:
    with pytest.raises(ValueError, match="wait_s must not be negative"):
        run_doctor(settings, wait_s=-1, checks=())


@pytest.fixture
def cli_env(
    tmp_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> Iterator[FakeTime]:
    monkeypatch.chdir(tmp_path)  # no stray .env
    monkeypatch.setenv("REDIS_URL", settings.redis_url)
    monkeypatch.setenv("KEEPA_REDIS_PREFIX", settings.redis_prefix)
    monkeypatch.setenv("DEALS_DB_PATH", str(settings.deals_db_path))
    monkeypatch.setenv("KEEPA_API_KEY", KEY)
    clock = FakeTime()
    monkeypatch.setattr(doctor, "_monotonic_s", clock.monotonic)
    monkeypatch.setattr(doctor, "_sleep", clock.sleep)
    monkeypatch.setattr(
        doctor, "DOCTOR_CHECKS", (Counting(Check("redis", "ok", "fine")), Flaky(clock, 1))
    )
    yield clock


def test_cli_wait_s_reports_its_waits_and_passes(cli_env: FakeTime) -> None:
    result = CliRunner().invoke(main, ["doctor", "--wait-s", "30"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "[ok  ] redis: fine",
        "[ok  ] workers: 1 alive: celery@host",
    ]
    assert result.stderr.splitlines() == ["doctor: waiting for workers (28s left)"]
    assert cli_env.sleeps == [2.0]
    assert KEY not in result.output


def test_cli_wait_s_with_json_keeps_stdout_json(cli_env: FakeTime) -> None:
    result = CliRunner().invoke(main, ["doctor", "--json", "--wait-s", "30"])
    assert result.exit_code == 0
    assert [c["outcome"] for c in json.loads(result.stdout)] == ["ok", "ok"]


def test_cli_without_wait_fails_on_the_first_answer(cli_env: FakeTime) -> None:
    result = CliRunner().invoke(main, ["doctor"])
    assert result.exit_code == 1
    assert "[FAIL] workers: no Celery worker answered a ping within 2 s" in result.stdout
    assert result.stderr == "" and cli_env.sleeps == []


def test_cli_refuses_a_negative_wait(cli_env: FakeTime) -> None:
    result = CliRunner().invoke(main, ["doctor", "--wait-s", "-5"])
    assert result.exit_code == 2 and "--wait-s" in result.output
