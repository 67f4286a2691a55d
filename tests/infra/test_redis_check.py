"""The eviction check against a real redis-server, each policy set with CONFIG SET."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from keepa_deals.infra.redis_check import check_eviction
from keepa_deals.infra.redis_server import RedisServerProcess


@pytest.fixture
def client(redis_server: RedisServerProcess) -> Iterator[redis.Redis]:
    c = redis.Redis.from_url(redis_server.url)
    yield c
    c.config_set("maxmemory-policy", "noeviction")
    c.config_set("maxmemory", 0)
    c.close()


def test_noeviction_is_ok(client: redis.Redis) -> None:
    assert check_eviction(client).outcome == "ok"


def test_allkeys_with_a_limit_is_refused(client: redis.Redis) -> None:
    client.config_set("maxmemory", 512 * 1024 * 1024)
    client.config_set("maxmemory-policy", "allkeys-lru")
    check = check_eviction(client)
    assert check.outcome == "fail"
    assert "allkeys-lru" in check.detail and "noeviction" in check.detail


def test_volatile_policy_warns_about_locks(client: redis.Redis) -> None:
    client.config_set("maxmemory", 512 * 1024 * 1024)
    client.config_set("maxmemory-policy", "volatile-lru")
    check = check_eviction(client)
    assert check.outcome == "warn" and "lock" in check.detail


def test_no_limit_means_nothing_is_evicted_yet(client: redis.Redis) -> None:
    client.config_set("maxmemory-policy", "allkeys-lru")
    check = check_eviction(client)
    assert check.outcome == "warn" and "maxmemory is 0" in check.detail
