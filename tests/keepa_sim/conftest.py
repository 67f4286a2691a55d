"""Simulator fixtures: a simulator on a manual clock, served over real HTTP, and a thin
client that speaks to it the way Keepa clients do (key in the query string)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from keepa_deals.infra.clock import ManualClock
from keepa_deals.keepa_sim import KeepaSimulator

KEY = "sim-test-key-7f3a9c1e5b"
START_S = 1_767_225_600.0  # 2026-01-01 00:00 UTC
SimFactory = Callable[..., KeepaSimulator]
# The project's used-books query (a reseller's: buy used cheap, sell at the average).
USED_BOOKS: dict[str, Any] = {
    "domainId": 1,
    "priceTypes": [2],
    "dateRange": 1,
    "sortType": 1,
    "page": 0,
    "includeCategories": [283155],
    "isRangeEnabled": True,
    "currentRange": [300, 10000],
    "deltaPercentRange": [20, 100],
    "salesRankRange": [-1, 2000000],
}


class Api:
    """requests over one keep-alive session, against a simulator's URL."""

    def __init__(self, base_url: str, key: str = KEY) -> None:
        self.base = base_url
        self.key = key
        self.session = requests.Session()

    def get(self, endpoint: str, key: str | None = None, **params: Any) -> requests.Response:
        query = {"key": self.key if key is None else key, **params}
        return self.session.get(f"{self.base}/{endpoint}", params=query, timeout=10)

    def token(self) -> dict[str, Any]:
        body: dict[str, Any] = self.get("token").json()
        return body

    def deal(self, selection: dict[str, Any], **params: Any) -> requests.Response:
        return self.get("deal", selection=json.dumps(selection), **params)

    def product(self, asins: list[str] | str, **params: Any) -> requests.Response:
        joined = asins if isinstance(asins, str) else ",".join(asins)
        return self.get("product", domain=params.pop("domain", 1), asin=joined, **params)

    def admin(self, method: str, action: str, **kwargs: Any) -> requests.Response:
        return self.session.request(method, f"{self.base}/_sim/{action}", timeout=10, **kwargs)

    def close(self) -> None:
        self.session.close()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START_S)


@pytest.fixture
def make_sim(clock: ManualClock) -> Iterator[SimFactory]:
    """Started simulators on the test's manual clock (a small catalogue unless asked)."""
    started: list[KeepaSimulator] = []

    def factory(**overrides: Any) -> KeepaSimulator:
        kwargs: dict[str, Any] = {
            "seed": 7,
            "refill_rate": 5,
            "clock": clock,
            "catalogue_size": 4000,
        }
        kwargs.update(overrides)
        sim = KeepaSimulator(**kwargs).start()
        started.append(sim)
        return sim

    yield factory
    for sim in started:
        sim.stop()


@pytest.fixture
def sim(make_sim: SimFactory) -> KeepaSimulator:
    return make_sim()


@pytest.fixture
def api(sim: KeepaSimulator) -> Iterator[Api]:
    client = Api(sim.url)
    yield client
    client.close()


def envelope_fields(body: dict[str, Any]) -> dict[str, Any]:
    names = (
        "timestamp",
        "tokensLeft",
        "refillIn",
        "refillRate",
        "tokenFlowReduction",
        "tokensConsumed",
        "processingTimeInMs",
    )
    return {name: body[name] for name in names}


def catalogue_asins(sim: KeepaSimulator, n: int, start: int = 0) -> list[str]:
    """`n` ASINs that exist in the simulator's catalogue."""
    return list(sim.app.products.timeline.catalogue.asins[start : start + n])
