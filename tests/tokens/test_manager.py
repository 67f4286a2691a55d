"""TokenManager behaviour, on fakeredis and on a real redis-server, with a virtual clock."""

from __future__ import annotations

import logging
import math
from typing import Any

import pytest

from keepa_deals.infra.clock import ManualClock
from keepa_deals.keepa.envelope import TokenEnvelope
from keepa_deals.tokens import Grant, TokenManager
from keepa_deals.tokens.errors import (
    AcquireStopped,
    ImpossibleRequest,
    TokensUnavailable,
    UnknownTokenClass,
)
from keepa_deals.tokens.manager import TokenStateMissing
from tests.tokens.conftest import ManagerFactory
from tests.tokens.model import KeepaBucket


def test_grant_then_settle_applies_actual_cost(
    make_manager: ManagerFactory, clock: ManualClock
) -> None:
    bucket = KeepaBucket(balance=300, now_s=clock.now())
    tm = make_manager(bucket=bucket)
    d = tm.try_acquire("upsert", 20)
    assert d.granted and d.balance == 300 and d.grant is not None
    assert tm.status().as_dict()["balance"] == 280  # the estimate is held while in flight
    bucket.charge(clock.now(), 12)
    tm.settle(d.grant, bucket.envelope(clock.now(), 12))
    st = tm.status().as_dict()
    assert st["balance"] == 288
    assert st["grants_in_flight"] == 0
    assert st["classes"]["upsert"]["tokens_granted_last_hour"] == 12


def test_settle_accepts_a_token_envelope(make_manager: ManagerFactory, clock: ManualClock) -> None:
    bucket = KeepaBucket(balance=100, now_s=clock.now())
    tm = make_manager(bucket=bucket)
    d = tm.try_acquire("upsert", 5)
    assert d.grant is not None
    bucket.charge(clock.now(), 5)
    tm.settle(d.grant, TokenEnvelope.from_body(bucket.envelope(clock.now(), 5)))
    assert tm.status().as_dict()["balance"] == 95


def test_refill_ticks_are_projected_and_capped(
    make_manager: ManagerFactory, clock: ManualClock
) -> None:
    tm = make_manager(bucket=KeepaBucket(balance=100, now_s=clock.now(), phase_s=30))
    clock.advance(29)
    assert tm.status().as_dict()["balance"] == 100
    clock.advance(1)
    assert tm.status().as_dict()["balance"] == 105
    clock.advance(60 * 100)
    assert tm.status().as_dict()["balance"] == 300  # capped at 60 x rate


def test_refusal_carries_exact_computed_wait(
    make_manager: ManagerFactory, clock: ManualClock
) -> None:
    # balance 0, refill 5/min, next tick in 30 s: the upserter (threshold 30) needs
    # 6 ticks: 30 s + 5 x 60 s.
    tm = make_manager(bucket=KeepaBucket(balance=0, now_s=clock.now(), phase_s=30))
    d = tm.try_acquire("upsert", 5)
    assert not d.granted
    assert d.reason == "threshold" and d.target == 30 and d.balance == 0
    assert d.wait_s == pytest.approx(330.0)
    clock.advance(d.wait_s - 1)
    assert not tm.try_acquire("upsert", 5).granted
    clock.advance(1)
    assert tm.try_acquire("upsert", 5).granted


def test_hard_stop_never_grants_at_zero_or_below(make_manager: ManagerFactory) -> None:
    tm = make_manager(bucket=KeepaBucket(balance=0), threshold_upsert=1, threshold_backfill=1)
    d = tm.try_acquire("upsert", 1)
    assert not d.granted and d.reason == "hard_stop" and d.target == 1


def test_controlled_deficit_starts_from_threshold_and_respects_floor(
    make_manager: ManagerFactory,
) -> None:
    tm = make_manager(bucket=KeepaBucket(balance=40))
    # 40 >= threshold 30; 40 - 200 = -160 >= floor -180: granted into the deficit.
    d = tm.try_acquire("upsert", 200)
    assert d.granted
    assert tm.status().as_dict()["balance"] == -160
    # Now at -160: below the threshold, so the next call waits even though the floor
    # would allow 20 more.
    d2 = tm.try_acquire("upsert", 20)
    assert not d2.granted and d2.reason == "threshold"


