"""Every rejection reason code, at each stage it belongs to, with the price it saw."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest

from keepa_deals.evaluation.stages import (
    commit,
    parse_deal,
    peek,
    screen_deal,
)
from keepa_deals.evaluation.verdicts import (
    Reason,
    Stage,
)
from tests.support.keepa_objects import S, deal, offer, product, rejected

# --- each reason code, at each stage it belongs to ----------------------------------------

Case = tuple[Stage, Reason, Callable[[], object]]
CASES: list[Case] = [
    (Stage.FREE, Reason.NO_BUY_PRICE, lambda: screen_deal(parse_deal(deal(price=None)), S)),
    (Stage.FREE, Reason.PRICE_BELOW_MIN, lambda: screen_deal(parse_deal(deal(price=299)), S)),
    (Stage.FREE, Reason.PRICE_ABOVE_MAX, lambda: screen_deal(parse_deal(deal(price=10_001)), S)),
    (Stage.FREE, Reason.NO_SALES_RANK, lambda: screen_deal(parse_deal(deal(rank=None)), S)),
    (
        Stage.FREE,
        Reason.RANK_BELOW_MIN,
        lambda: screen_deal(parse_deal(deal(rank=99)), replace(S, sales_rank_min=100)),
    ),
    (Stage.FREE, Reason.RANK_ABOVE_MAX, lambda: screen_deal(parse_deal(deal(rank=2_000_001)), S)),
    (Stage.FREE, Reason.NO_AVG90, lambda: screen_deal(parse_deal(deal(avg90=None)), S)),
    # 3200 is 20 % below 4000: exactly the minimum passes, 3201 (19.975 %) does not.
    (Stage.FREE, Reason.DROP_TOO_SMALL, lambda: screen_deal(parse_deal(deal(price=3_201)), S)),
    (
        Stage.FREE,
        Reason.PROFIT_TOO_LOW,
        lambda: screen_deal(parse_deal(deal(price=800, avg90=1_100)), S),
    ),
    (
        Stage.FREE,
        Reason.ROI_TOO_LOW,
        lambda: screen_deal(parse_deal(deal(price=9_000, avg90=12_500)), S),
    ),
    (Stage.PEEK, Reason.NO_STATS, lambda: peek(product(stats=None), S)),
    (Stage.PEEK, Reason.NO_BUY_PRICE, lambda: peek(product(price=None), S)),
    (Stage.PEEK, Reason.PRICE_BELOW_MIN, lambda: peek(product(price=1), S)),
    (Stage.PEEK, Reason.PRICE_ABOVE_MAX, lambda: peek(product(price=20_000), S)),
    (Stage.PEEK, Reason.NO_SALES_RANK, lambda: peek(product(rank=None), S)),
    (Stage.PEEK, Reason.RANK_ABOVE_MAX, lambda: peek(product(rank=3_000_000), S)),
    (Stage.PEEK, Reason.NO_AVG90, lambda: peek(product(avg90=None), S)),
    (Stage.PEEK, Reason.NO_RANK_DROPS, lambda: peek(product(drops=0), S)),
    (Stage.PEEK, Reason.PROFIT_TOO_LOW, lambda: peek(product(price=2_000, avg90=3_000), S)),
    (Stage.PEEK, Reason.ROI_TOO_LOW, lambda: peek(product(price=9_000, avg90=12_500), S)),
    (Stage.COMMIT, Reason.NO_STATS, lambda: commit(product(stats=None, offers=[]), S)),
    (Stage.COMMIT, Reason.OFFERS_UNAVAILABLE, lambda: commit(product(), S)),
    (
        Stage.COMMIT,
        Reason.NO_USED_OFFER,
        lambda: commit(product(offers=[offer(1_500, condition=1)]), S),
    ),
    (Stage.COMMIT, Reason.PRICE_BELOW_MIN, lambda: commit(product(offers=[offer(250)]), S)),
    # The cheapest other used copy caps the sell price: 2200 landed leaves no profit.
    (
        Stage.COMMIT,
        Reason.PROFIT_TOO_LOW,
        lambda: commit(product(offers=[offer(1_500), offer(1_801)]), S),
    ),
    (
        Stage.COMMIT,
        Reason.ROI_TOO_LOW,
        lambda: commit(
            product(
                price=9_000, avg90=14_000, offers=[offer(9_000, 0, fba=True), offer(13_000, 0)]
            ),
            S,
        ),
    ),
]


@pytest.mark.parametrize(("stage", "reason", "run"), CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_each_rejection_names_its_stage_and_reason(
    stage: Stage, reason: Reason, run: Callable[[], object]
) -> None:
    result = rejected(run())
    assert (result.stage, result.reason) == (stage, reason)
    assert result.detail


def test_every_reason_code_is_exercised() -> None:
    assert {reason for _, reason, _ in CASES} == set(Reason)
    assert [r for r in Reason if r.transient] == [Reason.OFFERS_UNAVAILABLE]


def test_rejections_carry_the_price_they_saw() -> None:
    assert rejected(screen_deal(parse_deal(deal(price=299)), S)).price_cents == 299
    assert rejected(peek(product(drops=0), S)).price_cents == 1_500
    assert rejected(screen_deal(parse_deal(deal(price=None)), S)).price_cents is None
