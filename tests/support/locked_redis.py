"""A redis-server that wants a password (the `locked_redis` fixture in tests/service)."""

from __future__ import annotations

from dataclasses import dataclass

from keepa_deals.infra.redis_server import RedisServerProcess


@dataclass(frozen=True)
class LockedRedis:
    """A redis-server that wants a password, and URLs to it with and without the right one."""

    server: RedisServerProcess
    password: str

    def url(self, password: str) -> str:
        return f"redis://:{password}@{self.server.host}:{self.server.port}/0"
