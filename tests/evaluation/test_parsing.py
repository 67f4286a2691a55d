"""Evaluation reads Keepa's shapes: nulls, missing arrays and -1 are no data; offers and
the price history as Keepa sends them."""

from __future__ import annotations

from typing import Any

from keepa_deals.evaluation.stages import (
    HISTORY_WINDOW_MIN,
    history_median_cents,
    live_used_offers,
    parse_deal,
    parse_product,
)
from keepa_deals.keepa.keepa_time import keepa_minutes_to_unix_ms
from tests.support.keepa_objects import KM, deal, offer, product

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
