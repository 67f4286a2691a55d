"""Keepa answers that are wrong must not break the budget (issue 10, items 1 and 2).

A reply stamped ahead of time, replies stamped behind one applied before them, a
refill rate of 0 or one so low that a threshold exceeds 60 x rate: the estimate stays
a lower bound of Keepa's balance, every grant stays above the floor, `status()` answers,
and an "impossible" verdict that rests on a rate Keepa reported is checked with
`/token` first. Each test ran against the scripts before the fix and failed there.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from keepa_deals.infra.clock import ManualClock
from keepa_deals.tokens import Grant, TokenManager
from keepa_deals.tokens.errors import ImpossibleRequest
from tests.tokens.conftest import ManagerFactory
from tests.tokens.model import KeepaBucket
from tests.tokens.token_endpoint import TokenEndpoint

TEN_MIN_MS = 600_000
LOGGER = "keepa_deals.tokens.manager"


def answer(
    tm: TokenManager,
    grant: Grant,
    bucket: KeepaBucket,
    clock: ManualClock,
    *,
    ahead_ms: int = 0,
    rate_shown: int | None = None,
) -> dict[str, Any]:
    """Keepa runs the granted call (charging its full cost) and its reply is settled,
    its timestamp moved by `ahead_ms` and its refillRate replaced by `rate_shown`."""
    assert bucket.charge(clock.now(), grant.cost)
    body = bucket.envelope(clock.now(), grant.cost)
    body["timestamp"] += ahead_ms
    if rate_shown is not None:
        body["refillRate"] = rate_shown
    return tm.settle(grant, body)


def grant(tm: TokenManager, cls: str, cost: int) -> Grant:
    d = tm.try_acquire(cls, cost)
    assert d.granted and d.grant is not None, d
    return d.grant


def warnings(caplog: pytest.LogCaptureFixture, word: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and word in r.getMessage()
    ]


# --- item 1: timestamps -----------------------------------------------------------


def test_a_reply_stamped_ten_minutes_ahead_does_not_freeze_the_balance(
    make_manager: ManagerFactory, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    """The issue's case: after one reply stamped 10 minutes ahead, six correctly stamped
    50-token calls that leave Keepa at 0 were all 'stale', the estimate still read 300
    and a 480-token request was granted (Keepa would end at -480, floor -180)."""
    caplog.set_level(logging.WARNING, logger=LOGGER)
    bucket = KeepaBucket(balance=350, rate=6, now_s=clock.now())  # capacity 360
    tm = make_manager(bucket=bucket)
    clock.advance(1)
    result = answer(tm, grant(tm, "upsert", 50), bucket, clock, ahead_ms=TEN_MIN_MS)
    # Not applied, but what it consumed is charged: its grant came after the applied
    # answer's request was sent.
    assert (result["applied"], result["balance"]) == (False, 300)
    for _ in range(6):
        clock.advance(1)
        assert answer(tm, grant(tm, "upsert", 50), bucket, clock)["applied"]
    assert bucket.balance == 0
    assert tm.status().as_dict()["balance"] == 0
    assert not tm.try_acquire("backfill", 480).granted
    assert len(warnings(caplog, "ahead")) == 1


def test_stale_replies_still_charge_what_their_calls_consumed(
    make_manager: ManagerFactory, clock: ManualClock
) -> None:
    """A stamp ahead by less than the allowance is applied, and correctly stamped
    replies then read as older. Their grants were made after the applied answer's
    request was sent, so its number cannot include them: each one is charged what it
    says it consumed, where before the fix it was only dropped."""
    bucket = KeepaBucket(balance=350, now_s=clock.now(), phase_s=59)
    tm = make_manager(bucket=bucket)
    clock.advance(1)
    assert answer(tm, grant(tm, "upsert", 50), bucket, clock, ahead_ms=30_000)["applied"]
    for _ in range(6):
        clock.advance(1)
        result = answer(tm, grant(tm, "upsert", 50), bucket, clock)
        assert (result["applied"], result["stale"]) == (False, True)
    st = tm.status().as_dict()
    assert (st["balance"], st["tokens_held"]) == (bucket.balance, 300) == (0, 300)
    assert st["server_balance"] == 300  # what Keepa last said, as applied
    # Refills after a held charge are projected from it, capped as Keepa caps them.
    clock.advance(60 * 60)
    bucket.advance(clock.now())
    assert tm.status().as_dict()["balance"] == bucket.balance == 300
    # An answer sent after the held ones arrived includes them: the hold ends.
    assert answer(tm, grant(tm, "upsert", 50), bucket, clock)["applied"]
    st = tm.status().as_dict()
    assert (st["balance"], st["tokens_held"]) == (bucket.balance, 0) == (250, 0)


def test_a_reply_stamped_behind_cannot_roll_back_a_charge(
    make_manager: ManagerFactory, clock: ManualClock
) -> None:
    """X is stamped 10 minutes behind but is Keepa's newest answer, applied because
    nothing was applied for longer. Y, run by Keepa before X, then carries a newer
    stamp: applied, it would roll back X's 40 tokens (the estimate 40 above Keepa's
    balance before the fix). Its request was sent before X's, so it is held instead."""
    bucket = KeepaBucket(balance=300, now_s=clock.now(), phase_s=59)
    tm = make_manager(bucket=bucket)
    clock.advance(700)
    y = grant(tm, "upsert", 30)
    assert bucket.charge(clock.now(), y.cost)
    y_body = bucket.envelope(clock.now(), y.cost)
    clock.advance(1)
    assert answer(tm, grant(tm, "upsert", 40), bucket, clock, ahead_ms=-TEN_MIN_MS)["applied"]
    result = tm.settle(y, y_body)
    st = tm.status().as_dict()
    assert st["balance"] <= bucket.balance  # was 40 above it
    assert (result["applied"], result["stale"]) == (False, True)
    # Cautious: X's number already includes Y, which stays held until an answer sent
    # after it arrived is applied.
    assert (st["balance"], st["tokens_held"]) == (bucket.balance - 30, 30)
    clock.advance(1)
    assert answer(tm, grant(tm, "upsert", 5), bucket, clock)["applied"]
    assert (tm.status().as_dict()["balance"], tm.status().as_dict()["tokens_held"]) == (
        bucket.balance,
        0,
    )


