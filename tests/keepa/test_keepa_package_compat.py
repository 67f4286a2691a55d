"""The `keepa` PyPI package, the client most Keepa users have, against the simulator.

Its host is hard-coded (`requests.get("https://api.keepa.com/<endpoint>/?", ...)` in
`keepa.keepa_sync`), so the module's `requests` is replaced by one that sends the same
call to the simulator over real HTTP.
"""

from __future__ import annotations

import math
import types
from collections.abc import Iterator
from typing import Any, cast

# keepa is imported plainly, not with importorskip: it is pinned in requirements-dev.txt,
# and a missing package must fail the suite, not skip the test that proves compatibility.
import keepa
import pytest
import requests
from keepa import keepa_sync
from keepa.models.backend import DealResponse, Product

from keepa_deals.infra.clock import ManualClock
from keepa_deals.keepa.keepa_time import unix_s_to_keepa_minutes
from keepa_deals.keepa_sim import KeepaSimulator

KEY = "package-compat-key-4b1d"
USED_BOOKS = {
    "page": 0,
    "domainId": 1,
    "priceTypes": [2],
    "dateRange": 1,
    "sortType": 1,
    "includeCategories": [283155],
    "isRangeEnabled": True,
    "currentRange": [300, 10000],
    "deltaPercentRange": [20, 100],
    "salesRankRange": [-1, 2000000],
}


@pytest.fixture
def sim(monkeypatch: pytest.MonkeyPatch) -> Iterator[KeepaSimulator]:
    simulator = KeepaSimulator(
        seed=21, refill_rate=20, clock=ManualClock(1_767_225_600.0), catalogue_size=4000
    ).start()
    session = requests.Session()

    def get(url: str, params: Any = None, **kwargs: Any) -> requests.Response:
        assert url.startswith("https://api.keepa.com/")
        return session.get(
            url.replace("https://api.keepa.com", simulator.url), params=params, **kwargs
        )

    monkeypatch.setattr(keepa_sync, "requests", types.SimpleNamespace(get=get))
    yield simulator
    session.close()
    simulator.stop()


def charged(sim: KeepaSimulator, endpoint: str) -> int:
    tokens: int = sim.state()["endpoints"][endpoint]["tokens"]
    return tokens


def offer_cost(sim: KeepaSimulator, asins: list[str], limit: int) -> int:
    """6 tokens per page of 10 offers found (at least one page), from the timeline."""
    tl = sim.app.products.timeline
    now_km = unix_s_to_keepa_minutes(sim.now())
    total = 0
    for asin in asins:
        state = tl.state_at(tl.catalogue.index_by_asin[asin], now_km)
        total += 6 * max(1, math.ceil(min(state.count_new + state.count_used, limit) / 10))
    return total


def test_deals_then_products(sim: KeepaSimulator) -> None:
    api = keepa.Keepa(KEY)
    # Untyped calls return dicts; the package's annotations cover the typed models too.
    deals = cast(dict[str, Any], api.deals(USED_BOOKS))
    assert len(deals["dr"]) > 100
    assert deals["categoryIds"] == [283155] and deals["categoryNames"] == ["Books"]
    assert charged(sim, "deal") == 5 and api.tokens_left == 1200 - 5

    asins = sorted({d["asin"] for d in deals["dr"][:12]})
    products = cast(
        list[dict[str, Any]],
        api.query(asins, stats=90, history=True, offers=20, progress_bar=False),
    )
    assert [p["asin"] for p in products] == asins
    expected = offer_cost(sim, asins, 20)
    assert charged(sim, "product") == expected
    assert api.tokens_left == 1200 - 5 - expected
    assert sim.state()["totals"]["tokens_charged"] == 5 + expected
    for product in products:
        data = product["data"]  # the package parsed the csv histories
        assert len(data["USED"]) == len(data["USED_time"]) > 0
        assert len(data["SALES"]) > 0
        assert product["stats_parsed"]["current"]["USED"] > 0
        assert 0 < len(product["offers"]) <= 20


