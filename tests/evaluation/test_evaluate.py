"""Evaluation: each stage, each reason code, fee arithmetic exact in cents, Keepa's
nulls and -1s, and the simulator's real product and deal objects."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest

from keepa_deals.config import Settings
from keepa_deals.errors import ConfigError
from keepa_deals.evaluation.stages import (
    HISTORY_WINDOW_MIN,
    commit,
    economics,
    fees_for,
    history_median_cents,
    live_used_offers,
    parse_deal,
    parse_product,
    peek,
    screen_deal,
)
from keepa_deals.evaluation.verdicts import (
    Accepted,
    Economics,
    Fees,
    PeekPassed,
    Reason,
    Rejected,
    Stage,
    percent_below,
)
from keepa_deals.infra.clock import ManualClock
from keepa_deals.keepa.client import KeepaClient
from keepa_deals.keepa.keepa_time import keepa_minutes_to_unix_ms
from keepa_deals.keepa_sim import KeepaSimulator

KM = 7_880_000  # a Keepa minute in 2025
S = Settings()  # defaults: 15 % referral, 180c closing, 350c FBA, 399c shipping, 300c, 30 %


def array(**cells: int | None) -> list[int | None]:
    """A 36-wide array indexed by price type, -1 (no data) where not given."""
    out: list[int | None] = [-1] * 36
    for name, value in cells.items():
        out[int(name[1:])] = value
    return out


def deal(
    price: int | None = 1_500, avg90: int | None = 4_000, rank: int | None = 50_000, **extra: Any
) -> dict[str, Any]:
    avg = [array() for _ in range(4)]
    avg[3][2] = -1 if avg90 is None else avg90
    record = {
        "asin": "0123456789",
        "title": "The Quiet Harbour",
        "rootCat": 283155,
        "creationDate": KM,
        "lastUpdate": KM,
        "current": array(p2=-1 if price is None else price, p3=-1 if rank is None else rank),
        "avg": avg,
    }
    record.update(extra)
    return record


def offer(price: int, shipping: int = 399, condition: int = 3, fba: bool = False) -> dict[str, Any]:
    # offerCSV is a history of [time, price, shipping] triples; the last one counts.
    return {
        "offerCSV": [KM - 5_000, price + 777, shipping, KM - 50, price, shipping],
        "condition": condition,
        "isFBA": fba,
    }


def product(
    price: int | None = 1_500,
    avg90: int | None = 4_000,
    rank: int | None = 50_000,
    drops: int | None = 6,
    offers: list[dict[str, Any]] | None = None,
    used_history: list[int] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    stats: dict[str, Any] = {
        "current": array(p2=-1 if price is None else price, p3=-1 if rank is None else rank),
        "avg90": array(p2=-1 if avg90 is None else avg90),
    }
    if drops is not None:
        stats["salesRankDrops90"] = drops
    csv: list[Any] | None = None
    if used_history is not None:
        csv = [None] * 36
        csv[2] = used_history
    p: dict[str, Any] = {
        "asin": "0123456789",
        "title": "The Quiet Harbour",
        "rootCategory": 283155,
        "categoryTree": [
            {"catId": 283155, "name": "Books"},
            {"catId": 17, "name": "Literature & Fiction"},
        ],
        "lastUpdate": KM,
        "csv": csv,
        "stats": stats,
        "offersSuccessful": False,
    }
    if offers is not None:
        p["offers"] = offers
        p["liveOffersOrder"] = list(range(len(offers)))
        p["offersSuccessful"] = True
    p.update(extra)
    return p


def rejected(result: object) -> Rejected:
    assert isinstance(result, Rejected), result
    return result


# --- arithmetic ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sell", "percent", "referral"),
    [
        (1_003, "15", 150),  # 150.45 -> 150
        (1_010, "15", 152),  # 151.5 rounds half up -> 152
        (1_000, "8.25", 83),  # 82.5 -> 83
        (999, "8.25", 82),  # 82.4175 -> 82
        (0, "15", 0),
    ],
)
def test_the_referral_fee_is_exact_in_cents(sell: int, percent: str, referral: int) -> None:
    settings = Settings.from_mapping({"REFERRAL_FEE_PERCENT": percent})
    assert fees_for(sell, settings) == Fees(referral, 180, 350)


def test_profit_and_roi_are_integer_arithmetic() -> None:
    e = economics(1_899, 3_600, S)
    assert e == Economics(1_899, 3_600, Fees(540, 180, 350), 631, 3_322)
    assert e.fees.fees_cents == 1_070 and e.roi_percent == 33.22
    loss = economics(1_000, 1_000, S)
    assert (loss.profit_cents, loss.roi_bps) == (-680, -6_800)
    assert economics(3, 1_000, S).roi_bps == (1_000 - 3 - 680) * 10_000 // 3


def test_percent_below() -> None:
    assert percent_below(1_500, 4_000) == 62
    assert percent_below(4_400, 4_000) == -10
    assert percent_below(None, 4_000) is None and percent_below(1, None) is None


# --- parsing Keepa's shapes ---------------------------------------------------------------


def test_nulls_missing_arrays_and_minus_one_are_no_data() -> None:
    bare = parse_deal({"asin": "0123456789", "current": None, "avg": [None, [1, 2]]})
    assert (bare.price_cents, bare.avg90_price_cents, bare.sales_rank) == (None, None, None)
    assert (bare.title, bare.root_category_id, bare.created_km) == (None, None, 0)
    short = parse_deal({"asin": "0123456789", "current": [-1, -1, 999], "avg": [[], [], [], [5]]})
    assert (short.price_cents, short.sales_rank, short.avg90_price_cents) == (999, None, None)
    nulls = parse_deal(deal(current=[None] * 36, title=""))
    assert nulls.price_cents is None and nulls.title is None
    facts = parse_product(
        {
            "asin": "0123456789",
            "stats": {"current": None, "avg90": [True] * 3, "salesRankDrops90": -1},
        }
    )
    assert facts.has_stats and facts.price_cents is None and facts.avg90_price_cents is None
    assert facts.rank_drops_90 is None and facts.category is None
    assert not parse_product({"asin": "0123456789", "stats": None}).has_stats


def test_a_deal_record_is_read_with_unix_seconds() -> None:
    d = parse_deal(deal(lastUpdate=KM + 3))
    assert (d.price_cents, d.avg90_price_cents, d.sales_rank, d.percent_drop) == (
        1_500,
        4_000,
        50_000,
        62,
    )
    assert (
        d.created_s * 1000 == keepa_minutes_to_unix_ms(KM) and d.last_update_s == d.created_s + 180
    )


def test_live_used_offers_cheapest_landed_first() -> None:
    offers: list[Any] = [
        offer(2_000, 0, fba=True),
        offer(1_500, 399),
        offer(1_000, 399, condition=1),  # new: not a used copy
        offer(1_200, 399),  # not live
        offer(1_900, -1),  # a missing shipping cost counts as none
        {"offerCSV": [KM, -1, 0], "condition": 2},  # no price
        {"offerCSV": [KM, 100], "condition": 2},  # not triples
        "junk",
    ]
    p = product(offers=offers, liveOffersOrder=[0, 1, 2, 4, 5, 6, 7])
    found = live_used_offers(p)
    assert found is not None
    assert [(o.price_cents, o.landed_cents, o.is_fba) for o in found] == [
        (1_500, 1_899, False),
        (1_900, 1_900, False),
        (2_000, 2_000, True),
    ]
    assert live_used_offers(product()) is None  # offers not requested
    assert live_used_offers(product(offers=[offer(1)], offersSuccessful=False)) is None
    no_order = product(offers=[offer(1_500)])
    del no_order["liveOffersOrder"]
    assert live_used_offers(no_order) is not None


def test_the_history_median_weighs_by_time_and_skips_no_offer_spans() -> None:
    # 3800 for 600 min, no offer for 100, 3400 for 200, 1500 for the last 100.
    series = [KM - 1_000, 3_800, KM - 400, -1, KM - 300, 3_400, KM - 100, 1_500]
    assert history_median_cents(series, KM) == 3_800
    # A value from before the window counts only for the part inside it.
    start = KM - HISTORY_WINDOW_MIN
    assert history_median_cents([start - 10**6, 9_000, start + 10, 2_000], KM) == 2_000
    assert history_median_cents([start - 10**6, 9_000, start + 10**5, 2_000], KM) == 9_000
    assert history_median_cents([start - 10**6, 9_000, start - 10, 2_000], KM) == 2_000
    for empty in (None, [], [KM], [KM - 10, -1], "x", [KM - 10, None, None, 5]):
        assert history_median_cents(empty, KM) is None


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


# --- the simulator's own objects ----------------------------------------------------------


@pytest.fixture(scope="module")
def client() -> Iterator[KeepaClient]:
    sim = KeepaSimulator(seed=7, refill_rate=100_000, clock=ManualClock(1_767_225_600.0))
    sim.start()
    keepa = KeepaClient("evaluatetestkey0001", sim.url)
    try:
        yield keepa
    finally:
        keepa.session.close()
        sim.stop()


def test_the_simulators_deals_and_products_go_through_every_stage(client: KeepaClient) -> None:
    selection = json.loads(S.deal_query_path.read_text())
    deals: list[dict[str, Any]] = []
    for page in range(20):
        found = client.deals({**selection, "page": page}).deals
        deals += found
        if len(found) < 150:
            break
    verdicts: Counter[tuple[str, str]] = Counter()
    survivors = []
    for record in deals:
        screened = screen_deal(parse_deal(record), S)
        if screened is None:
            survivors.append(record["asin"])
        else:
            verdicts[(screened.stage, screened.reason)] += 1
    committed = []
    for start in range(0, len(survivors), 100):
        for p in client.products(survivors[start : start + 100], stats=90, history=False).products:
            assert p["csv"] is None  # history=0 keeps csv as null: parsed all the same
            peeked = peek(p, S)
            if isinstance(peeked, Rejected):
                verdicts[(peeked.stage, peeked.reason)] += 1
            else:
                committed.append(p["asin"])
    accepted: list[Accepted] = []
    for start in range(0, len(committed), 20):
        batch = committed[start : start + 20]
        for p in client.products(batch, stats=90, offers=20).products:
            final = commit(p, S)
            if isinstance(final, Rejected):
                verdicts[(final.stage, final.reason)] += 1
            else:
                accepted.append(final)
    assert sum(verdicts.values()) + len(accepted) == len(deals) > 500
    # Most deals are ruled out for free (failure mode: paying to reject), and some survive to be
    # accepted.
    free = sum(n for (stage, _), n in verdicts.items() if stage == Stage.FREE)
    assert free > 0.8 * len(deals)
    assert any(stage == Stage.COMMIT for stage, _ in verdicts) and accepted
    for a in accepted:
        e = a.economics
        assert e.profit_cents == e.sell_price_cents - e.buy_price_cents - e.fees.fees_cents
        assert e.profit_cents >= S.min_profit_cents and e.roi_bps >= S.min_roi_percent * 100
        assert a.facts.title and a.facts.sales_rank and a.facts.avg90_price_cents


# --- settings -----------------------------------------------------------------------------


def test_evaluation_settings_are_validated() -> None:
    assert Settings.from_mapping({"REFERRAL_FEE_PERCENT": "8.25"}).referral_fee_bps == 825
    with pytest.raises(ConfigError, match=r"REFERRAL_FEE_PERCENT=15\.125: must have at most two"):
        Settings.from_mapping({"REFERRAL_FEE_PERCENT": "15.125"})
    with pytest.raises(ConfigError, match="BUY_PRICE_MIN_CENTS=500: must not exceed"):
        Settings.from_mapping({"BUY_PRICE_MIN_CENTS": "500", "BUY_PRICE_MAX_CENTS": "400"})
    with pytest.raises(ConfigError, match="SALES_RANK_MIN"):
        Settings.from_mapping({"SALES_RANK_MIN": "10", "SALES_RANK_MAX": "9"})
    with pytest.raises(ConfigError, match="STALE_AFTER_S=60: must be at least 3600"):
        Settings.from_mapping({"STALE_AFTER_S": "60"})
    assert Settings().with_overrides({"MIN_ROI_PERCENT": "45"}).min_roi_percent == 45
