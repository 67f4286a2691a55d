"""Diagnostics/ as an operator runs it: run_suite.sh and every script it calls, as
subprocesses, against a temporary deals database, the test redis-server (under the
test's own prefix), the Keepa simulator over HTTP on wall time and, for the healthy
case, a real Celery worker answering pings.

Checked: exit 0 and a summary when healthy; a non-zero exit naming the failing check
when not; and the test API key in no output at all.
"""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from keepa_deals.config import Settings
from keepa_deals.infra.redis_keys import RedisKeys
from keepa_deals.infra.redis_server import RedisServerProcess, free_port
from keepa_deals.keepa.client import KeepaClient
from keepa_deals.keepa_sim import KeepaSimulator
from keepa_deals.service.celery_app import make_app
from keepa_deals.store import RunStats, finish_run, open_store, start_run
from keepa_deals.tokens import TokenManager
from tests.e2e.conftest import stop_group
from tests.support.locked_redis import LockedRedis

ROOT = Path(__file__).resolve().parents[2]
DIAGNOSTICS = ROOT / "Diagnostics"
KEY = "diagtestkey5e1f0c9a7b3d2e4f6a8b"
SCRIPTS = ("check_pause_status.py", "token_status.py", "check_progress.py")
SUITE_NAMES = ("doctor", "recharge", "tokens vs Keepa", "progress", "token logic")


@dataclass
class Diag:
    tmp: Path
    env: dict[str, str]

    @property
    def settings(self) -> Settings:
        return Settings.from_env(self.env, dotenv_path=self.tmp / "no.env")

    def run(self, *command: str, timeout_s: float = 90) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            list(command),
            env=self.env,
            cwd=self.tmp,  # no stray .env
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )

    def suite(self) -> subprocess.CompletedProcess[str]:
        return self.run("bash", str(DIAGNOSTICS / "run_suite.sh"))

    def script(self, name: str) -> subprocess.CompletedProcess[str]:
        return self.run(sys.executable, str(DIAGNOSTICS / name))


def diag_env(tmp: Path, redis_url: str, prefix: str, keepa_url: str) -> Diag:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KEEPA_", "REDIS_"))}
    env.update(
        {
            "REDIS_URL": redis_url,
            "KEEPA_REDIS_PREFIX": prefix,
            "DEALS_DB_PATH": str(tmp / "var" / "deals.db"),
            "KEEPA_API_KEY": KEY,
            "KEEPA_API_URL": keepa_url,
            "KEEPA_PYTHON": sys.executable,
            "PYTHONUNBUFFERED": "1",
        }
    )
    return Diag(tmp, env)


def add_run(
    conn: sqlite3.Connection, task: str, started_s: int, ended_s: int, reason: str, **counts: int
) -> None:
    finish_run(conn, start_run(conn, task, started_s), RunStats(**counts), reason, ended_s)


def healthy_runs(db_path: Path) -> None:
    """A service that has just been working: both tasks ran, evaluating deals."""
    now = int(time.time())
    conn = open_store(db_path, busy_timeout_s=10)
    try:
        add_run(conn, "upsert", now - 300, now - 290, "done", deals_seen=3, deals_accepted=1)
        add_run(conn, "backfill", now - 60, now - 40, "tokens", deals_rejected=2)
    finally:
        conn.close()


def outputs(*results: subprocess.CompletedProcess[str]) -> str:
    return "\n".join(r.stdout + r.stderr for r in results)


def summary(result: subprocess.CompletedProcess[str]) -> dict[str, str]:
    """The suite's summary block: check name to verdict."""
    block = result.stdout.split("=== summary\n", 1)[1]
    verdicts = {}
    for line in block.splitlines():
        match = re.fullmatch(r"(.+?)\s+(ok|UNHEALTHY)", line)
        assert match, f"not a summary line: {line!r}"
        verdicts[match.group(1)] = match.group(2)
    return verdicts


@pytest.fixture
def wall_sim() -> Iterator[KeepaSimulator]:
    sim = KeepaSimulator(seed=5, refill_rate=5, clock="wall", catalogue_size=4000).start()
    try:
        yield sim
    finally:
        sim.stop()


@pytest.fixture
def worker(
    tmp_path: Path, redis_server: RedisServerProcess, prefix: str, wall_sim: KeepaSimulator
) -> Iterator[Diag]:
    """A real `keepa-deals worker` (no beat: it runs nothing), answering pings."""
    diag = diag_env(tmp_path, redis_server.url, prefix, wall_sim.url)
    app = make_app(diag.settings)
    log_path = tmp_path / "worker.log"
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "keepa_deals", "worker"],
            env=diag.env,
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the pool goes with it
        )
    try:
        deadline_s = time.monotonic() + 60
        while not (app.control.inspect(timeout=0.5).ping() or {}):
            if proc.poll() is not None or time.monotonic() > deadline_s:
                pytest.fail(f"the worker did not answer a ping:\n{log_path.read_text()[-4000:]}")
        yield diag
    finally:
        app.close()
        stop_group(proc, timeout_s=20)


