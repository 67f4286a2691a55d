"""The service as its users run it: worker and beat subprocesses harvesting from the
simulator, `doctor` judging it healthy, and surviving a kill -9 mid-run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from tests.e2e.conftest import KEY, LOCK_TTL_S, SCALE, Stack, wait_for

pytestmark = pytest.mark.slow


def _finished_runs(stack: Stack, task: str) -> int:
    rows = stack.query("SELECT COUNT(*) FROM runs WHERE task = ? AND ended_s IS NOT NULL", task)
    return int(rows[0][0]) if rows else 0  # type: ignore[call-overload]


def _count(stack: Stack, sql: str) -> int:
    rows = stack.query(sql)
    return int(rows[0][0]) if rows and rows[0][0] is not None else 0  # type: ignore[call-overload]


def test_worker_and_beat_harvest_and_doctor_passes(stack: Stack) -> None:
    stack.start("worker", "worker")
    stack.start("beat", "beat")
    wait_for(
        lambda: _finished_runs(stack, "upsert") >= 1 and _finished_runs(stack, "backfill") >= 3,
        timeout_s=90,
        what="both tasks ran",
        stack=stack,
    )
    wait_for(
        lambda: (
            _count(stack, "SELECT COUNT(*) FROM deals") > 0
            and _count(stack, "SELECT int_value FROM system_state WHERE key = 'watermark_s'") > 0
        ),
        timeout_s=60,
        what="deals stored and the watermark advanced",
        stack=stack,
    )
    doctor = subprocess.run(
        [sys.executable, "-m", "keepa_deals", "doctor"],
        check=False,
        env=stack.env,
        cwd=stack.tmp,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr + stack.logs()
    assert KEY not in doctor.stdout + doctor.stderr + stack.logs()


def _open_backfill_run(stack: Stack) -> bool:
    return (
        _count(stack, "SELECT COUNT(*) FROM runs WHERE task = 'backfill' AND ended_s IS NULL") > 0
    )


def _freeze_mid_backfill(stack: Stack, client: redis.Redis, lock_key: str) -> set[int]:
    """SIGSTOP the worker's process group while a backfill run holds its lock, so the
    run cannot end between the look and the kill; returns the open backfill runs' ids."""
    group = stack.procs["worker"].pid
    for _ in range(5):
        wait_for(
            lambda: client.get(lock_key) is not None and _open_backfill_run(stack),
            90,
            "a backfill run in progress",
            stack,
        )
        os.killpg(group, signal.SIGSTOP)
        open_runs = {
            int(str(run_id))
            for (run_id,) in stack.query(
                "SELECT id FROM runs WHERE task = 'backfill' AND ended_s IS NULL"
            )
        }
        if client.get(lock_key) is not None and open_runs:
            return open_runs
        os.killpg(group, signal.SIGCONT)  # it ended in between: catch another
    pytest.fail("never caught a backfill run holding its lock")


def test_kill_9_mid_backfill_frees_the_lock_and_resumes(stack: Stack) -> None:
    client = redis.Redis.from_url(stack.env["REDIS_URL"])
    lock_key = "e2e:lock:backfill"
    # Slow Keepa answers keep each backfill run busy long enough to be caught mid-run,
    # and a short pass pause keeps the backfiller paging.
    stack.sim.set_faults({"endpoints": ["deal", "product"], "latency_ms": 1500})
    stack.env["BACKFILL_PASS_PAUSE_S"] = "60"
    stack.start("worker", "worker")
    stack.start("beat", "beat")
    wait_for(lambda: _finished_runs(stack, "backfill") >= 1, 90, "backfill ran", stack)
    killed_runs = _freeze_mid_backfill(stack, client, lock_key)
    cursor_before = _count(stack, "SELECT int_value FROM system_state WHERE key = 'backfill_page'")
    passes_before = _count(
        stack, "SELECT int_value FROM system_state WHERE key = 'backfill_passes'"
    )
    stack.kill("worker")
    # LOCK_TTL_S (180 service s) is 3 wall s at this scale: free within two TTLs.
    lock_ttl_wall_s = LOCK_TTL_S / SCALE
    freed_after_s = wait_for(lambda: client.get(lock_key) is None, 10, "lock freed", stack)
    assert freed_after_s <= 2 * lock_ttl_wall_s + 0.5
    stack.sim.clear_faults()
    finished = _finished_runs(stack, "backfill")
    stack.start("worker2", "worker")
    wait_for(lambda: _finished_runs(stack, "backfill") >= finished + 2, 90, "resumed", stack)
    # The killed run, and only it, was closed as abandoned by the next lock holder.
    abandoned = {
        int(str(run_id))
        for (run_id,) in stack.query(
            "SELECT id FROM runs WHERE task = 'backfill' AND stop_reason = 'abandoned'"
        )
    }
    assert abandoned == killed_runs, stack.logs()
    # It resumed from its cursor (or went on to the next pass), never from scratch.
    cursor_after = _count(stack, "SELECT int_value FROM system_state WHERE key = 'backfill_page'")
    passes_after = _count(stack, "SELECT int_value FROM system_state WHERE key = 'backfill_passes'")
    assert (passes_after, cursor_after) >= (passes_before, cursor_before)
    dupes = stack.query("SELECT asin, domain FROM deals GROUP BY asin, domain HAVING COUNT(*) > 1")
    assert dupes == []
    client.close()


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"TOKEN_THRESHOLD_BACKFILL": "480"}, "TOKEN_THRESHOLD_BACKFILL=480"),
        ({"REDIS_URL": "redis://127.0.0.1:9/0"}, "redis: unreachable"),
        ({"DEAL_QUERY_PATH": "BAD"}, "dateRange"),
    ],
)
def test_bad_settings_stop_the_worker_with_one_line(
    stack: Stack, tmp_path: Path, overrides: dict[str, str], expected: str
) -> None:
    env = dict(stack.env)
    if overrides.get("DEAL_QUERY_PATH") == "BAD":
        bad = tmp_path / "query.json"
        bad.write_text('{"domainId": 1, "dateRange": "1", "priceTypes": [2]}')
        overrides = {"DEAL_QUERY_PATH": str(bad)}
    env.update(overrides)
    result = subprocess.run(
        [sys.executable, "-m", "keepa_deals", "worker"],
        check=False,
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert result.returncode == 2, lines
    assert len(lines) == 1 and expected in lines[0], lines
    assert os.environ.get("KEEPA_API_KEY", KEY) not in lines[0] or KEY not in lines[0]