def test_deficit_floor_is_the_reason_when_it_binds(make_manager: ManagerFactory) -> None:
    tm = make_manager(bucket=KeepaBucket(balance=100))
    d = tm.try_acquire("upsert", 290)  # 100 - 290 = -190 < -180
    assert not d.granted and d.reason == "deficit_floor" and d.target == 110


def test_impossible_requests_are_refused_at_once(make_manager: ManagerFactory) -> None:
    tm = make_manager(bucket=KeepaBucket(balance=300))
    with pytest.raises(ImpossibleRequest) as info:
        tm.try_acquire("backfill", 481)  # capacity 300 - floor -180 = 480 per call at most
    assert info.value.capacity == 300 and info.value.target == 301
    assert "480" in str(info.value)
    assert tm.try_acquire("backfill", 480).granted


def test_threshold_above_reported_capacity_is_impossible(make_manager: ManagerFactory) -> None:
    # Configured for 5/min (capacity 300); Keepa then reports a 1/min plan: capacity 60.
    tm = make_manager(bucket=KeepaBucket(balance=60, rate=1), threshold_backfill=100)
    with pytest.raises(ImpossibleRequest, match="TOKEN_THRESHOLD_BACKFILL=100"):
        tm.try_acquire("backfill", 1)


def test_unknown_class_and_bad_cost(make_manager: ManagerFactory) -> None:
    tm = make_manager(bucket=KeepaBucket(balance=300))
    with pytest.raises(UnknownTokenClass):
        tm.try_acquire("nope", 1)
    with pytest.raises(ValueError):
        tm.try_acquire("upsert", 0)


def test_no_state_and_no_keepa_is_a_clear_error(make_manager: ManagerFactory) -> None:
    tm = make_manager()
    with pytest.raises(TokenStateMissing):
        tm.try_acquire("upsert", 1)