@pytest.mark.slow
def test_a_healthy_service_passes_every_diagnostic(worker: Diag, redis_client: redis.Redis) -> None:
    settings = worker.settings
    healthy_runs(settings.deals_db_path)
    # The token state as the service keeps it: synced from the simulator's free /token
    # (a full bucket, so Keepa's count and ours cannot drift apart by a refill tick).
    keepa = KeepaClient.from_settings(settings)
    try:
        assert TokenManager.from_settings(settings, redis=redis_client, keepa=keepa).sync("test")
    finally:
        keepa.session.close()

    suite = worker.suite()
    assert suite.returncode == 0, outputs(suite)
    assert summary(suite) == dict.fromkeys(SUITE_NAMES, "ok")
    out = suite.stdout
    for name in SUITE_NAMES:
        assert f"=== {name}\n" in out
    assert re.search(r"^\[ok  \] workers: 1 alive: \S+@\S+$", out, re.M), out
    assert re.search(r"^\[ok  \] keepa: .* key accepted, 300 tokens, 5/min", out, re.M), out
    assert "[ok  ] tokens: balance 300 of 300, rate 5/min" in out
    assert "[ok  ] locks: none held" in out
    assert re.search(r"^\[ok  \] progress: last run \d+s ago; last progress \d+s ago", out, re.M)
    assert "OK   recharge is off" in out
    assert "OK   estimate 300 vs Keepa 300 (drift +0, 0 tokens in flight)" in out
    assert "OK   progress: last run" in out and "OK   locks: none held" in out
    assert "OK   no grant at a balance of 0 (threshold)" in out and "FAIL" not in out
    # The scratch keys of the token-logic check are gone; the service's are untouched.
    assert not list(redis_client.scan_iter(f"{settings.redis_prefix}diagnostic-*"))
    assert redis_client.exists(RedisKeys(settings.redis_prefix).token_state)

    each = [worker.script(name) for name in SCRIPTS]
    each.append(worker.run(sys.executable, str(DIAGNOSTICS / "test_token_manager_logic.py")))
    for result in each:
        assert result.returncode == 0, outputs(result)
    assert KEY not in outputs(suite, *each)


def test_unreachable_redis_makes_the_suite_unhealthy_and_names_it(
    tmp_path: Path, wall_sim: KeepaSimulator
) -> None:
    diag = diag_env(tmp_path, f"redis://127.0.0.1:{free_port()}/0", "diag:", wall_sim.url)
    healthy_runs(diag.settings.deals_db_path)
    suite = diag.suite()
    assert suite.returncode == 1, outputs(suite)
    verdicts = summary(suite)
    assert verdicts == {
        "doctor": "UNHEALTHY",
        "recharge": "UNHEALTHY",
        "tokens vs Keepa": "UNHEALTHY",
        "progress": "UNHEALTHY",
        "token logic": "UNHEALTHY",
    }
    out = suite.stdout
    assert re.search(r"^\[FAIL\] redis: unreachable at redis://127\.0\.0\.1:\d+/0", out, re.M)
    assert "[FAIL] workers:" in out and "[FAIL] locks: unknown: Redis unreachable at" in out
    assert "[ok  ] database:" in out  # what does work is still reported
    assert re.search(r"^FAIL recharge unknown: Redis unreachable at redis://", out, re.M)
    assert re.search(r"^FAIL tokens unknown: Redis unreachable at redis://", out, re.M)
    assert re.search(r"^FAIL Redis unreachable at redis://", out, re.M)  # token logic
    assert "FAIL locks: unknown: Redis unreachable at" in out
    each = [diag.script(name) for name in SCRIPTS]
    assert [r.returncode for r in each] == [1, 1, 1]
    # A verdict, never a crash: no script ends in a traceback.
    assert "Traceback" not in outputs(suite, *each)
    assert KEY not in outputs(suite, *each)