def test_typed_models_validate(sim: KeepaSimulator) -> None:
    api = keepa.Keepa(KEY)
    typed = api.deals(USED_BOOKS, typed=True)
    assert isinstance(typed, DealResponse) and typed.dr
    deal = typed.dr[0]
    assert deal is not None and deal.deltaPercent is not None
    assert deal.current is not None and deal.current[2] is not None and deal.current[2] >= 300

    asins = sorted({d.asin for d in typed.dr[:5] if d is not None and d.asin})
    products = api.query(asins, stats=90, history=True, offers=20, progress_bar=False, typed=True)
    assert all(isinstance(p, Product) for p in products)
    product = products[0]
    assert isinstance(product, Product)
    assert product.stats is not None and product.stats.avg90 is not None
    assert product.offers and product.offers[0] is not None
    assert product.salesRanks and 283155 in product.salesRanks
    assert product.csv is not None and len(product.csv) == 36
    assert charged(sim, "product") == offer_cost(sim, asins, 20)


def test_plain_queries_cost_one_token_a_product(sim: KeepaSimulator) -> None:
    api = keepa.Keepa(KEY)
    asins = list(sim.app.products.timeline.catalogue.asins[:7])
    products = cast(list[dict[str, Any]], api.query(asins, history=False, progress_bar=False))
    assert len(products) == 7 and all(p["csv"] is None for p in products)
    assert charged(sim, "product") == 7
    rated = api.query(asins[:3], rating=True, progress_bar=False)
    assert len(rated) == 3
    assert charged(sim, "product") == 7 + 3 * 2


def test_the_key_is_checked(sim: KeepaSimulator) -> None:
    sim.set_key(KEY, "expired")
    with pytest.raises(RuntimeError, match="PAYMENT_REQUIRED"):
        keepa.Keepa(KEY).deals(USED_BOOKS)
    sim.set_key(KEY, "unknown")
    with pytest.raises(RuntimeError, match="REQUEST_REJECTED"):
        keepa.Keepa(KEY).deals(USED_BOOKS)


# Fields a product only has on other requests, or that Keepa leaves out when empty.
NOT_FOR_THIS_REQUEST = {
    "videos": "needs videos=1",
    "aPlus": "needs aplus=1",
    "historicalVariations": "needs historical-variations=1",
    "deals": "undefined when the buy box has no deal (Keepa leaves it out)",
}
OFFER_FIELDS_NOT_FOR_THIS_REQUEST = {
    "stockCSV": "needs stock=1",
    "coupon": "undefined when the offer has no coupon",
}


def _declared(model: type[Any]) -> set[str]:
    return {field.alias or name for name, field in model.model_fields.items()}


def test_a_full_query_returns_every_field_the_models_declare(sim: KeepaSimulator) -> None:
    """query(offers=20, history=True, stats=180, buybox=True): every field of Product,
    Stats and Offer that such a request carries is in the answer (null where a product
    has no value), so typed and untyped clients find what the schema promises."""
    from keepa.models.backend import Offer, Stats

    api = keepa.Keepa(KEY)
    asins = list(sim.app.products.timeline.catalogue.asins[:5])
    products = cast(
        list[dict[str, Any]],
        api.query(asins, offers=20, history=True, stats=180, buybox=True, progress_bar=False),
    )
    assert len(products) == 5
    for product in products:
        missing = _declared(Product) - product.keys() - NOT_FOR_THIS_REQUEST.keys()
        assert not missing, f"{product['asin']}: {sorted(missing)}"
        missing_stats = _declared(Stats) - product["stats"].keys()
        assert not missing_stats, f"{product['asin']} stats: {sorted(missing_stats)}"
        for offer in product["offers"]:
            missing_offer = (
                _declared(Offer) - offer.keys() - OFFER_FIELDS_NOT_FOR_THIS_REQUEST.keys()
            )
            assert not missing_offer, f"{product['asin']} offer: {sorted(missing_offer)}"
        Product.model_validate(product)  # and the values have the declared types
        assert product["buyBoxSellerIdHistory"] and product["buyBoxUsedHistory"] is not None
        assert product["csv"][18] and product["csv"][32] is not None
