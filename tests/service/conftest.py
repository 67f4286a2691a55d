"""Service fixtures: a fresh deals database per test (the store tests' own), and the
rows a service check reads: deals and runs as the tasks leave them."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import redis

from keepa_deals.redis_server import RedisServerProcess
from keepa_deals.store import (
    DealRow,
    DealStatus,
    RunStats,
    Source,
    finish_run,
    start_run,
    update_run,
)
from tests.store.conftest import conn, db_path

__all__ = ["LockedRedis", "add_run", "conn", "db_path", "deal", "locked_redis"]


@dataclass(frozen=True)
class LockedRedis:
    """A redis-server that wants a password, and URLs to it with and without the right one."""

    server: RedisServerProcess
    password: str

    def url(self, password: str) -> str:
        return f"redis://:{password}@{self.server.host}:{self.server.port}/0"


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


def deal(asin: str, first_seen_s: int, evaluated_s: int | None = None) -> DealRow:
    """An accepted deal first (and last) seen at `first_seen_s`."""
    return DealRow(
        asin=asin,
        domain=1,
        status=DealStatus.ACCEPTED,
        source=Source.UPSERT,
        first_seen_s=first_seen_s,
        last_seen_s=first_seen_s,
        last_evaluated_s=first_seen_s if evaluated_s is None else evaluated_s,
    )


def add_run(
    conn: sqlite3.Connection,
    task: str,
    started_s: int,
    ended_s: int | None,
    stop_reason: str | None,
    **counts: int,
) -> int:
    """A `runs` row as a task leaves it: open (ended_s None) with its counts so far, or
    finished with its stop reason."""
    stats = RunStats(**counts)
    run_id = start_run(conn, task, started_s)
    if ended_s is None:
        update_run(conn, run_id, stats)
    else:
        assert stop_reason is not None
        finish_run(conn, run_id, stats, stop_reason, ended_s)
    return run_id