def test_a_grant_in_the_millisecond_of_a_sync_is_ordered_by_its_number(
    make_manager: ManagerFactory, clock: ManualClock
) -> None:
    """Found by the property test: /token synced at t, a grant made after it in the same
    millisecond, its answer stamped 10 minutes behind. Counted as made before the sync,
    its charge was dropped (the estimate 1 above Keepa's balance); the grant's number,
    higher than the one read before the sync was sent, orders them."""
    bucket = KeepaBucket(balance=25, now_s=clock.now(), phase_s=0)
    tm = make_manager(keepa=TokenEndpoint(bucket, clock))
    d = tm.try_acquire("upsert", 1)  # syncs first: no state
    assert d.granted and d.grant is not None
    answer(tm, d.grant, bucket, clock, ahead_ms=-TEN_MIN_MS)
    assert tm.status().as_dict()["balance"] == bucket.balance == 29


def test_a_call_that_reached_keepa_late_is_charged_exactly(
    make_manager: ManagerFactory, clock: ManualClock
) -> None:
    """Correct stamps, network reordering: A is granted first but reaches Keepa after
    B. B's answer is applied; A's, stamped later but sent earlier, is held: B's number
    lacks A's charge, and the estimate stays exactly Keepa's balance. (Before the fix A
    was applied, exact as well: this guards the rule above against losing A.)"""
    bucket = KeepaBucket(balance=300, now_s=clock.now(), phase_s=59)
    tm = make_manager(bucket=bucket)
    clock.advance(1)
    a = grant(tm, "upsert", 30)
    clock.advance(1)
    b = grant(tm, "upsert", 20)
    assert answer(tm, b, bucket, clock)["applied"]
    clock.advance(1)
    result = answer(tm, a, bucket, clock)
    assert (result["applied"], result["stale"]) == (False, True)
    assert tm.status().as_dict()["balance"] == bucket.balance == 250


