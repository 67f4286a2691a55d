"""The one way keepa-deals opens a Redis client: a URL and a named timeout profile.

Each profile says how long its caller may hang on a Redis that stopped answering:
a worker waits longest (its commands are short, a stall must still surface) and keeps
its pooled connections checked; the CLI answers an operator within seconds; the
diagnostics and the preflight judge health, so they give up sooner; a probe only asks
whether anything answers at all.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis


@dataclass(frozen=True)
class RedisProfile:
    name: str
    connect_timeout_s: float
    socket_timeout_s: float
    health_check_interval_s: int = 0


WORKER = RedisProfile(
    "worker", connect_timeout_s=5, socket_timeout_s=10, health_check_interval_s=30
)
CLI = RedisProfile("cli", connect_timeout_s=5, socket_timeout_s=5)
DIAGNOSTICS = RedisProfile("diagnostics", connect_timeout_s=3, socket_timeout_s=3)
PROBE = RedisProfile("probe", connect_timeout_s=1, socket_timeout_s=1)


def redis_client(url: str, profile: RedisProfile = WORKER) -> redis.Redis:
    """A client for `url` with `profile`'s timeouts (the worker's unless named)."""
    return redis.Redis.from_url(
        url,
        socket_connect_timeout=profile.connect_timeout_s,
        socket_timeout=profile.socket_timeout_s,
        health_check_interval=profile.health_check_interval_s,
    )
