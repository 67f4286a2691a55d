"""Shared fixtures: a private redis-server for the session, a unique key prefix per test,
and a fresh deals database per test (`db_path`, `conn`).

No test touches a Redis it did not start.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from keepa_deals.infra.redis_server import RedisServerProcess
from keepa_deals.store import open_store


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
