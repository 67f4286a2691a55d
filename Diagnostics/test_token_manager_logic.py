#!/usr/bin/env python3
"""Exercise the live TokenManager scripts against the configured Redis, under a separate
key prefix, on a virtual clock. Spends no Keepa tokens and touches no production key.

It loads the very scripts the service runs into the configured Redis and checks the
behaviours operators depend on: hard stop, deficit floor, computed waits, recharge and
its timeout, and impossible requests. Exit 1 on any failure.
"""

from __future__ import annotations

import secrets
import sys

import redis
from _common import redis_client, redis_failure, settings

from keepa_deals.errors import KeepaDealsError
from keepa_deals.infra.clock import ManualClock
from keepa_deals.infra.redis_keys import RedisKeys
from keepa_deals.tokens import TokenManager, TokenPolicy
from keepa_deals.tokens.errors import ImpossibleRequest


def envelope(balance: int, now_s: float, rate: int) -> dict[str, float | int]:
    return {
        "tokensLeft": balance,
        "refillIn": 60_000,
        "refillRate": rate,
        "tokensConsumed": 0,
        "tokenFlowReduction": 0.0,
        "timestamp": round(now_s * 1000),
    }


def main() -> int:
    s = settings()
    client = redis_client(s)
    prefix = f"{s.redis_prefix}diagnostic-{secrets.token_hex(4)}:"
    keys = RedisKeys(prefix)
    clock = ManualClock()
    tm = TokenManager(client, TokenPolicy.from_settings(s), keys, clock=clock)
    rate, floor, cap = s.plan_rate, s.deficit_floor, s.plan_capacity
    failures: list[str] = []

    def expect(ok: bool, what: str) -> None:
        print(f"{'OK  ' if ok else 'FAIL'} {what}")
        if not ok:
            failures.append(what)

    try:
        tm.observe(envelope(0, clock.now(), rate), sent_at_s=clock.now())
        d = tm.try_acquire("upsert", 1)
        # Keepa answers 429 at a balance <= 0, so nothing is granted there. The reason is
        # the hard stop, or the class threshold when that is higher (30 by default).
        expect(
            not d.granted and d.reason in ("hard_stop", "threshold"),
            f"no grant at a balance of 0 ({d.reason})",
        )
        expect(0 < d.wait_s <= 3600, f"the refusal carries a computed wait ({d.wait_s:.0f}s)")
        clock.advance(1)
        tm.observe(envelope(cap, clock.now(), rate), sent_at_s=clock.now())
        big = cap - floor
        expect(tm.try_acquire("upsert", big).granted, f"a full bucket admits {big} (to the floor)")
        try:
            tm.try_acquire("upsert", big + 1)
            expect(False, "an impossible request is refused at once")
        except ImpossibleRequest:
            expect(True, "an impossible request is refused at once")
        st = tm.status().as_dict()
        expect(st["balance"] == floor, f"the estimate sits at the floor ({st['balance']})")
        if "backfill" in s.recharge_gated_classes:
            r = tm.try_acquire("backfill", 1)
            expect(
                not r.granted and r.reason in ("recharge", "yield_to_priority", "hard_stop"),
                f"backfill waits while recharging ({r.reason})",
            )
            clock.advance(s.recharge_timeout_s)
            tm.try_acquire("backfill", 1)
            rc = tm.status().as_dict()["recharge"]
            expect(
                not rc["active"] and rc["last_exit"] in ("timeout", "refilled"),
                f"recharge ends by itself (last exit: {rc['last_exit']})",
            )
        bound = tm.status().as_dict()["classes"]["backfill"]["starvation_bound_s"]
        expect(bound is not None, f"the backfiller has a starvation bound ({bound}s)")
    except (redis.RedisError, KeepaDealsError) as exc:
        # Redis unreachable, or a token script failed: named apart.
        print(f"FAIL {redis_failure(s, exc, script='token script').detail}")
        return 1
    finally:
        # Only our scratch prefix. With Redis gone there is nothing to delete, and the
        # failure is already reported: no traceback on top of it.
        try:
            found = list(client.scan_iter(f"{prefix}*"))
            if found:
                client.delete(*found)
        except redis.RedisError:
            pass
        client.close()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
