"""The stages that pass: boundaries, the peek's estimate, and stage 2's acceptance."""

from __future__ import annotations

from dataclasses import replace

from keepa_deals.evaluation.stages import (
    commit,
    parse_deal,
    peek,
    screen_deal,
)
from keepa_deals.evaluation.verdicts import (
    Accepted,
    Economics,
    Fees,
    PeekPassed,
    Reason,
)
from tests.support.keepa_objects import KM, S, deal, offer, product, rejected

# --- stages that pass ---------------------------------------------------------------------


def test_stage_0_passes_at_the_boundaries() -> None:
    assert screen_deal(parse_deal(deal()), S) is None
    half_off = replace(S, min_percent_drop=50, min_roi_percent=0)
    assert screen_deal(parse_deal(deal(price=2_000)), half_off) is None  # exactly 50 % below
    assert rejected(screen_deal(parse_deal(deal(price=2_001)), half_off)).reason is (
        Reason.DROP_TOO_SMALL
    )
    for price in (300, 10_000):  # the band's own edges are inside it
        assert screen_deal(parse_deal(deal(price=price, avg90=40_000)), S) is None
    assert screen_deal(parse_deal(deal(rank=2_000_000)), S) is None


def test_peek_estimates_with_the_90_day_average_and_assumed_shipping() -> None:
    result = peek(product(), S)
    assert isinstance(result, PeekPassed)
    # buy 1500 + 399 shipping; sell 4000; fees 600 + 180 + 350.
    assert result.estimate == Economics(1_899, 4_000, Fees(600, 180, 350), 971, 5_113)
    assert (result.facts.category, result.facts.rank_drops_90) == ("Literature & Fiction", 6)
    assert peek(product(drops=None), replace(S, min_rank_drops_90=0)) is not None
    assert rejected(peek(product(drops=-1), S)).reason is Reason.NO_RANK_DROPS


def test_commit_sells_at_the_lowest_of_average_median_and_competitor() -> None:
    history = [KM - 1_000, 3_800, KM - 400, -1, KM - 300, 3_400, KM - 100, 1_500]
    offers = [offer(3_600, 0, fba=True), offer(1_500, 399), offer(1_400, 0, condition=1)]
    result = commit(product(offers=offers, used_history=history), S)
    assert isinstance(result, Accepted)
    assert (result.history_median_cents, result.competitor_price_cents) == (3_800, 3_600)
    assert result.economics == Economics(1_899, 3_600, Fees(540, 180, 350), 631, 3_322)
    # Without competitors or history the 90-day average is the estimate.
    alone = commit(product(offers=[offer(1_500, 0, fba=True)]), S)
    assert isinstance(alone, Accepted)
    assert alone.economics.sell_price_cents == 4_000 and alone.economics.buy_price_cents == 1_500
    assert (alone.history_median_cents, alone.competitor_price_cents) == (None, None)
    # A lower median wins over the average.
    low = commit(product(offers=[offer(1_500, 0)], used_history=[KM - 500, 3_900]), S)
    assert isinstance(low, Accepted) and low.economics.sell_price_cents == 3_900
