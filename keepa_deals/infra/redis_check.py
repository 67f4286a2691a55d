"""Start-up check of the Redis that holds the budget: an evicted bucket is a free refill.

redbeat checks `maxmemory-policy` for the same reason. Our token state has no TTL, so a
`volatile-*` policy cannot evict it, but it can evict a live task lock (which has one):
that is a warning. An `allkeys-*` policy can evict the bucket itself: refused.
"""

from __future__ import annotations

import redis

from keepa_deals.infra.checks import Check

NAME = "redis eviction"


def check_eviction(client: redis.Redis) -> Check:
    try:
        policy = str(_config(client, "maxmemory-policy"))
        maxmemory = int(_config(client, "maxmemory") or 0)
    except redis.ResponseError as exc:
        # Managed Redis often disables CONFIG; we cannot prove safety, so we say so.
        return Check(
            NAME,
            "warn",
            f"cannot read maxmemory-policy ({exc}); make sure it is noeviction",
        )
    if policy == "noeviction":
        return Check(NAME, "ok", "maxmemory-policy is noeviction")
    if maxmemory == 0:
        return Check(
            NAME,
            "warn",
            f"maxmemory-policy is {policy} but maxmemory is 0 (no limit), so nothing is "
            "evicted today; set maxmemory-policy noeviction before setting a limit",
        )
    if policy.startswith("allkeys-"):
        return Check(
            NAME,
            "fail",
            f"maxmemory-policy is {policy} with maxmemory {maxmemory}: Redis may evict the "
            "token bucket, which hands out tokens Keepa never refilled. Run "
            "`redis-cli CONFIG SET maxmemory-policy noeviction` (and in redis.conf)",
        )
    return Check(
        NAME,
        "warn",
        f"maxmemory-policy is {policy}: the token state (no TTL) is safe, but a task lock "
        "(with TTL) could be evicted and let two runs overlap; prefer noeviction",
    )


def _config(client: redis.Redis, name: str) -> str:
    value = client.config_get(name).get(name, "")
    return value.decode() if isinstance(value, bytes) else str(value)
