"""The state hash lost alone (deleted by hand, evicted) while calls are in flight.

Found by the property test of issue 10 (keys deleted between calls): the set of grants
in flight is still the record of calls Keepa may not have charged yet, and an answer to
one call may be older than one applied before the loss. Each test failed on the
scripts before the fix.
"""

from __future__ import annotations

from keepa_deals.infra.clock import ManualClock
from tests.tokens.conftest import ManagerFactory
from tests.tokens.model import KeepaBucket
from tests.tokens.token_endpoint import TokenEndpoint


def test_a_calls_answer_does_not_rebuild_a_lost_state(
    make_manager: ManagerFactory, clock: ManualClock
) -> None:
    """B's answer (the newer) was applied, then the state was lost, then A's (older)
    arrived. Rebuilt from A's, the state lacked B's charge: the estimate stood above
    Keepa's balance. Only /token rebuilds it now, on the next acquire."""
    bucket = KeepaBucket(balance=300, now_s=clock.now(), phase_s=59)
    endpoint = TokenEndpoint(bucket, clock)
    tm = make_manager(bucket=bucket, keepa=endpoint)
    a, b = tm.try_acquire("upsert", 10).grant, tm.try_acquire("upsert", 20).grant
    assert a is not None and b is not None
    assert bucket.charge(clock.now(), 10)
    a_body = bucket.envelope(clock.now(), 10)
    assert bucket.charge(clock.now(), 20)
    clock.advance(1)
    assert tm.settle(b, bucket.envelope(clock.now(), 20))["applied"]
    tm.redis.delete(tm.keys.token_state)
    result = tm.settle(a, a_body)
    assert (result["applied"], result["balance"]) == (False, None)
    assert tm.status().as_dict()["state"] == "missing"
    assert tm.try_acquire("upsert", 5).granted
    assert endpoint.calls == 1
    assert tm.status().as_dict()["balance"] == bucket.balance - 5 == 265


def test_grants_in_flight_outlive_a_lost_state_hash(
    make_manager: ManagerFactory, clock: ManualClock
) -> None:
    """A 200-token call granted but not yet run by Keepa when the state hash goes: the
    sync that rebuilds the state cannot include it, so it stays subtracted (the set
    was deleted with the state before), and new grants are numbered past it."""
    bucket = KeepaBucket(balance=300, now_s=clock.now(), phase_s=59)
    endpoint = TokenEndpoint(bucket, clock)
    tm = make_manager(bucket=bucket, keepa=endpoint)
    big = tm.try_acquire("upsert", 200).grant
    assert big is not None
    tm.redis.delete(tm.keys.token_state)
    d = tm.try_acquire("upsert", 50)
    assert d.granted and d.grant is not None
    assert d.balance == 100  # Keepa's 300, less the 200 still in flight
    assert grant_number(d.grant.id) == grant_number(big.id) + 1
    st = tm.status().as_dict()
    assert (st["grants_in_flight"], st["tokens_in_flight"], st["balance"]) == (2, 250, 50)


def test_a_state_hash_missing_fields_is_rebuilt_from_token(
    make_manager: ManagerFactory, clock: ManualClock
) -> None:
    """A hash holding a rate but no balance (fields deleted or written by hand): status()
    failed inside Redis before; now it reads as no state, and /token rebuilds it."""
    bucket = KeepaBucket(balance=300, now_s=clock.now())
    endpoint = TokenEndpoint(bucket, clock)
    tm = make_manager(keepa=endpoint)
    tm.redis.hset(tm.keys.token_state, mapping={"rate": 5, "inflight_cost": 0})
    assert tm.status().as_dict()["state"] == "missing"
    assert tm.try_acquire("upsert", 5).granted
    assert (endpoint.calls, tm.status().as_dict()["balance"]) == (1, 295)


def grant_number(grant_id: str) -> int:
    """The `seq` of an id `<granted_ms>.<seq>|<class>|<cost>`."""
    return int(grant_id.split("|", maxsplit=1)[0].split(".")[1])