def test_a_refused_key_is_named_and_never_printed(
    tmp_path: Path, redis_server: RedisServerProcess, prefix: str
) -> None:
    with KeepaSimulator(seed=5, clock="wall", accept_any_key=False, catalogue_size=4000) as sim:
        sim.start()
        diag = diag_env(tmp_path, redis_server.url, prefix, sim.url)
        healthy_runs(diag.settings.deals_db_path)
        suite = diag.suite()
        tokens = diag.script("token_status.py")
    assert suite.returncode == 1
    assert re.search(r"^\[FAIL\] keepa: http://127\.0\.0\.1:\d+: ", suite.stdout, re.M)
    assert tokens.returncode == 1 and tokens.stdout.startswith("FAIL keepa /token: ")
    assert summary(suite)["tokens vs Keepa"] == "UNHEALTHY"
    assert KEY not in outputs(suite, tokens)


def test_check_progress_fails_on_a_stall_and_on_a_lock_that_never_expires(
    tmp_path: Path, redis_server: RedisServerProcess, redis_client: redis.Redis, prefix: str
) -> None:
    """Failure mode "green but idle" from the script's side: runs keep failing for hours with
    nothing evaluated, and a lock with no expiry holds the upserter off."""
    diag = diag_env(tmp_path, redis_server.url, prefix, "http://127.0.0.1:9")
    now = int(time.time())
    conn = open_store(diag.settings.deals_db_path, busy_timeout_s=10)
    try:
        add_run(conn, "upsert", now - 4 * 3600 - 10, now - 4 * 3600, "done", deals_accepted=1)
        for i in range(24):
            started = now - 4 * 3600 + 60 + 600 * i
            add_run(conn, "backfill", started, started + 5, "keepa_error")
    finally:
        conn.close()
    result = diag.script("check_progress.py")
    assert result.returncode == 1
    assert (
        "FAIL progress: nothing evaluated for 4.0h although runs stopped for other reasons "
        "than tokens: keepa_error x24"
    ) in result.stdout
    assert "OK   locks: none held" in result.stdout
    assert "last progress 4.0h ago; 24 h: 25 runs, 1 evaluated (0.04/hour)" in result.stdout

    redis_client.set(RedisKeys(prefix).task_lock("upsert"), "old-host:1:deadbeef")  # no TTL
    result = diag.script("check_progress.py")
    assert result.returncode == 1
    assert (
        "FAIL locks: held with nothing moving: upsert: the lock has no expiry, it will never "
        "free itself (upsert by old-host:1:deadbeef)"
    ) in result.stdout
    assert KEY not in result.stdout + result.stderr


ALL_SCRIPTS = (*SCRIPTS, "test_token_manager_logic.py")


def test_a_refused_redis_password_reads_unknown_in_every_script(
    tmp_path: Path, locked_redis: LockedRedis
) -> None:
    """Nothing in Redis can be read: no script may call a lock free or recharge off."""
    wrong = "not-the-password-91c4"
    diag = diag_env(tmp_path, locked_redis.url(wrong), "diag:", "http://127.0.0.1:9")
    healthy_runs(diag.settings.deals_db_path)
    where = f"redis://:***@127.0.0.1:{locked_redis.server.port}/0"
    reason = f"Redis unreachable at {where}: invalid username-password pair"
    results = {name: diag.script(name) for name in ALL_SCRIPTS}
    assert {name: r.returncode for name, r in results.items()} == dict.fromkeys(ALL_SCRIPTS, 1)
    out = {name: r.stdout for name, r in results.items()}
    assert out["check_pause_status.py"].startswith(f"FAIL recharge unknown: {reason}")
    assert out["token_status.py"].startswith(f"FAIL tokens unknown: {reason}")
    assert f"FAIL locks: unknown: {reason}" in out["check_progress.py"]
    assert out["test_token_manager_logic.py"].startswith(f"FAIL {reason}")
    every = outputs(*results.values())
    for lie in ("free", "none held", "recharge is off"):
        assert lie not in every
    assert "Traceback" not in every
    assert wrong not in every and locked_redis.password not in every


def test_a_token_script_error_is_named_as_one_not_as_redis_unreachable(
    tmp_path: Path, redis_server: RedisServerProcess, redis_client: redis.Redis, prefix: str
) -> None:
    """Redis answers, but the token scripts fail (here WRONGTYPE on the state's key)."""
    diag = diag_env(tmp_path, redis_server.url, prefix, "http://127.0.0.1:9")
    redis_client.set(RedisKeys(prefix).token_state, "not a hash")
    pause, tokens = diag.script("check_pause_status.py"), diag.script("token_status.py")
    assert (pause.returncode, tokens.returncode) == (1, 1)
    assert pause.stdout.startswith("FAIL recharge unknown: token script error: WRONGTYPE ")
    assert tokens.stdout.startswith("FAIL tokens unknown: token script error: WRONGTYPE ")
    assert "unreachable" not in outputs(pause, tokens)
    assert "Traceback" not in outputs(pause, tokens)
