#!/usr/bin/env python3
"""Is recharge on? Since when, how far toward its target, ETA, and time left before the
timeout. Read-only. Exit 1 when recharge has outlived its timeout (it must not)."""

from __future__ import annotations

import sys

import redis
from _common import emit, fmt_s, redis_client, redis_failure, settings

from keepa_deals.errors import KeepaDealsError
from keepa_deals.service.status import token_status


def main() -> int:
    as_json = "--json" in sys.argv
    s = settings()
    try:
        st = token_status(s, redis_client(s))
    except (redis.RedisError, KeepaDealsError) as exc:
        # Unknown, never "off": recharge may well be on in a Redis we cannot read.
        print(f"FAIL recharge unknown: {redis_failure(s, exc, script='token script').detail}")
        return 1
    if st.get("state") != "ok":
        print(f"WARN no token state yet: {st.get('detail')}")
        return 0
    rc, now = st["recharge"], st["now"]
    report = {"active": rc["active"], "balance": st["balance"], "target": rc["target"]}
    if not rc["active"]:
        print(f"OK   recharge is off (last exit: {rc['last_exit']}, entries: {rc['entries']})")
        emit(report, as_json)
        return 0
    since, timeout_at = rc["since"], rc["timeout_at"]
    need = max(0, rc["target"] - st["balance"])
    eta_s = None if st["rate_per_min"] <= 0 else need / st["rate_per_min"] * 60
    left_s = timeout_at - now
    report.update(since=since, for_s=now - since, eta_s=eta_s, timeout_in_s=left_s)
    print(
        f"{'OK  ' if left_s >= 0 else 'FAIL'} recharge ON for {fmt_s(now - since)}: "
        f"balance {st['balance']} toward {rc['target']} ({need} to go, ETA {fmt_s(eta_s)}); "
        f"timeout in {fmt_s(max(0.0, left_s))}"
    )
    emit(report, as_json)
    return 0 if left_s >= 0 else 1


if __name__ == "__main__":
    sys.exit(main())
