"""Task locks on a real redis-server. TTLs are real time (Redis expires keys on its own
clock), so these tests use short TTLs and bounded waits."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
import redis

from keepa_deals.infra.redis_keys import RedisKeys
from keepa_deals.infra.redis_server import RedisServerProcess
from keepa_deals.locking import TaskLock


@pytest.fixture
def client(redis_server: RedisServerProcess) -> Iterator[redis.Redis]:
    c = redis.Redis.from_url(redis_server.url)
    yield c
    c.close()


def _wait_until(predicate: object, timeout_s: float) -> float:
    """Seconds until predicate() held; fails the test after timeout_s."""
    start = time.monotonic()
    while not predicate():  # type: ignore[operator]
        if time.monotonic() - start > timeout_s:
            pytest.fail(f"condition not met within {timeout_s}s")
        time.sleep(0.02)
    return time.monotonic() - start


def test_one_holder_at_a_time(client: redis.Redis, prefix: str) -> None:
    keys = RedisKeys(prefix)
    a = TaskLock(client, keys, "upsert", ttl_s=5)
    b = TaskLock(client, keys, "upsert", ttl_s=5)
    other = TaskLock(client, keys, "backfill", ttl_s=5)
    assert a.acquire()
    try:
        assert not b.acquire()
        holder = b.holder()
        assert holder is not None and holder.owner == a.owner and 0 < holder.ttl_left_s <= 5
        assert other.acquire()  # different task, different lock
        other.release()
    finally:
        assert a.release()
    assert b.acquire()
    b.release()


def test_heartbeat_keeps_a_live_lock_past_its_ttl(client: redis.Redis, prefix: str) -> None:
    # A TTL long enough that a loaded machine's scheduling delays cannot outlast the
    # heartbeat's margin (it renews every third of a TTL).
    lock = TaskLock(client, RedisKeys(prefix), "upsert", ttl_s=1.5)
    assert lock.acquire()
    try:
        time.sleep(3.0)  # two TTLs: only the heartbeat keeps it
        holder = lock.holder()
        assert holder is not None and holder.owner == lock.owner
        assert not lock.lost.is_set()
    finally:
        lock.release()
    assert lock.holder() is None


def test_release_never_deletes_someone_elses_lock(client: redis.Redis, prefix: str) -> None:
    keys = RedisKeys(prefix)
    a = TaskLock(client, keys, "upsert", ttl_s=0.2)
    assert a.acquire()
    a._stop.set()  # a stalls: no more heartbeats
    _wait_until(lambda: a.holder() is None, timeout_s=2)
    b = TaskLock(client, keys, "upsert", ttl_s=5)
    assert b.acquire()
    try:
        assert not a.release()  # a's late release must not free b's live lock
        holder = b.holder()
        assert holder is not None and holder.owner == b.owner
        assert not a.renew() and a.lost.is_set()
    finally:
        b.release()


def test_a_lock_that_vanishes_is_reported_lost(client: redis.Redis, prefix: str) -> None:
    lock = TaskLock(client, RedisKeys(prefix), "backfill", ttl_s=0.3)
    assert lock.acquire()
    client.delete(lock.key)  # as after a Redis restart
    _wait_until(lock.lost.is_set, timeout_s=2)
    lock.release()


HOLDER_TTL_S = 1.5  # see test_heartbeat_keeps_a_live_lock_past_its_ttl
HOLDER = """
import sys, time, redis
from keepa_deals.locking import TaskLock
from keepa_deals.infra.redis_keys import RedisKeys
lock = TaskLock(
    redis.Redis.from_url(sys.argv[1]), RedisKeys(sys.argv[2]), "upsert", ttl_s=float(sys.argv[3])
)
assert lock.acquire()
print("held", flush=True)
time.sleep(60)
"""


def test_a_killed_workers_lock_frees_itself_within_two_ttls(
    redis_server: RedisServerProcess, client: redis.Redis, prefix: str
) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, redis_server.url, prefix, str(HOLDER_TTL_S)],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == b"held"
        lock = TaskLock(client, RedisKeys(prefix), "upsert", ttl_s=HOLDER_TTL_S)
        time.sleep(2 * HOLDER_TTL_S)  # the live holder keeps it through two TTLs
        assert not lock.acquire()
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=5)
        bound_s = 2 * HOLDER_TTL_S
        freed_after_s = _wait_until(lambda: lock.holder() is None, timeout_s=bound_s + 0.5)
        assert freed_after_s <= bound_s
        assert lock.acquire()
        lock.release()
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout:
            proc.stdout.close()
