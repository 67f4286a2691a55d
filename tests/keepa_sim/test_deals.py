"""/deal over HTTP: pages of 150, a 120 s cache, deals that come and go with the clock,
Keepa's silent fallback for string-typed numbers, filters and loose sorting."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest

from keepa_deals.infra.clock import ManualClock
from keepa_deals.keepa.keepa_time import keepa_minutes_to_unix_ms, unix_s_to_keepa_minutes
from keepa_deals.keepa_sim import KeepaSimulator
from tests.keepa_sim.conftest import USED_BOOKS, Api, SimFactory

NEW_PRICE_DROPS: dict[str, Any] = {"domainId": 1, "priceTypes": [1], "dateRange": 0}


def all_deals(api: Api, selection: dict[str, Any]) -> list[dict[str, Any]]:
    deals: list[dict[str, Any]] = []
    for page in range(70):
        dr = api.deal({**selection, "page": page}).json()["deals"]["dr"]
        deals += dr
        if len(dr) < 150:
            return deals
    raise AssertionError("more pages than Keepa serves")


def keys(deals: list[dict[str, Any]]) -> set[tuple[str, int]]:
    return {(d["asin"], d["creationDate"]) for d in deals}


@pytest.fixture
def big(make_sim: SimFactory) -> KeepaSimulator:
    return make_sim(catalogue_size=6000, refill_rate=100, sort_jitter=0.0)


@pytest.fixture
def big_api(big: KeepaSimulator) -> Api:
    return Api(big.url)


def test_pages_hold_150_deals_and_the_last_one_fewer(big_api: Api) -> None:
    pages = [big_api.deal({**USED_BOOKS, "page": n}).json()["deals"] for n in range(4)]
    sizes = [len(p["dr"]) for p in pages]
    assert sizes[:2] == [150, 150]
    assert 0 < sizes[2] < 150 and sizes[3] == 0
    asins = [d["asin"] for p in pages for d in p["dr"]]
    assert len(asins) == len(set(asins))
    assert pages[0]["categoryIds"] == [283155] and pages[0]["categoryNames"] == ["Books"]
    assert pages[0]["categoryCount"] == [len(asins)]


def test_a_deal_has_keepas_fields(big: KeepaSimulator, big_api: Api) -> None:
    now_km = unix_s_to_keepa_minutes(big.now())
    for d in big_api.deal(USED_BOOKS).json()["deals"]["dr"]:
        assert len(d["asin"]) == 10 and d["title"] and d["rootCat"] == 283155
        assert now_km - 720 < d["creationDate"] <= now_km  # updated in the last 12 hours
        assert d["lastUpdate"] >= d["creationDate"]
        assert "".join(map(chr, d["image"])).endswith(".jpg")
        assert len(d["current"]) == 36 and len(d["currentSince"]) == 36
        assert [len(row) for row in d["avg"]] == [36] * 4
        assert [len(d["delta"]), len(d["deltaPercent"])] == [4, 4]
        used, avg = d["current"][2], d["avg"][1][2]
        assert 300 <= used <= 10_000
        assert d["delta"][1][2] == avg - used
        assert 20 <= d["deltaPercent"][1][2] == round(100 * (avg - used) / avg) <= 100
        assert 0 < d["current"][3] <= 2_000_000


def test_pages_are_cached_for_120_simulated_seconds(
    big_api: Api, clock: ManualClock, make_sim: SimFactory
) -> None:
    def uncached() -> dict[str, Any]:  # the same seed and clock, an empty cache
        fresh = Api(make_sim(catalogue_size=6000, sort_jitter=0.0).url)
        deals: dict[str, Any] = fresh.deal(NEW_PRICE_DROPS).json()["deals"]
        return deals

    first = big_api.deal(NEW_PRICE_DROPS).json()["deals"]
    clock.advance(119)
    assert big_api.deal(NEW_PRICE_DROPS).json()["deals"] == first
    assert uncached() != first  # the deals moved on in those two minutes...
    clock.advance(1)
    assert big_api.deal(NEW_PRICE_DROPS).json()["deals"] == uncached()  # ...and so does the page


def test_deals_appear_and_expire_as_time_moves(
    big: KeepaSimulator, big_api: Api, clock: ManualClock
) -> None:
    start_km = unix_s_to_keepa_minutes(big.now())
    before = keys(all_deals(big_api, USED_BOOKS))
    clock.advance(3 * 3600)
    later = keys(all_deals(big_api, USED_BOOKS))
    new = {k for k in later if k[1] > start_km}
    assert len(new) >= 30 and new.isdisjoint(before)
    assert before - later  # some expired or were superseded
    clock.advance(10 * 3600)
    assert keys(all_deals(big_api, USED_BOOKS)).isdisjoint(before)  # all over 12 h old


def test_published_deals_are_the_ground_truth_of_a_window(
    big: KeepaSimulator, big_api: Api, clock: ManualClock
) -> None:
    start_s = big.now()
    clock.advance(3600)
    published = big.deals_published(USED_BOOKS, start_s, big.now())
    over_http = big_api.admin(
        "GET",
        "published",
        params={"selection": json.dumps(USED_BOOKS), "start_s": start_s, "end_s": big.now()},
    ).json()["deals"]
    assert [tuple(row) for row in over_http] == published
    assert 20 <= len(published) <= 60  # ~31 an hour with this catalogue
    start_km = unix_s_to_keepa_minutes(start_s)
    visible = {k for k in keys(all_deals(big_api, USED_BOOKS)) if k[1] > start_km}
    assert visible <= set(published)
    tl, now_km = big.app.products.timeline, unix_s_to_keepa_minutes(big.now())
    for asin, minute in set(published) - visible:  # gone again: the product changed since
        latest = tl.latest(tl.catalogue.index_by_asin[asin], now_km)
        assert latest is not None and latest[0] > minute


def test_string_typed_numbers_are_silently_replaced_by_defaults(big_api: Api) -> None:
    def page(**changes: Any) -> list[str]:
        response = big_api.deal({**USED_BOOKS, **changes})
        assert response.status_code == 200 and response.json()["tokensConsumed"] == 5
        return [d["asin"] for d in response.json()["deals"]["dr"]]

    week, widest = page(dateRange=1), page(dateRange=3)
    assert week != widest
    assert page(dateRange="1") == widest  # Keepa falls back: no error, other data
    by_percent = page(sortType=4)
    assert by_percent != week
    assert page(sortType="4") == week  # back to the default sort
    assert page(page="1") == week  # page 0
    assert page(priceTypes=["2"]) != week  # the default price type (AMAZON)


@pytest.mark.parametrize(
    ("sort_type", "key", "descending"),
    [
        (1, lambda d: d["creationDate"], True),
        (-1, lambda d: d["creationDate"], False),
        (2, lambda d: d["delta"][1][2], True),
        (3, lambda d: d["current"][3], False),
        (4, lambda d: d["deltaPercent"][1][2], True),
        (-4, lambda d: d["deltaPercent"][1][2], False),
    ],
)
def test_sort_types(big_api: Api, sort_type: int, key: Any, descending: bool) -> None:
    values = [key(d) for d in all_deals(big_api, {**USED_BOOKS, "sortType": sort_type})]
    assert values == sorted(values, reverse=descending)


def test_sorting_is_only_approximate_with_jitter(make_sim: SimFactory, big_api: Api) -> None:
    loose = Api(make_sim(catalogue_size=6000, sort_jitter=0.3).url)
    selection = {**USED_BOOKS, "sortType": 4}
    exact, jittered = all_deals(big_api, selection), all_deals(loose, selection)
    assert exact != jittered
    assert sorted(d["asin"] for d in exact) == sorted(d["asin"] for d in jittered)
    values = [d["deltaPercent"][1][2] for d in jittered]
    assert sum(a < b for a, b in itertools.pairwise(values)) >= 3  # many ties
    assert all_deals(loose, selection) == jittered  # loose, but deterministic


def test_filters(big_api: Api) -> None:
    wide = {"domainId": 1, "priceTypes": [2], "dateRange": 1}
    everything = all_deals(big_api, wide)
    assert len({d["rootCat"] for d in everything}) >= 4
    assert all(d["delta"][1][2] > 0 for d in everything)  # drops only
    no_books = all_deals(big_api, {**wide, "excludeCategories": [283155]})
    assert no_books and all(d["rootCat"] != 283155 for d in no_books)
    ranged = all_deals(
        big_api,
        {
            **wide,
            "isRangeEnabled": True,
            "currentRange": [1000, 2000],
            "deltaPercentRange": [40, 60],
        },
    )
    assert ranged and all(1000 <= d["current"][2] <= 2000 for d in ranged)
    assert all(40 <= d["deltaPercent"][1][2] <= 60 for d in ranged)
    unranged = all_deals(big_api, {**wide, "currentRange": [1000, 2000]})
    assert len(unranged) == len(everything)  # ranges need isRangeEnabled
    ranked = all_deals(big_api, {**wide, "salesRankRange": [1000, 50000]})
    assert ranked and all(1000 <= d["current"][3] <= 50000 for d in ranked)
    rated = all_deals(big_api, {**wide, "minRating": 45})  # -1 is its off value
    assert rated and all(d["current"][16] >= 45 for d in rated)
    assert len(rated) < len(everything)
    gone = all_deals(big_api, {**wide, "isFilterEnabled": True, "isOutOfStock": True})
    assert gone and all(d["current"][2] == -1 for d in gone)
    unfiltered = all_deals(big_api, {**wide, "isOutOfStock": True})
    assert keys(unfiltered) == keys(everything)  # the stock flags need isFilterEnabled
    sub = all_deals(big_api, {**wide, "includeCategories": [25]})  # a sub-category
    assert sub and all(d["categories"] == [25] for d in sub)
    titled = all_deals(big_api, {**wide, "titleSearch": "the"})
    assert titled and all("the" in d["title"].lower() for d in titled)


@pytest.mark.parametrize(
    ("change", "status"),
    [
        ({"priceTypes": [1, 2]}, 400),
        ({"priceTypes": [40]}, 405),
        ({"dateRange": 9}, 405),
        ({"sortType": 7}, 405),
        ({"domainId": 7}, 405),
        ({"page": -1}, 405),
    ],
)
def test_out_of_range_selections_are_refused_and_not_charged(
    api: Api, change: dict[str, Any], status: int
) -> None:
    response = api.deal({**USED_BOOKS, **change})
    assert response.status_code == status
    assert (response.json()["tokensConsumed"], response.json()["tokensLeft"]) == (0, 300)


def test_a_selection_that_is_not_json_is_rejected(api: Api) -> None:
    for response in (api.get("deal", selection="{domainId: 1"), api.get("deal")):
        assert response.status_code == 400
        assert response.json()["error"]["type"] == "REQUEST_REJECTED"


def test_the_selection_may_be_posted_and_paths_may_end_in_a_slash(api: Api) -> None:
    by_get = api.deal(USED_BOOKS).json()["deals"]
    posted = api.session.post(
        f"{api.base}/deal/", params={"key": api.key}, data=json.dumps(USED_BOOKS), timeout=10
    )
    assert posted.status_code == 200 and posted.json()["deals"] == by_get
    slashed = api.session.get(
        f"{api.base}/deal/?",
        timeout=10,
        params={"key": api.key, "selection": json.dumps(USED_BOOKS)},
    )
    assert slashed.json()["deals"] == by_get


def test_a_deal_agrees_with_its_product(big_api: Api) -> None:
    deals = big_api.deal(USED_BOOKS).json()["deals"]["dr"][:30]
    body = big_api.product([d["asin"] for d in deals], stats=90).json()
    products = {p["asin"]: p for p in body["products"]}
    for deal in deals:
        product = products[deal["asin"]]
        assert product["stats"]["current"][:4] == deal["current"][:4]
        assert product["lastPriceChange"] == deal["creationDate"]
        assert product["csv"][2][-2:] == [deal["creationDate"], deal["current"][2]]


@pytest.mark.parametrize(("date_range", "days"), [(0, 2), (1, 7), (2, 30), (3, 90)])
def test_a_deals_averages_are_its_products_stats_to_the_cent(
    big_api: Api, date_range: int, days: int
) -> None:
    """A deal's averages are its product's `stats` over the same window: the date
    range's days before the minute the deal was found (a `stats` date range)."""
    deals = big_api.deal(USED_BOOKS).json()["deals"]["dr"][:12]
    assert len(deals) == 12
    for deal in deals:
        end_ms = keepa_minutes_to_unix_ms(deal["creationDate"])
        window = f"{end_ms - days * 86_400_000},{end_ms}"
        (product,) = big_api.product(deal["asin"], stats=window).json()["products"]
        stats_avg = product["stats"]["avg"]
        for price_type in (0, 1, 2, 3, 11, 12):
            assert deal["avg"][date_range][price_type] == stats_avg[price_type], price_type
        used, avg = deal["current"][2], stats_avg[2]
        assert deal["delta"][date_range][2] == (avg - used if avg > 0 and used > 0 else 0)


