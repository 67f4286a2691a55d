"""Token tests: one body, every backend (fakeredis with Lua, and a real redis-server)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import fakeredis
import pytest
import redis

from keepa_deals.config import Settings
from keepa_deals.infra.clock import ManualClock
from keepa_deals.infra.redis_keys import RedisKeys
from keepa_deals.infra.redis_server import RedisServerProcess
from keepa_deals.tokens import TokenManager, TokenPolicy
from tests.tokens.model import KeepaBucket

ManagerFactory = Callable[..., TokenManager]


@pytest.fixture(params=["fakeredis", "redis"])
def backend(request: pytest.FixtureRequest, redis_server: RedisServerProcess) -> Iterator[Any]:
    if request.param == "fakeredis":
        client: Any = fakeredis.FakeRedis()
    else:
        client = redis.Redis.from_url(redis_server.url)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def make_manager(backend: Any, clock: ManualClock, prefix: str) -> ManagerFactory:
    """A TokenManager on a virtual clock, optionally seeded from a Keepa bucket, and
    optionally with a Keepa stand-in to sync from (tests/tokens/token_endpoint.py)."""

    def factory(
        settings: Settings | None = None,
        bucket: KeepaBucket | None = None,
        keepa: Any = None,
        **overrides: Any,
    ) -> TokenManager:
        s = replace(settings or Settings(), **overrides) if overrides else (settings or Settings())
        policy = TokenPolicy.from_settings(s)
        tm = TokenManager(backend, policy, RedisKeys(prefix), clock=clock, keepa=keepa)
        if bucket is not None:
            if bucket.now_s == 0:
                bucket.rebase(clock.now())
            tm.observe(bucket.envelope(clock.now(), 0), sent_at_s=clock.now())
        return tm

    return factory
