"""TokenBucket on its own: ticks, the cap, deficits, continuous flow, plan changes."""

from __future__ import annotations

import pytest

from keepa_deals.keepa_sim.bucket import TokenBucket

T0 = 1_000_000.0


def test_a_new_bucket_is_full_and_ticks_a_minute_after_first_use() -> None:
    b = TokenBucket(5, T0)
    assert (b.balance, b.capacity) == (300, 300)
    b.charge(290)
    b.sync(T0 + 59.9)
    assert b.balance == 10
    b.sync(T0 + 60)
    assert b.balance == 15
    b.sync(T0 + 185)  # ticks at +120 and +180
    assert b.balance == 25
    assert b.refilled == 15


def test_refill_in_counts_down_to_the_next_tick_and_stays_below_a_minute() -> None:
    b = TokenBucket(5, T0)
    assert b.refill_in_ms(T0) == 59_999  # the tick just happened
    assert b.refill_in_ms(T0 + 0.25) == 59_750
    assert b.refill_in_ms(T0 + 30) == 30_000
    assert b.refill_in_ms(T0 + 59.999) == 1
    assert b.refill_in_ms(T0 + 60) == 59_999


def test_tokens_over_the_cap_are_lost_and_counted() -> None:
    b = TokenBucket(5, T0)
    b.charge(12)  # 288
    b.sync(T0 + 600)  # ten ticks of 5: 12 fit, 38 are lost
    assert b.balance == 300
    assert (b.refilled, b.lost_to_cap) == (12, 38)


def test_a_charge_may_take_the_balance_negative_and_ticks_pay_it_back() -> None:
    b = TokenBucket(5, T0, initial=10)
    b.charge(100)
    assert b.balance == -90
    b.sync(T0 + 18 * 60)
    assert b.balance == 0
    b.sync(T0 + 19 * 60)
    assert b.balance == 5
    assert b.charged == 100


def test_initial_tokens_never_exceed_the_cap() -> None:
    assert TokenBucket(5, T0, initial=1000).balance == 300


def test_continuous_mode_adds_a_token_every_60_over_rate_seconds() -> None:
    b = TokenBucket(6, T0, "continuous", initial=0)
    b.sync(T0 + 9.99)
    assert b.balance == 0
    b.sync(T0 + 25)
    assert b.balance == 2
    assert b.refill_in_ms(T0 + 25) == 5_000
    b.sync(T0 + 60)
    assert b.balance == 6


def test_a_plan_change_keeps_the_tick_phase_and_cuts_the_balance_to_the_new_cap() -> None:
    b = TokenBucket(5, T0)
    b.set_rate(2, T0 + 30)
    assert (b.balance, b.capacity, b.lost_to_cap) == (120, 120, 180)
    b.charge(100)
    b.sync(T0 + 60)
    assert b.balance == 22
    b.set_rate(20, T0 + 90)
    b.sync(T0 + 120)
    assert b.balance == 42
    assert b.refill_in_ms(T0 + 150) == 30_000


def test_a_continuous_plan_change_keeps_the_fraction_already_accrued() -> None:
    b = TokenBucket(6, T0, "continuous", initial=0)
    b.sync(T0 + 15)  # 1.5 tokens accrued: 1 paid out
    b.set_rate(12, T0 + 15)  # the half token now needs 2.5 s more
    assert b.refill_in_ms(T0 + 15) == 2_500
    b.sync(T0 + 17.5)
    assert b.balance == 2


@pytest.mark.parametrize("rate", [0, -5])
def test_a_rate_below_one_is_refused(rate: int) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        TokenBucket(rate, T0)
