"""Shared fixtures: a private redis-server for the session, and a unique key prefix per test.

No test touches a Redis it did not start.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis

from keepa_deals.infra.redis_server import RedisServerProcess


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
