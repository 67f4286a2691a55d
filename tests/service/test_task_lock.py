"""The task wrapper's lock paths (`keepa_deals.service.tasks.run_locked`), on a real Redis.

A run that finds its task's lock held returns at once, spends nothing, writes no run
row and logs who holds the lock (issue 5). A run that stops for tokens gives its lock
back before it returns, so the next run takes it at once: no task sleeps while holding
a lock (failure mode: sleeping on a lock). The simulator runs on the wall clock; nothing here
sleeps.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from keepa_deals.config import Settings
from keepa_deals.harvest import RunSummary
from keepa_deals.harvest.backfiller import backfill_deals
from keepa_deals.harvest.context import HarvestContext
from keepa_deals.harvest.upserter import update_recent_deals
from keepa_deals.infra.redis_keys import RedisKeys
from keepa_deals.infra.redis_server import RedisServerProcess
from keepa_deals.keepa_sim import KeepaSimulator
from keepa_deals.locking import TaskLock
from keepa_deals.locking.lock import read_holder
from keepa_deals.service import shutdown, tasks
from keepa_deals.store import open_from_settings
from keepa_deals.tokens.errors import TokensUnavailable
from tests.support.harness import KEY

OTHER_OWNER = "otherhost:4242:deadbeef"  # another worker's owner token (host:pid:random)
HELD_TTL_MS = 60_000
RUNS: dict[str, Callable[[HarvestContext], RunSummary]] = {
    "upsert": update_recent_deals,
    "backfill": backfill_deals,
}
# Loose: a skipped run does two Redis round trips; a tokens stop, a few more and one
# free /token call. Any inline wait for tokens would take minutes at 5 tokens/min.
AT_ONCE_S = 2.0


@pytest.fixture
def sim() -> Iterator[KeepaSimulator]:
    """Wall clock, an empty bucket: every task stops for tokens on its first call."""
    with KeepaSimulator(seed=5, clock="wall", catalogue_size=2000, initial_tokens=0).start() as s:
        yield s


@pytest.fixture
def settings(
    redis_server: RedisServerProcess, prefix: str, tmp_path: Path, sim: KeepaSimulator
) -> Settings:
    return Settings(
        keepa_api_key=KEY,
        keepa_api_url=sim.url,
        keepa_max_retries=0,
        redis_url=redis_server.url,
        redis_prefix=prefix,
        deals_db_path=tmp_path / "deals.db",
    )


@pytest.fixture
def migrated(settings: Settings) -> Settings:
    """The database exists (with an empty `runs` table) before any task runs."""
    open_from_settings(settings).close()
    assert run_rows(settings) == []
    return settings


def lock_key(settings: Settings, task: str) -> str:
    return RedisKeys(settings.redis_prefix).task_lock(task)


def hold(client: redis.Redis, settings: Settings, task: str) -> None:
    """Another worker holds `task`'s lock (as its TaskLock.acquire would have set it)."""
    assert client.set(lock_key(settings, task), OTHER_OWNER, nx=True, px=HELD_TTL_MS)


def run_rows(settings: Settings) -> list[tuple[int, str, str | None]]:
    conn = sqlite3.connect(settings.deals_db_path)
    try:
        rows = conn.execute("SELECT id, task, stop_reason FROM runs ORDER BY id").fetchall()
    finally:
        conn.close()
    return [(int(r[0]), str(r[1]), r[2]) for r in rows]


def heartbeats() -> set[threading.Thread]:
    """Live lock heartbeats in this process (other tests' leftovers included)."""
    return {t for t in threading.enumerate() if t.name.startswith("lock-heartbeat-")}


class Recorder:
    """Wraps a task's pipeline function: how often it ran, and who held the lock then."""

    def __init__(self, task: str, client: redis.Redis) -> None:
        self.task = task
        self.run = RUNS[task]
        self.client = client
        self.holders: list[str | None] = []

    def __call__(self, ctx: HarvestContext) -> RunSummary:
        holder = read_holder(self.client, lock_key(ctx.settings, self.task), self.task)
        self.holders.append(holder.owner if holder else None)
        return self.run(ctx)


