"""Sync from Keepa's /token, over HTTP, through the simulator and a real redis-server.

A FLUSHALL or a Redis restart loses the token state. The next call must notice and
rebuild it from /token, never assuming a full bucket.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from keepa_deals.config import Settings
from keepa_deals.infra.clock import ManualClock
from keepa_deals.infra.redis_server import RedisServerProcess
from keepa_deals.keepa.client import KeepaClient
from keepa_deals.keepa_sim import KeepaSimulator
from keepa_deals.tokens import TokenManager

KEY = "sync-test-key-5d1e8a"


@pytest.fixture
def own_redis() -> Iterator[RedisServerProcess]:
    """A private redis-server: these tests flush and restart it."""
    server = RedisServerProcess().start()
    yield server
    server.close()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def sim(clock: ManualClock) -> Iterator[KeepaSimulator]:
    simulator = KeepaSimulator(
        seed=3, refill_rate=5, clock=clock, initial_tokens=123, catalogue_size=2000
    ).start()
    yield simulator
    simulator.stop()


@pytest.fixture
def keepa(sim: KeepaSimulator) -> Iterator[KeepaClient]:
    client = KeepaClient(KEY, sim.url, max_retries=0)
    yield client
    client.session.close()


def _manager(
    server: RedisServerProcess, keepa: KeepaClient, clock: ManualClock
) -> tuple[TokenManager, redis.Redis]:
    client = redis.Redis.from_url(server.url)
    settings = Settings(redis_url=server.url, redis_prefix="synctest:")
    return TokenManager.from_settings(settings, redis=client, clock=clock, keepa=keepa), client


def _true_balance(sim: KeepaSimulator, keepa: KeepaClient) -> int:
    return keepa.token().envelope.tokens_left


def _spend(tm: TokenManager, keepa: KeepaClient, sim: KeepaSimulator, asins: int) -> None:
    """One real /product call of `asins` products under a grant, settled."""
    cost = asins
    grant = tm.acquire("upsert", cost, max_wait_s=0)
    catalogue = sim.app.products.timeline.catalogue.asins
    reply = keepa.products(list(catalogue[:asins]))
    tm.settle(grant, reply.envelope)


def test_first_call_syncs_and_never_assumes_a_full_bucket(
    own_redis: RedisServerProcess, keepa: KeepaClient, sim: KeepaSimulator, clock: ManualClock
) -> None:
    tm, client = _manager(own_redis, keepa, clock)
    try:
        d = tm.try_acquire("upsert", 10)
        assert d.granted and d.balance == 123  # Keepa's number, not a full 300
    finally:
        client.close()


def test_flushall_mid_run_rebuilds_state_from_token(
    own_redis: RedisServerProcess, keepa: KeepaClient, sim: KeepaSimulator, clock: ManualClock
) -> None:
    tm, client = _manager(own_redis, keepa, clock)
    try:
        _spend(tm, keepa, sim, 20)
        _spend(tm, keepa, sim, 15)
        clock.advance(150)  # two refill ticks
        assert tm.status().as_dict()["balance"] == _true_balance(sim, keepa)
        client.flushall()
        assert tm.status().as_dict()["state"] == "missing"
        # The next call notices, rebuilds from /token, and decides on Keepa's number.
        truth = _true_balance(sim, keepa)
        d = tm.try_acquire("upsert", 5)
        assert d.granted and d.balance == truth
        assert truth < 300  # a full-bucket assumption would have been wrong
    finally:
        client.close()


def test_redis_restart_mid_run_rebuilds_state_from_token(
    own_redis: RedisServerProcess, keepa: KeepaClient, sim: KeepaSimulator, clock: ManualClock
) -> None:
    tm, client = _manager(own_redis, keepa, clock)
    try:
        _spend(tm, keepa, sim, 30)
        own_redis.restart()
        truth = _true_balance(sim, keepa)
        d = tm.try_acquire("upsert", 5)
        assert d.granted and d.balance == truth == 123 - 30
    finally:
        client.close()
