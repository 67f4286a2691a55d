#!/usr/bin/env python3
"""The TokenManager's view beside Keepa's: one free /token call, and the drift.

Read-only apart from that one free call (it spends no tokens). The key never appears.
Exit 1 when the estimate is above Keepa's balance (it must never be).
"""

from __future__ import annotations

import sys

import redis
from _common import emit, redis_client, redis_failure, settings

from keepa_deals.errors import KeepaDealsError
from keepa_deals.keepa.client import KeepaClient
from keepa_deals.keepa.errors import KeepaError
from keepa_deals.service.status import token_status


def main() -> int:
    as_json = "--json" in sys.argv
    s = settings()
    try:
        ours = token_status(s, redis_client(s))
    except (redis.RedisError, KeepaDealsError) as exc:
        print(f"FAIL tokens unknown: {redis_failure(s, exc, script='token script').detail}")
        return 1
    if not s.keepa_api_key:
        print("WARN no KEEPA_API_KEY: cannot ask Keepa; showing our view only")
        emit(ours, as_json)
        return 0
    client = KeepaClient.from_settings(s)
    try:
        keepa = client.token().envelope
    except KeepaError as exc:
        print(f"FAIL keepa /token: {exc}")
        return 1
    if ours.get("state") != "ok":
        print(f"WARN no token state in Redis; Keepa says {keepa.tokens_left}")
        return 0
    drift = keepa.tokens_left - int(ours["balance"])
    in_flight = int(ours["tokens_in_flight"])
    report = {
        "estimate": ours["balance"],
        "keepa": keepa.tokens_left,
        "drift": drift,
        "tokens_in_flight": in_flight,
        "rate_per_min": {"ours": ours["rate_per_min"], "keepa": keepa.refill_rate},
    }
    # Our estimate holds grants in flight back, so it may sit below Keepa by up to
    # what is in flight; above Keepa would mean tokens we do not have.
    verdict = "OK  " if drift >= 0 else "FAIL"
    print(
        f"{verdict} estimate {ours['balance']} vs Keepa {keepa.tokens_left} "
        f"(drift {drift:+d}, {in_flight} tokens in flight); "
        f"rate {ours['rate_per_min']} vs {keepa.refill_rate}/min"
    )
    emit(report, as_json)
    return 0 if drift >= 0 else 1


if __name__ == "__main__":
    sys.exit(main())
