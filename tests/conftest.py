"""Shared fixtures: a private redis-server for the session, a unique key prefix per test,
and a fresh deals database per test (`db_path`, `conn`).

No test touches a Redis it did not start.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import redis

from keepa_deals.config import DEFAULT_DEAL_QUERY, Settings
from keepa_deals.infra.clock import ManualClock
from keepa_deals.infra.redis_server import RedisServerProcess
from keepa_deals.keepa_sim import KeepaSimulator
from keepa_deals.store import open_store
from tests.support.harness import START_S, Harness, HarnessFactory, write_query
from tests.support.locked_redis import LockedRedis


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServerProcess]:
    server = RedisServerProcess().start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def redis_client(redis_server: RedisServerProcess) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_server.url)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def prefix() -> str:
    """Every test writes under its own prefix, so tests sharing the server never collide."""
    return f"t{uuid.uuid4().hex[:10]}:"


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "var" / "deals.db"


@pytest.fixture
def conn(db_path: Path) -> Iterator[sqlite3.Connection]:
    connection = open_store(db_path, busy_timeout_s=10)
    try:
        yield connection
    finally:
        connection.close()


@pytest.fixture
def make_harness(
    redis_server: RedisServerProcess, prefix: str, tmp_path: Path
) -> Iterator[HarnessFactory]:
    """Harness(seed, catalogue_size, refill_rate, initial_tokens, deal_rate, sort_jitter,
    query=dict overrides of the deal query, **Settings fields)."""
    made: list[Harness] = []

    def factory(
        *,
        seed: int = 11,
        catalogue_size: int = 3000,
        refill_rate: int = 5,
        initial_tokens: int | None = None,
        deal_rate: float = 1.0,
        sort_jitter: float = 0.05,
        query: dict[str, Any] | None = None,
        **settings: Any,
    ) -> Harness:
        clock = ManualClock(START_S)
        sim = KeepaSimulator(
            seed=seed,
            refill_rate=refill_rate,
            clock=clock,
            initial_tokens=initial_tokens,
            catalogue_size=catalogue_size,
            deal_rate=deal_rate,
            sort_jitter=sort_jitter,
        ).start()
        n = len(made)
        query_path = DEFAULT_DEAL_QUERY if query is None else write_query(tmp_path, query)
        base = Settings(
            redis_url=redis_server.url,
            redis_prefix=f"{prefix}{n}:",
            deals_db_path=tmp_path / f"deals{n}.db",
            deal_query_path=query_path,
            db_busy_timeout_s=30,
        )
        harness = Harness(sim, clock, replace(base, **settings), redis_server.url, tmp_path)
        harness.owned.callback(sim.stop)
        made.append(harness)
        return harness

    yield factory
    for harness in made:
        harness.close()


@pytest.fixture(scope="session")
def locked_redis() -> Iterator[LockedRedis]:
    """Its own server: the shared one takes no password, and must keep taking none."""
    server = RedisServerProcess().start()
    try:
        password = "locked-redis-pw-5c1d"
        client = redis.Redis(host=server.host, port=server.port)
        client.config_set("requirepass", password)
        client.close()
        yield LockedRedis(server, password)
    finally:
        server.close()
