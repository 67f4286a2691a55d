"""Start-up check of the Redis that holds the budget: an evicted bucket is a free refill.

redbeat checks `maxmemory-policy` for the same reason. Our token state has no TTL, so a
`volatile-*` policy cannot evict it, but it can evict a live task lock (which has one):
that is a warning. An `allkeys-*` policy can evict the bucket itself: refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import redis

Verdict = Literal["ok", "warn", "refuse"]


@dataclass(frozen=True)
class RedisCheck:
    verdict: Verdict
    policy: str
    maxmemory_bytes: int
    message: str


class UnsafeRedis(RuntimeError):
    def __init__(self, check: RedisCheck) -> None:
        super().__init__(check.message)
        self.check = check


def check_eviction(client: redis.Redis) -> RedisCheck:
    try:
        policy = str(_config(client, "maxmemory-policy"))
        maxmemory = int(_config(client, "maxmemory") or 0)
    except redis.ResponseError as exc:
        # Managed Redis often disables CONFIG; we cannot prove safety, so we say so.
        return RedisCheck(
            "warn",
            "unknown",
            0,
            f"cannot read maxmemory-policy ({exc}); make sure it is noeviction",
        )
    if policy == "noeviction":
        return RedisCheck("ok", policy, maxmemory, "maxmemory-policy is noeviction")
    if maxmemory == 0:
        return RedisCheck(
            "warn",
            policy,
            maxmemory,
            f"maxmemory-policy is {policy} but maxmemory is 0 (no limit), so nothing is "
            "evicted today; set maxmemory-policy noeviction before setting a limit",
        )
    if policy.startswith("allkeys-"):
        return RedisCheck(
            "refuse",
            policy,
            maxmemory,
            f"maxmemory-policy is {policy} with maxmemory {maxmemory}: Redis may evict the "
            "token bucket, which hands out tokens Keepa never refilled. Run "
            "`redis-cli CONFIG SET maxmemory-policy noeviction` (and in redis.conf)",
        )
    return RedisCheck(
        "warn",
        policy,
        maxmemory,
        f"maxmemory-policy is {policy}: the token state (no TTL) is safe, but a task lock "
        "(with TTL) could be evicted and let two runs overlap; prefer noeviction",
    )


def require_safe_eviction(client: redis.Redis) -> RedisCheck:
    """Raise UnsafeRedis on a refusing verdict; return the check otherwise."""
    check = check_eviction(client)
    if check.verdict == "refuse":
        raise UnsafeRedis(check)
    return check


def _config(client: redis.Redis, name: str) -> str:
    value = client.config_get(name).get(name, "")
    return value.decode() if isinstance(value, bytes) else str(value)