# --- the lock is held by another owner ----------------------------------------------------


@pytest.mark.parametrize("task", sorted(RUNS))
def test_a_run_that_finds_its_lock_held_returns_at_once_and_spends_nothing(
    task: str,
    migrated: Settings,
    redis_client: redis.Redis,
    sim: KeepaSimulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = migrated
    hold(redis_client, settings, task)
    run = Recorder(task, redis_client)
    caplog.set_level(logging.INFO, logger="keepa_deals.service.tasks")
    before = heartbeats()

    started = time.monotonic()
    result = tasks.run_locked(task, run, settings)
    elapsed_s = time.monotonic() - started

    assert result == {"task": task, "skipped": "locked", "holder": OTHER_OWNER}
    assert elapsed_s < AT_ONCE_S
    assert run.holders == []  # the pipeline never ran
    assert sim.state()["totals"]["calls"] == 0  # not even the free /token
    assert run_rows(settings) == []
    # The other owner's live lock is untouched (failure mode: stuck locks): same owner, TTL not
    # reset.
    assert redis_client.get(lock_key(settings, task)) == OTHER_OWNER.encode()
    assert 0 < redis_client.pttl(lock_key(settings, task)) <= HELD_TTL_MS
    assert heartbeats() <= before  # no heartbeat started for a lock we never had
    messages = [
        r.getMessage()
        for r in caplog.records
        if r.name == "keepa_deals.service.tasks" and r.levelno == logging.INFO
    ]
    assert len(messages) == 1, messages
    pattern = rf"{task}: skipped, the lock is held by {OTHER_OWNER} \((59|60)s left\)"
    assert re.fullmatch(pattern, messages[0]), messages[0]


def test_a_lock_held_by_a_live_task_lock_names_that_owner(
    migrated: Settings, redis_client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """The holder as a real TaskLock of another worker writes it: host:pid:random."""
    other = TaskLock(redis_client, RedisKeys(migrated.redis_prefix), "backfill", ttl_s=30)
    assert other.acquire()
    try:
        caplog.set_level(logging.INFO, logger="keepa_deals.service.tasks")
        result = tasks.run_locked("backfill", backfill_deals, migrated)
        assert result == {"task": "backfill", "skipped": "locked", "holder": other.owner}
        assert any(other.owner in r.getMessage() for r in caplog.records)
        holder = other.holder()
        assert holder is not None and holder.owner == other.owner
    finally:
        assert other.release()
    assert run_rows(migrated) == []


def test_the_celery_tasks_take_their_own_lock_by_task_name(
    migrated: Settings,
    redis_client: redis.Redis,
    sim: KeepaSimulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The registered tasks, as a worker runs them (eagerly here), with settings from the
    environment: each is skipped while its own lock is held."""
    monkeypatch.chdir(tmp_path)  # no stray .env
    env = {
        "KEEPA_API_KEY": KEY,
        "KEEPA_API_URL": sim.url,
        "KEEPA_MAX_RETRIES": "0",
        "REDIS_URL": migrated.redis_url,
        "KEEPA_REDIS_PREFIX": migrated.redis_prefix,
        "DEALS_DB_PATH": str(migrated.deals_db_path),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    hold(redis_client, migrated, "upsert")
    hold(redis_client, migrated, "backfill")
    for task, celery_task in (
        ("upsert", tasks.update_recent_deals),
        ("backfill", tasks.backfill_deals),
    ):
        outcome = celery_task.apply()
        assert outcome.successful()
        assert outcome.get() == {"task": task, "skipped": "locked", "holder": OTHER_OWNER}
    assert sim.state()["totals"]["calls"] == 0
    assert run_rows(migrated) == []


def test_the_other_tasks_lock_does_not_block_a_run(
    migrated: Settings, redis_client: redis.Redis
) -> None:
    hold(redis_client, migrated, "backfill")
    result = tasks.run_locked("upsert", update_recent_deals, migrated)
    assert "skipped" not in result
    assert result["task"] == "upsert" and result["stop_reason"] == "tokens"
    assert redis_client.get(lock_key(migrated, "backfill")) == OTHER_OWNER.encode()


# --- a run that stops for tokens gives its lock back ----------------------------------------


@pytest.mark.parametrize("task", sorted(RUNS))
def test_a_run_that_stops_for_tokens_releases_its_lock_before_it_returns(
    task: str, migrated: Settings, redis_client: redis.Redis
) -> None:
    settings = migrated
    run = Recorder(task, redis_client)
    before = heartbeats()

    started = time.monotonic()
    result = tasks.run_locked(task, run, settings)
    elapsed_s = time.monotonic() - started

    assert result["task"] == task and result["stop_reason"] == "tokens", result
    assert "tokens not available" in result["detail"]
    assert elapsed_s < AT_ONCE_S  # it stopped; it did not wait minutes for the refill
    # It ran under its own lock, taken by this process...
    assert len(run.holders) == 1 and run.holders[0] is not None
    assert run.holders[0] != OTHER_OWNER
    # ... and gave it back: the key is gone and no heartbeat would bring it back.
    assert redis_client.exists(lock_key(settings, task)) == 0
    assert heartbeats() <= before
    assert run_rows(settings) == [(result["run_id"], task, "tokens")]

    # Another worker takes the lock at once...
    other = TaskLock(redis_client, RedisKeys(settings.redis_prefix), task, ttl_s=30)
    assert other.acquire()
    assert other.release()
    # ... and so does the next run, which is not skipped.
    again = tasks.run_locked(task, run, settings)
    assert "skipped" not in again and again["stop_reason"] == "tokens"
    assert again["run_id"] == result["run_id"] + 1
    assert redis_client.exists(lock_key(settings, task)) == 0


def test_after_one_task_stops_for_tokens_the_other_runs_at_once(
    migrated: Settings, redis_client: redis.Redis
) -> None:
    first = tasks.run_locked("upsert", update_recent_deals, migrated)
    started = time.monotonic()
    second = tasks.run_locked("backfill", backfill_deals, migrated)
    assert time.monotonic() - started < AT_ONCE_S
    assert first["stop_reason"] == second["stop_reason"] == "tokens"
    assert [(task, reason) for _, task, reason in run_rows(migrated)] == [
        ("upsert", "tokens"),
        ("backfill", "tokens"),
    ]
    for task in RUNS:
        assert redis_client.exists(lock_key(migrated, task)) == 0


def test_a_tokens_unavailable_escaping_the_pipeline_still_releases_the_lock(
    migrated: Settings, redis_client: redis.Redis
) -> None:
    """Even when the pipeline does not turn the stop into a summary, the lock goes."""
    held: list[bytes | str | None] = []

    def out_of_tokens(ctx: HarvestContext) -> Any:
        held.append(redis_client.get(lock_key(ctx.settings, "upsert")))
        raise TokensUnavailable("upsert", 5, 360.0, "threshold", 0, 30)

    before = heartbeats()
    with pytest.raises(TokensUnavailable, match="not available for 360s"):
        tasks.run_locked("upsert", out_of_tokens, migrated)
    assert len(held) == 1 and held[0] is not None
    assert redis_client.exists(lock_key(migrated, "upsert")) == 0
    assert heartbeats() <= before
    lock = TaskLock(redis_client, RedisKeys(migrated.redis_prefix), "upsert", ttl_s=30)
    assert lock.acquire()
    assert lock.release()


@pytest.mark.parametrize("task", sorted(RUNS))
def test_a_run_of_a_worker_shutting_down_stops_for_it_and_frees_its_lock(
    task: str, migrated: Settings, redis_client: redis.Redis, sim: KeepaSimulator
) -> None:
    """run_locked hands its runs the worker's shutdown flag (shutdown.py): set, the run
    stops at its first check, spends nothing, and gives its lock back."""
    shutdown.request()
    try:
        result = tasks.run_locked(task, RUNS[task], migrated)
    finally:
        shutdown.clear()
    assert result["stop_reason"] == "shutdown" and result["stats"]["tokens_total"] == 0
    assert sim.state()["totals"]["calls"] == 0
    assert [(t, r) for _, t, r in run_rows(migrated)] == [(task, "shutdown")]
    assert redis_client.get(lock_key(migrated, task)) is None