def _lowest_used_cents(
    sim: KeepaSimulator, asin: str, creation_km: int, days: int | None
) -> int | None:
    """The product's lowest used price before a deal, read off its history: over the
    whole history (days None, `stats.min`) or the `days` before (`minInInterval`)."""
    products = sim.app.products
    index = products.timeline.catalogue.index_by_asin[asin]
    history = products.history(index, creation_km)
    if days is None:
        used = [st.used for st in history.states if st.used > 0]
        return min(used) if used else None
    low = history.window(creation_km - days * 1440, creation_km).low[2]
    return None if low is None else low[1]


@pytest.mark.parametrize(("flag", "days"), [("isLowest", None), ("isLowest90", 90)])
def test_is_lowest_keeps_exactly_the_deals_at_their_low(
    big: KeepaSimulator, big_api: Api, flag: str, days: int | None
) -> None:
    wide = {"domainId": 1, "priceTypes": [2], "dateRange": 3, "sortType": 1}
    everything = all_deals(big_api, wide)
    expected = set()
    for d in everything:
        low = _lowest_used_cents(big, d["asin"], d["creationDate"], days)
        if low is not None and d["current"][2] <= low:
            expected.add((d["asin"], d["creationDate"]))
    lowest = all_deals(big_api, {**wide, "isFilterEnabled": True, flag: True})
    assert keys(lowest) == expected
    assert 0 < len(expected) < len(everything)
    # Without isFilterEnabled the flag is ignored, as Keepa's filter options are.
    assert keys(all_deals(big_api, {**wide, flag: True})) == keys(everything)


