"""The catalogue and the deals are a function of (seed, simulated time), never of the
order or number of the requests made."""

from __future__ import annotations

from typing import Any

from keepa_deals.infra.clock import ManualClock
from tests.keepa_sim.conftest import USED_BOOKS, Api, SimFactory, catalogue_asins


def products(api: Api, asins: list[str]) -> list[dict[str, Any]]:
    body = api.product(asins, stats=90, offers=20, rating=1).json()
    items: list[dict[str, Any]] = body["products"]
    return items


def test_same_seed_same_answers_whatever_was_asked_before(
    make_sim: SimFactory, clock: ManualClock
) -> None:
    a_sim, b_sim = make_sim(seed=11, refill_rate=1000), make_sim(seed=11, refill_rate=1000)
    a, b = Api(a_sim.url), Api(b_sim.url)
    first, second = catalogue_asins(a_sim, 30), catalogue_asins(a_sim, 30, start=500)
    a_first = products(a, first)
    b.deal({**USED_BOOKS, "page": 1})
    b_second = products(b, second)
    b_first = products(b, list(reversed(first)))
    a_second = products(a, second)
    assert a_first == sorted(b_first, key=lambda p: first.index(p["asin"]))
    assert a_second == b_second
    a_deals = [a.deal({**USED_BOOKS, "page": n}).json()["deals"] for n in (1, 0)]
    b_deals = [b.deal({**USED_BOOKS, "page": n}).json()["deals"] for n in (1, 0)]
    assert a_deals == b_deals
    clock.advance(7200)
    assert a.deal({**USED_BOOKS, "page": 0}).json()["deals"] == b.deal(USED_BOOKS).json()["deals"]
    assert products(a, first[:5]) == products(b, first[:5])


def test_another_seed_is_another_catalogue(make_sim: SimFactory) -> None:
    one, two = make_sim(seed=1), make_sim(seed=2)
    assert set(catalogue_asins(one, 4000)).isdisjoint(catalogue_asins(two, 200))
    deals_one = Api(one.url).deal(USED_BOOKS).json()["deals"]["dr"]
    deals_two = Api(two.url).deal(USED_BOOKS).json()["deals"]["dr"]
    assert {d["asin"] for d in deals_one}.isdisjoint(d["asin"] for d in deals_two)


def test_asins_look_like_asins(make_sim: SimFactory) -> None:
    sim = make_sim()
    asins = catalogue_asins(sim, 4000)
    assert len(set(asins)) == 4000
    books = [a for a in asins if a[0].isdigit()]
    assert len(books) > 2000 and all(a[:9].isdigit() for a in books)  # ISBN-10s
    assert all(a.startswith("B0") and a.isalnum() for a in asins if a not in books)
    assert all(len(a) == 10 for a in asins)