def test_a_reply_stamped_behind_the_applied_one_is_charged_once(
    make_manager: ManagerFactory, clock: ManualClock
) -> None:
    """Stamped 10 minutes behind (Keepa's clock stepped back once): stale, and charged
    once; the next correct reply is applied and replaces the charged estimate."""
    bucket = KeepaBucket(balance=300, now_s=clock.now(), phase_s=59)
    tm = make_manager(bucket=bucket)
    clock.advance(1)
    result = answer(tm, grant(tm, "upsert", 40), bucket, clock, ahead_ms=-TEN_MIN_MS)
    assert (result["stale"], result["balance"]) == (True, 260)
    clock.advance(1)
    assert answer(tm, grant(tm, "upsert", 40), bucket, clock)["applied"]
    assert tm.status().as_dict()["balance"] == bucket.balance == 220


def test_a_far_ahead_stamp_is_logged_once_per_episode(
    make_manager: ManagerFactory, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    bucket = KeepaBucket(balance=300, now_s=clock.now())
    tm = make_manager(bucket=bucket)
    for _ in range(3):
        clock.advance(1)
        answer(tm, grant(tm, "upsert", 5), bucket, clock, ahead_ms=TEN_MIN_MS)
    (line,) = warnings(caplog, "ahead")
    assert "600 s ahead" in line
    assert tm.status().as_dict()["keepa_stamps_rejected"] == 3
    clock.advance(1)
    assert answer(tm, grant(tm, "upsert", 5), bucket, clock)["applied"]
    clock.advance(1)
    answer(tm, grant(tm, "upsert", 5), bucket, clock, ahead_ms=TEN_MIN_MS)
    assert len(warnings(caplog, "ahead")) == 2  # a new episode is reported again
    assert tm.status().as_dict()["balance"] == bucket.balance


def test_first_answer_stamped_far_ahead_is_applied_at_the_allowance(
    make_manager: ManagerFactory, clock: ManualClock
) -> None:
    """With no state there is nothing else to go by: the answer is applied, its stamp
    pulled back to the allowance, so correct answers a minute later are newer."""
    bucket = KeepaBucket(balance=300, now_s=clock.now())
    tm = make_manager()
    body = bucket.envelope(clock.now(), 0)
    body["timestamp"] += TEN_MIN_MS
    assert tm.observe(body, sent_at_s=clock.now())["applied"]
    clock.advance(61)
    assert answer(tm, grant(tm, "upsert", 10), bucket, clock)["applied"]
    assert tm.status().as_dict()["balance"] == bucket.balance


def test_a_killed_workers_grant_costs_one_token_call_after_a_far_ahead_stamp(
    make_manager: ManagerFactory, clock: ManualClock
) -> None:
    """A grant left by a killed worker cleared only through an applied /token answer:
    with a reply stamped 10 minutes ahead applied, every later answer was stale, and
    about 20 acquires made 15 /token calls."""
    bucket = KeepaBucket(balance=300, now_s=clock.now(), phase_s=59)
    endpoint = TokenEndpoint(bucket, clock)
    tm = make_manager(bucket=bucket, keepa=endpoint)
    clock.advance(1)
    killed = grant(tm, "upsert", 20)
    assert bucket.charge(clock.now(), killed.cost)  # Keepa ran it; nobody settles it
    clock.advance(1)
    answer(tm, grant(tm, "upsert", 10), bucket, clock, ahead_ms=TEN_MIN_MS)
    clock.advance(tm.policy.grant_ttl_s)
    for _ in range(20):
        answer(tm, grant(tm, "upsert", 5), bucket, clock)
        clock.advance(0.5)
    assert endpoint.calls == 1
    st = tm.status().as_dict()
    assert (st["grants_in_flight"], st["balance"]) == (0, bucket.balance)


def test_a_stale_token_answer_is_not_asked_for_again(
    make_manager: ManagerFactory, clock: ManualClock
) -> None:
    """A stamp ahead within the allowance keeps /token's correct answers stale for up
    to a minute. The sync they answer has seen every grant older than the grant TTL:
    asking again cannot settle them sooner, so it is not asked again (before the fix,
    one /token call per acquire)."""
    bucket = KeepaBucket(balance=300, now_s=clock.now(), phase_s=59)
    endpoint = TokenEndpoint(bucket, clock)
    tm = make_manager(bucket=bucket, keepa=endpoint)
    clock.advance(1)
    killed = grant(tm, "upsert", 20)
    assert bucket.charge(clock.now(), killed.cost)
    clock.advance(tm.policy.grant_ttl_s - 50)
    answer(tm, grant(tm, "upsert", 10), bucket, clock, ahead_ms=59_000)
    clock.advance(51)  # the killed grant is past the TTL, the stamp still ahead
    for _ in range(20):
        answer(tm, grant(tm, "upsert", 5), bucket, clock)
        clock.advance(0.2)
    assert endpoint.calls == 1
    # Still subtracted (cautious) until an answer applied after the stamp drops it.
    assert tm.status().as_dict()["grants_in_flight"] == 1
    clock.advance(10)
    assert answer(tm, grant(tm, "upsert", 5), bucket, clock)["applied"]
    st = tm.status().as_dict()
    assert (st["grants_in_flight"], st["balance"]) == (0, bucket.balance)
    assert endpoint.calls == 1


# --- item 2: refill rates -----------------------------------------------------------


def test_a_refill_rate_of_zero_is_not_taken_as_the_plan(
    make_manager: ManagerFactory, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    """One reply with refillRate 0 was stored: status() failed (cjson cannot encode
    infinity) and every acquire was 'impossible' (a threshold above capacity 0)."""
    caplog.set_level(logging.WARNING, logger=LOGGER)
    bucket = KeepaBucket(balance=300, now_s=clock.now(), phase_s=30)
    tm = make_manager(bucket=bucket)
    for _ in range(2):
        clock.advance(1)
        assert answer(tm, grant(tm, "upsert", 10), bucket, clock, rate_shown=0)["applied"]
    st = tm.status().as_dict()
    assert (st["rate_per_min"], st["capacity"], st["balance"]) == (5, 300, 280)
    assert st["keepa_rate_ignored"] == 0
    assert tm.try_acquire("backfill", 10).granted
    (line,) = warnings(caplog, "refillRate 0")
    assert "keeping 5/min" in line
    # A positive rate ends the episode.
    clock.advance(1)
    answer(tm, grant(tm, "upsert", 10), bucket, clock)
    assert tm.status().as_dict()["keepa_rate_ignored"] is None


def test_a_negative_rate_on_the_first_answer_falls_back_to_the_configured_one(
    make_manager: ManagerFactory, clock: ManualClock
) -> None:
    bucket = KeepaBucket(balance=100, now_s=clock.now(), phase_s=30)
    tm = make_manager(plan_rate=20, recharge_high=280)
    body = bucket.envelope(clock.now(), 0)
    body["refillRate"] = -5
    tm.observe(body, sent_at_s=clock.now())
    st = tm.status().as_dict()
    assert (st["rate_per_min"], st["capacity"]) == (20, 1200)
    clock.advance(30)
    assert tm.status().as_dict()["balance"] == 120


def test_a_zero_rate_is_confirmed_by_one_token_call(
    make_manager: ManagerFactory, clock: ManualClock
) -> None:
    bucket = KeepaBucket(balance=300, now_s=clock.now())
    endpoint = TokenEndpoint(bucket, clock)
    tm = make_manager(bucket=bucket, keepa=endpoint)
    clock.advance(1)
    answer(tm, grant(tm, "upsert", 10), bucket, clock, rate_shown=0)
    for _ in range(5):
        clock.advance(1)
        answer(tm, grant(tm, "upsert", 10), bucket, clock)
    assert endpoint.calls == 1
    assert tm.status().as_dict()["rate_per_min"] == 5


def test_token_confirming_a_zero_rate_keeps_the_last_good_one(
    make_manager: ManagerFactory, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    bucket = KeepaBucket(balance=300, now_s=clock.now())
    endpoint = TokenEndpoint(bucket, clock, rate_shown=0)
    tm = make_manager(bucket=bucket, keepa=endpoint)
    clock.advance(1)
    answer(tm, grant(tm, "upsert", 10), bucket, clock, rate_shown=0)
    for _ in range(5):
        clock.advance(1)
        answer(tm, grant(tm, "upsert", 10), bucket, clock, rate_shown=0)
    assert endpoint.calls == 1
    st = tm.status().as_dict()
    assert (st["rate_per_min"], st["balance"]) == (5, bucket.balance)
    assert len(warnings(caplog, "refillRate 0")) == 2  # the reply's, then /token's
    assert "/token" in warnings(caplog, "refillRate 0")[1]


def test_a_stored_rate_of_zero_still_answers_status_and_syncs(
    make_manager: ManagerFactory, clock: ManualClock
) -> None:
    """State written by the scripts before the fix may hold rate 0."""
    bucket = KeepaBucket(balance=300, now_s=clock.now())
    endpoint = TokenEndpoint(bucket, clock)
    tm = make_manager(bucket=bucket, keepa=endpoint)
    tm.redis.hset(tm.keys.token_state, "rate", 0)
    st = tm.status().as_dict()
    assert (st["state"], st["rate_per_min"], st["capacity"]) == ("ok", 5, 300)
    assert st["classes"]["backfill"]["starvation_bound_s"] is not None
    assert tm.try_acquire("upsert", 10).granted
    assert endpoint.calls == 1
    assert tm.redis.hget(tm.keys.token_state, "rate") == b"5"


def test_an_impossible_verdict_on_a_reported_rate_is_checked_with_token_first(
    make_manager: ManagerFactory, clock: ManualClock
) -> None:
    """A reply says 1/min: capacity 60 is below the backfill threshold 100. /token
    says 5/min: the backfiller is served, where before the fix it was 'impossible'."""
    bucket = KeepaBucket(balance=300, now_s=clock.now())
    endpoint = TokenEndpoint(bucket, clock)
    tm = make_manager(bucket=bucket, keepa=endpoint, threshold_backfill=100)
    clock.advance(1)
    answer(tm, grant(tm, "upsert", 10), bucket, clock, rate_shown=1)
    assert tm.status().as_dict()["rate_per_min"] == 1  # a positive rate is a plan: taken
    assert tm.try_acquire("backfill", 10).granted
    assert endpoint.calls == 1
    assert tm.status().as_dict()["rate_per_min"] == 5


def test_an_impossible_verdict_confirmed_by_token_is_raised_without_asking_again(
    make_manager: ManagerFactory, clock: ManualClock
) -> None:
    bucket = KeepaBucket(balance=300, now_s=clock.now())
    endpoint = TokenEndpoint(bucket, clock)
    tm = make_manager(bucket=bucket, keepa=endpoint, threshold_backfill=100)
    clock.advance(1)
    bucket.set_rate(1)
    answer(tm, grant(tm, "upsert", 10), bucket, clock)
    for _ in range(3):
        with pytest.raises(ImpossibleRequest, match="TOKEN_THRESHOLD_BACKFILL=100"):
            tm.try_acquire("backfill", 10)
    assert endpoint.calls == 1


def test_a_rate_token_could_not_confirm_yet_is_not_called_impossible(
    make_manager: ManagerFactory, clock: ManualClock
) -> None:
    """The 1/min reply is stamped 45 s ahead (within the allowance): /token's correct
    answer is older and cannot confirm it. The backfiller waits until a /token answer
    can be the newer one, then is served at Keepa's 5/min."""
    bucket = KeepaBucket(balance=300, now_s=clock.now(), phase_s=59)
    endpoint = TokenEndpoint(bucket, clock)
    tm = make_manager(bucket=bucket, keepa=endpoint, threshold_backfill=100)
    clock.advance(1)
    answer(tm, grant(tm, "upsert", 10), bucket, clock, ahead_ms=45_000, rate_shown=1)
    d = tm.try_acquire("backfill", 10)
    assert (d.granted, d.reason, d.target) == (False, "rate_unconfirmed", 100)
    assert d.wait_s == 45.001
    assert endpoint.calls == 1
    clock.advance(d.wait_s)
    assert tm.try_acquire("backfill", 10).granted
    assert (endpoint.calls, tm.status().as_dict()["rate_per_min"]) == (2, 5)


def test_a_cost_impossible_at_the_configured_rate_asks_nobody(
    make_manager: ManagerFactory, clock: ManualClock
) -> None:
    bucket = KeepaBucket(balance=300, now_s=clock.now())
    endpoint = TokenEndpoint(bucket, clock)
    tm = make_manager(bucket=bucket, keepa=endpoint)
    with pytest.raises(ImpossibleRequest):
        tm.try_acquire("backfill", 481)
    assert endpoint.calls == 0
