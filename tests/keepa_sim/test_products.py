"""/product over HTTP: the product objects, and a charge decided by what was returned."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest

from keepa_deals.keepa.keepa_time import unix_s_to_keepa_minutes
from keepa_deals.keepa_sim import KeepaSimulator
from keepa_deals.keepa_sim.catalogue import ProductProfile
from keepa_deals.keepa_sim.timeline import EventState
from tests.keepa_sim.conftest import Api, catalogue_asins

Predicate = Callable[[ProductProfile, EventState], bool]


def find(sim: KeepaSimulator, predicate: Predicate, n: int = 1) -> list[str]:
    """ASINs of products whose profile and current state satisfy `predicate`."""
    tl = sim.app.products.timeline
    now_km = unix_s_to_keepa_minutes(sim.now())
    found = []
    for i in range(tl.catalogue.size):
        if predicate(tl.catalogue.profile(i), tl.state_at(i, now_km)):
            found.append(tl.catalogue.asins[i])
            if len(found) == n:
                return found
    raise AssertionError("no such product in the catalogue")


def offers_found(st: EventState) -> int:
    return st.count_new + st.count_used


def test_untracked_asins_come_back_without_data_and_malformed_ones_are_dropped(
    sim: KeepaSimulator, api: Api
) -> None:
    known = catalogue_asins(sim, 3)
    asked = [known[0], "0000000000", known[1], "B0NOTREAL1", "XXXXXXXXXX", known[2], known[0]]
    data = api.product(asked).json()
    # XXXXXXXXXX is no ASIN (neither B0... nor an ISBN-10): dropped, as Keepa does.
    got = [p["asin"] for p in data["products"]]
    assert got == [known[0], "0000000000", known[1], "B0NOTREAL1", known[2]]
    untracked = [p for p in data["products"] if p["asin"] not in known]
    assert all(p["csv"] is None and p["productType"] == 3 for p in untracked)
    assert (data["tokensConsumed"], data["tokensLeft"]) == (5, 295)


def test_nothing_but_malformed_asins_gets_no_products_key(api: Api) -> None:
    """The keepa client raises "Possibly invalid ASINs" exactly when `products` is absent."""
    data = api.product(["XXXXXXXXXX", "123"]).json()
    assert "products" not in data
    assert (data["tokensConsumed"], data["tokensLeft"]) == (0, 300)


def test_product_objects_have_keepas_layout(sim: KeepaSimulator, api: Api) -> None:
    asins = catalogue_asins(sim, 40)
    products = api.product(asins, stats=90).json()["products"]
    now_km = unix_s_to_keepa_minutes(sim.now())
    for p in products:
        assert p["domainId"] == 1 and len(p["asin"]) == 10 and p["title"]
        assert isinstance(p["rootCategory"], int) and p["categories"]
        assert p["lastUpdate"] <= now_km and p["trackingSince"] < p["lastUpdate"]
        csv, stats = p["csv"], p["stats"]
        assert len(csv) == 36
        assert {i for i, s in enumerate(csv) if s is not None} <= {0, 1, 2, 3, 11, 12}
        for index in (0, 1, 2, 11, 12):
            series = csv[index]
            assert len(series) % 2 == 0
            assert series[::2] == sorted(series[::2])
            assert series[-1] == stats["current"][index]  # the latest point is current
        for name in ("current", "avg", "avg30", "avg90", "avg180", "avg365", "min", "max"):
            assert len(stats[name]) == 36
        assert stats["avg"] == stats["avg90"]
        for point in stats["min"] + stats["max"]:
            assert point is None or (len(point) == 2 and point[1] > 0)
        for name in ("salesRankDrops30", "salesRankDrops90", "totalOfferCount"):
            assert isinstance(stats[name], int)
        assert stats["current"][4] == -1  # no data for LISTPRICE


def test_the_catalogue_mixes_what_a_used_book_finder_rejects(sim: KeepaSimulator, api: Api) -> None:
    books = find(sim, lambda p, st: p.is_book, n=100)
    products = api.product(books, stats=90).json()["products"]
    used_now = [p["stats"]["current"][2] for p in products]
    assert sum(u == -1 for u in used_now) >= 5  # no used offer
    assert sum(p["stats"]["salesRankDrops30"] == 0 for p in products) >= 5
    assert sum(p["stats"]["avg90"][2] > 10_000 for p in products) >= 2  # above $100
    assert sum(300 <= u <= 10_000 for u in used_now) >= 50


def test_history_0_keeps_csv_as_null(sim: KeepaSimulator, api: Api) -> None:
    products = api.product(catalogue_asins(sim, 3), history=0, stats=30).json()["products"]
    assert all("csv" in p and p["csv"] is None for p in products)
    assert all(p["stats"]["current"] for p in products)


def test_rating_adds_one_and_buybox_two_per_product(sim: KeepaSimulator, api: Api) -> None:
    asins = find(sim, lambda p, st: p.review_count > 0, n=4)
    rated = api.product(asins, rating=1).json()
    assert rated["tokensConsumed"] == 8
    assert all(p["csv"][16] and p["csv"][17] for p in rated["products"])
    boxed = api.product(asins, buybox=1).json()
    assert boxed["tokensConsumed"] == 12
    assert all(len(p["csv"][18]) % 3 == 0 for p in boxed["products"])  # [time, price, ship]


def test_offers_cost_six_per_page_of_ten_offers_found(sim: KeepaSimulator, api: Api) -> None:
    many = find(sim, lambda p, st: offers_found(st) >= 35)[0]
    few = find(sim, lambda p, st: 1 <= offers_found(st) <= 9)[0]
    tl = sim.app.products.timeline
    now_km = unix_s_to_keepa_minutes(sim.now())
    found = offers_found(tl.state_at(tl.catalogue.index_by_asin[many], now_km))

    capped = api.product(many, offers=20).json()
    assert capped["tokensConsumed"] == 12
    assert len(capped["products"][0]["offers"]) == 20
    assert capped["products"][0]["offersSuccessful"] is True

    full = api.product(many, offers=100).json()
    assert len(full["products"][0]["offers"]) == found
    assert full["tokensConsumed"] == 6 * math.ceil(found / 10)

    assert api.product(few, offers=20).json()["tokensConsumed"] == 6
    both = api.product([many, few], offers=20, stock=1, buybox=1, rating=1).json()
    assert both["tokensConsumed"] == (12 + 2 + 1) + (6 + 2 + 1)  # buybox ignored
    assert all("stockCSV" in o for p in both["products"] for o in p["offers"])


def test_offers_match_the_product_prices(sim: KeepaSimulator, api: Api) -> None:
    asins = find(sim, lambda p, st: st.used > 0 and st.count_used >= 2, n=5)
    for p in api.product(asins, offers=40, stats=90).json()["products"]:
        used = [o["offerCSV"][-2] for o in p["offers"] if o["condition"] >= 2]
        assert min(used) == p["stats"]["current"][2]
        assert sorted(p["liveOffersOrder"]) == list(range(len(p["offers"])))
        for offer in p["offers"]:
            assert len(offer["sellerId"]) == 13 and offer["offerCSV"][1] > 0


def test_update_0_costs_one_more_when_the_data_is_under_an_hour_old(
    sim: KeepaSimulator, api: Api
) -> None:
    tl = sim.app.products.timeline
    now_km = unix_s_to_keepa_minutes(sim.now())

    def age(p: ProductProfile, st: EventState) -> int:
        return now_km - tl.last_update(p.index, now_km)

    fresh = find(sim, lambda p, st: age(p, st) < 60)[0]
    stale = find(sim, lambda p, st: age(p, st) >= 60)[0]
    assert api.product(fresh).json()["products"][0]["lastUpdate"] > now_km - 60
    body = api.product([fresh, stale], update=0).json()
    assert body["tokensConsumed"] == 2 + 1
    assert [p["lastUpdate"] for p in body["products"]] == [now_km, now_km]


def test_products_can_be_looked_up_by_code(sim: KeepaSimulator, api: Api) -> None:
    tl = sim.app.products.timeline
    asin = find(sim, lambda p, st: p.is_book)[0]
    ean = tl.catalogue.profile(tl.catalogue.index_by_asin[asin]).code
    body = api.get("product", domain=1, code=ean).json()
    assert [p["asin"] for p in body["products"]] == [asin]
    assert body["products"][0]["eanList"] == [ean]


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"asin": ",".join(f"{i:010d}" for i in range(101))}, 405),
        ({"offers": 10}, 405),
        ({"offers": 101}, 405),
        ({"domain": 7}, 405),
        ({"domain": None}, 400),
        ({"asin": ""}, 400),
    ],
)
def test_out_of_range_parameters_are_refused_and_not_charged(
    sim: KeepaSimulator, api: Api, params: dict[str, Any], status: int
) -> None:
    query: dict[str, Any] = {"domain": 1, "asin": catalogue_asins(sim, 1)[0], **params}
    response = api.get("product", **{k: v for k, v in query.items() if v is not None})
    assert response.status_code == status
    body = response.json()
    assert body["error"]["type"] == {400: "REQUEST_REJECTED", 405: "METHOD_NOT_ALLOWED"}[status]
    assert (body["tokensConsumed"], body["tokensLeft"]) == (0, 300)