def test_deal_pages_carry_dr_date_index_and_min_rating(api: Api) -> None:
    deals = api.deal(USED_BOOKS).json()["deals"]
    assert deals["drDateIndex"] == []
    assert all(d["minRating"] == -1 for d in deals["dr"])


FILTERS_ON: dict[str, Any] = {"isFilterEnabled": True}


@pytest.mark.parametrize(
    ("extra", "expect_any"),
    [
        ({"warehouseConditions": [2, 3]}, False),  # no warehouse deals are simulated
        ({"isPrimeExclusive": True}, False),
        ({**FILTERS_ON, "isLowestOffer": True}, False),  # USED is no new offer
        ({"isLowestOffer": True}, True),  # ignored without isFilterEnabled
        ({"binding": ["Paperback"]}, True),  # attribute lists need no switch
        ({"binding": ["Blu-ray"]}, False),  # a binding no book has
    ],
)
def test_deal_flags_and_attribute_lists_are_applied(
    api: Api, extra: dict[str, object], expect_any: bool
) -> None:
    dr = api.deal({**USED_BOOKS, **extra}).json()["deals"]["dr"]
    assert bool(dr) == expect_any
    if "binding" in extra and dr:
        products = api.product([d["asin"] for d in dr[:20]]).json()["products"]
        assert {p["binding"] for p in products} == {"Paperback"}
