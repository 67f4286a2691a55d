"""The in-flight total follows the in-flight set (issue 10, item 3).

`inflight_cost` used to move only by +-cost. After `DEL tokens:inflight` (an eviction,
an operator) a 200-token grant kept the estimate 200 low for good: `tokens_in_flight
200, grants_in_flight 0` a day later. Both tests failed on the scripts before the fix.
"""

from __future__ import annotations

from keepa_deals.infra.clock import ManualClock
from tests.tokens.conftest import ManagerFactory
from tests.tokens.model import KeepaBucket
from tests.tokens.token_endpoint import TokenEndpoint


def test_deleting_the_inflight_set_does_not_keep_the_estimate_low(
    make_manager: ManagerFactory, clock: ManualClock
) -> None:
    bucket = KeepaBucket(balance=300, now_s=clock.now())
    endpoint = TokenEndpoint(bucket, clock)
    tm = make_manager(bucket=bucket, keepa=endpoint)
    d = tm.try_acquire("upsert", 200)
    assert d.granted
    assert bucket.charge(clock.now(), 200)  # Keepa ran it; its worker never settles
    tm.redis.delete(tm.keys.token_inflight)
    st = tm.status().as_dict()
    assert (st["grants_in_flight"], st["tokens_in_flight"]) == (0, 0)
    # A day later the next call syncs (no Keepa answer for too long): Keepa's number,
    # nothing subtracted from it.
    clock.advance(86_400)
    assert tm.try_acquire("upsert", 10).granted
    assert endpoint.calls == 1
    bucket.advance(clock.now())
    st = tm.status().as_dict()
    assert (st["tokens_in_flight"], st["balance"]) == (10, bucket.balance - 10)


def test_a_grant_removed_from_the_set_by_hand_leaves_the_total_at_the_next_answer(
    make_manager: ManagerFactory, clock: ManualClock
) -> None:
    """Part of the set gone (ZREM by hand): the total is recounted from the set
    whenever a Keepa value is applied."""
    bucket = KeepaBucket(balance=300, now_s=clock.now())
    tm = make_manager(bucket=bucket)
    lost = tm.try_acquire("upsert", 120).grant
    kept = tm.try_acquire("upsert", 80).grant
    assert lost is not None and kept is not None
    assert bucket.charge(clock.now(), 120) and bucket.charge(clock.now(), 80)
    tm.redis.zrem(tm.keys.token_inflight, lost.id)
    clock.advance(1)
    assert tm.settle(kept, bucket.envelope(clock.now(), 80))["applied"]
    st = tm.status().as_dict()
    assert (st["grants_in_flight"], st["tokens_in_flight"]) == (0, 0)
    assert st["balance"] == bucket.balance == 100
