"""`doctor --wait-s` on a virtual clock: failing checks are retried until they pass or
the deadline comes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from keepa_deals.cli import main
from keepa_deals.config import Settings
from keepa_deals.infra.checks import Check
from keepa_deals.service import doctor
from keepa_deals.service.doctor import (
    run_doctor,
)
from tests.support.doctor_state import KEY

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