def test_acquire_sleeps_the_computed_wait_within_max(
    make_manager: ManagerFactory, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    tm = make_manager(bucket=KeepaBucket(balance=25, now_s=clock.now(), phase_s=10))
    start = clock.now()
    caplog.set_level(logging.INFO, logger="keepa_deals.tokens.manager")
    grant = tm.acquire("upsert", 5, max_wait_s=30)
    assert grant.cls == "upsert"
    assert clock.now() - start == pytest.approx(10.0)  # one computed sleep, no polling
    lines = [r for r in caplog.records if "waits" in r.getMessage()]
    assert len(lines) == 1
    msg = lines[0].getMessage()
    for part in ("upsert", "balance 25", "target 30", "reason threshold", "eta"):
        assert part in msg


def test_acquire_stops_when_wait_exceeds_max(
    make_manager: ManagerFactory, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    tm = make_manager(bucket=KeepaBucket(balance=0, now_s=clock.now(), phase_s=30))
    caplog.set_level(logging.INFO, logger="keepa_deals.tokens.manager")
    start = clock.now()
    with pytest.raises(TokensUnavailable) as info:
        tm.acquire("upsert", 5, max_wait_s=60)
    assert clock.now() == start  # did not sleep at all
    assert info.value.wait_s == pytest.approx(330.0) and info.value.reason == "threshold"
    assert len([r for r in caplog.records if "stops" in r.getMessage()]) == 1


def test_acquire_with_stop_waits_the_same_computed_time_when_never_stopped(
    make_manager: ManagerFactory, clock: ManualClock
) -> None:
    tm = make_manager(bucket=KeepaBucket(balance=25, now_s=clock.now(), phase_s=10))
    start = clock.now()
    looks: list[float] = []

    def stop() -> bool:
        looks.append(clock.now() - start)
        return False

    grant = tm.acquire("upsert", 5, max_wait_s=30, stop=stop)
    assert grant.cls == "upsert"
    assert clock.now() - start == pytest.approx(10.0)  # the computed wait, not more
    # Asked once a STOP_CHECK_S of the wait, and once more before the ask that grants.
    assert looks == pytest.approx([float(t) for t in range(11)])
    assert tm.status().as_dict()["grants_in_flight"] == 1


def test_acquire_stops_waiting_when_told_and_grants_nothing(
    make_manager: ManagerFactory, clock: ManualClock
) -> None:
    """A worker shutting down mid-wait: the wait ends within STOP_CHECK_S of the stop,
    and the tokens it waited for are not granted (they would be spent on a call the
    worker then had to wait for)."""
    tm = make_manager(
        bucket=KeepaBucket(balance=0, now_s=clock.now(), phase_s=30), threshold_upsert=1
    )
    start = clock.now()
    assert tm.try_acquire("upsert", 1).wait_s == pytest.approx(30.0)  # within max_wait_s
    with pytest.raises(AcquireStopped) as info:
        tm.acquire("upsert", 1, max_wait_s=60, stop=lambda: clock.now() - start >= 2.5)
    assert clock.now() - start == pytest.approx(3.0)  # not the 30 s wait for the refill
    assert (info.value.cls, info.value.cost) == ("upsert", 1)
    assert info.value.waited_s == pytest.approx(3.0)
    assert tm.status().as_dict()["grants_in_flight"] == 0


def test_stale_response_does_not_roll_back(
    make_manager: ManagerFactory, clock: ManualClock
) -> None:
    bucket = KeepaBucket(balance=200, now_s=clock.now())
    tm = make_manager(bucket=bucket)
    g1 = tm.try_acquire("upsert", 10).grant
    g2 = tm.try_acquire("upsert", 10).grant
    assert g1 and g2
    bucket.charge(clock.now(), 10)
    old = bucket.envelope(clock.now(), 10)  # produced first...
    clock.advance(1)
    bucket.charge(clock.now(), 10)
    new = bucket.envelope(clock.now(), 10)
    tm.settle(g2, new)  # ...but applied second
    assert tm.status().as_dict()["server_balance"] == 180
    result = tm.settle(g1, old)
    assert result["stale"] is True
    st = tm.status().as_dict()
    assert st["server_balance"] == 180 and st["balance"] == 180 and st["grants_in_flight"] == 0


def test_newer_response_keeps_later_grants_in_flight(
    make_manager: ManagerFactory, clock: ManualClock
) -> None:
    """Failure mode "lost updates between workers": a plain SET of tokensLeft wiped other workers'
    reservations."""
    bucket = KeepaBucket(balance=200, now_s=clock.now())
    tm = make_manager(bucket=bucket)
    a = tm.try_acquire("upsert", 50).grant
    assert a is not None
    bucket.charge(clock.now(), 50)
    reply_a = bucket.envelope(clock.now(), 50)  # Keepa answered A: 150 left
    b = tm.try_acquire("upsert", 40).grant  # B granted before A's answer is applied
    assert b is not None
    tm.settle(a, reply_a)
    # 150 from Keepa minus B's 40 still in flight; a plain SET would say 150.
    assert tm.status().as_dict()["balance"] == 110


def test_plan_change_follows_reported_rate(
    make_manager: ManagerFactory, clock: ManualClock
) -> None:
    bucket = KeepaBucket(balance=300, now_s=clock.now())
    tm = make_manager(bucket=bucket)
    bucket.set_rate(25)
    tm.observe(bucket.envelope(clock.now(), 0), sent_at_s=clock.now())
    st = tm.status().as_dict()
    assert st["rate_per_min"] == 25 and st["capacity"] == 1500
    clock.advance(60 * 60)
    assert tm.status().as_dict()["balance"] == 1500
    assert tm.try_acquire("backfill", 1600).granted  # 1500 - 1600 = -100 >= -180


def test_wait_is_infinite_only_for_yields_with_unreachable_target(
    make_manager: ManagerFactory,
) -> None:
    tm = make_manager(bucket=KeepaBucket(balance=0))
    d = tm.try_acquire("upsert", 5)
    assert math.isfinite(d.wait_s)


def test_status_is_json_serialisable_and_complete(make_manager: ManagerFactory) -> None:
    import json

    tm = make_manager(bucket=KeepaBucket(balance=10))
    tm.try_acquire("backfill", 5)
    st = tm.status().as_dict()
    json.dumps(st)
    assert st["recharge"]["active"] is True  # 10 < RECHARGE_LOW 20
    for key in (
        "balance",
        "server_balance",
        "server_balance_age_s",
        "capacity",
        "rate_per_min",
        "grants_in_flight",
    ):
        assert key in st
    for key in ("since", "target", "timeout_at"):
        assert key in st["recharge"]
    back = st["classes"]["backfill"]
    for key in (
        "threshold",
        "waiting_since",
        "wait_s",
        "reason",
        "starvation_bound_s",
        "tokens_granted_last_hour",
    ):
        assert key in back
    assert back["reason"] == "recharge" and back["waiting"] is True
    assert back["starvation_bound_s"] is not None


def upserter_just_granted(
    make_manager: ManagerFactory, clock: ManualClock, credit: int, **overrides: Any
) -> TokenManager:
    """Balance 10, floor 0, thresholds 1, an upserter with a 40% share that asked for 5
    a moment ago and holds `credit`: entitled, between two asks, not waiting."""
    tm = make_manager(
        bucket=KeepaBucket(balance=10, now_s=clock.now()),
        deficit_floor=0,
        threshold_upsert=1,
        threshold_backfill=1,
        min_share_upsert=0.4,
        recharge_gated_classes=(),
        **overrides,
    )
    now_ms = round(clock.now() * 1000)
    tm.redis.hset(
        tm.keys.token_class("upsert"),
        mapping={"credit": credit, "last_cost": 5, "last_ask_ms": now_ms},
    )
    return tm


def test_status_shows_the_claim_an_entitled_class_holds_between_asks(
    make_manager: ManagerFactory, clock: ManualClock
) -> None:
    """Between two asks an entitled class is not waiting, yet its claim sends others to
    `yield_to_share`: status() names the claim, so that wait has a visible cause, and
    drops it once the class stops asking (TOKEN_DEMAND_TTL_S)."""
    # Just granted: credit for two more requests of 5, asked a moment ago, not waiting.
    tm = upserter_just_granted(make_manager, clock, credit=10)
    refused = tm.try_acquire("backfill", 1)
    # It holds max(1, floor + 5) = 5 for its next request and 5 for the one after.
    assert (refused.granted, refused.reason, refused.target) == (False, "yield_to_share", 11)
    classes = tm.status().as_dict()["classes"]
    up, back = classes["upsert"], classes["backfill"]
    assert (up["waiting"], up["reason"], up["claim"], up["target"]) == (
        False,
        "holds_claim",
        10,
        10,
    )
    assert (back["reason"], back["claim"]) == ("yield_to_share", None)
    clock.advance(tm.policy.demand_ttl_s + 1)
    up = tm.status().as_dict()["classes"]["upsert"]
    assert (up["reason"], up["claim"]) == ("idle", None)


def test_pause_and_resume_by_hand(make_manager: ManagerFactory, clock: ManualClock) -> None:
    tm = make_manager(bucket=KeepaBucket(balance=300))
    assert tm.try_acquire("backfill", 10).granted
    paused = tm.set_recharge(True).as_dict()
    assert paused["recharge"]["active"] is True
    refused = tm.try_acquire("backfill", 10)
    # Even with a full bucket: an operator's pause holds until resume or the timeout.
    assert not refused.granted and refused.reason == "recharge"
    assert refused.wait_s == 3600
    assert tm.try_acquire("upsert", 10).granted  # the upserter is not gated by default
    clock.advance(3600)
    assert tm.status().as_dict()["recharge"]["last_exit"] == "timeout"  # a forgotten pause ends
    tm.set_recharge(True)
    resumed = tm.set_recharge(False).as_dict()
    assert resumed["recharge"]["active"] is False
    assert resumed["recharge"]["last_exit"] == "manual"
    assert tm.try_acquire("backfill", 10).granted


def test_pause_without_state_is_a_clear_error(make_manager: ManagerFactory) -> None:
    with pytest.raises(TokenStateMissing):
        make_manager().set_recharge(True)


def test_a_refused_pause_writes_nothing(make_manager: ManagerFactory) -> None:
    """The check and the write are one script: no state, no half-written state hash
    (a FLUSHALL just before a pause must not leave recharge fields the scripts misread)."""
    tm = make_manager()
    with pytest.raises(TokenStateMissing):
        tm.set_recharge(False)
    assert not tm.redis.exists(tm.keys.token_state)
    assert tm.status().as_dict()["state"] != "ok"


def test_a_grant_id_names_its_class_and_cost_and_is_the_only_record(
    make_manager: ManagerFactory, clock: ManualClock
) -> None:
    tm = make_manager(bucket=KeepaBucket(balance=300, now_s=clock.now()))
    d = tm.try_acquire("backfill", 7)
    assert d.grant is not None
    assert d.grant.id.endswith("|backfill|7")
    assert tm.redis.zscore(tm.keys.token_inflight, d.grant.id) == d.grant.granted_at_ms
    assert not tm.redis.exists(tm.keys.token_grants)
    tm.settle(d.grant, KeepaBucket(balance=293, now_s=clock.now()).envelope(clock.now(), 7))
    assert tm.status().as_dict()["grants_in_flight"] == 0


def test_a_grant_made_before_ids_carried_class_and_cost_still_settles(
    make_manager: ManagerFactory, clock: ManualClock
) -> None:
    """An upgrade with a call in flight: the old scripts kept "class|cost" in the grants
    hash under a bare sequence number."""
    bucket = KeepaBucket(balance=300, now_s=clock.now())
    tm = make_manager(bucket=bucket)
    now_ms = round(clock.now() * 1000)
    tm.redis.zadd(tm.keys.token_inflight, {"41": now_ms})
    tm.redis.hset(tm.keys.token_grants, "41", "upsert|9")
    tm.redis.hset(tm.keys.token_state, "inflight_cost", 9)
    assert tm.status().as_dict()["balance"] == 291
    bucket.charge(clock.now(), 9)
    tm.settle(Grant("41", "upsert", 9, now_ms), bucket.envelope(clock.now(), 9))
    st = tm.status().as_dict()
    assert st["balance"] == 291 and st["tokens_in_flight"] == 0 and st["grants_in_flight"] == 0
    assert not tm.redis.exists(tm.keys.token_grants)


def test_a_settle_for_a_legacy_grant_with_no_record_is_unknown(
    make_manager: ManagerFactory, clock: ManualClock
) -> None:
    bucket = KeepaBucket(balance=300, now_s=clock.now())
    tm = make_manager(bucket=bucket)
    now_ms = round(clock.now() * 1000)
    tm.redis.zadd(tm.keys.token_inflight, {"42": now_ms})
    result = tm.settle(Grant("42", "upsert", 9, now_ms), bucket.envelope(clock.now(), 9))
    assert result["known_grant"] is False
    assert tm.status().as_dict()["grants_in_flight"] == 0


def test_an_entitled_class_is_not_held_back_by_another_ones_reservation(
    make_manager: ManagerFactory, clock: ManualClock
) -> None:
    """A reservation (an entitled class between its grant and its next ask) holds back
    classes without credit only. Against an entitled asker it would have won on
    priority in the very moment of that class's first ask and sent it to wait for the
    other's ask to expire, where an ask a millisecond later would have been granted."""
    # The upserter was just granted: entitled (credit 5 >= its cost 5), not waiting.
    tm = upserter_just_granted(make_manager, clock, credit=5, min_share_backfill=0.5)
    tm.redis.hset(tm.keys.token_class("backfill"), mapping={"credit": 8})
    # Entitled, the backfiller needs max(1, floor + 8) = 8 and leaves 2.
    d = tm.try_acquire("backfill", 8)
    assert (d.granted, d.balance) == (True, 10)
    # Without credit, an ask yields to the upserter's reservation (2 - 1 < 5).
    tm.redis.hset(tm.keys.token_class("backfill"), mapping={"credit": 0})
    tm.redis.hdel(tm.keys.token_class("backfill"), "waiting_since_ms")
    refused = tm.try_acquire("backfill", 1)
    assert (refused.granted, refused.reason) == (False, "yield_to_share")
