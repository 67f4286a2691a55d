"""Injected faults, over HTTP and through the in-process adapter; deterministic per seed."""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests

from keepa_deals.keepa_sim import KeepaSimulator
from tests.keepa_sim.conftest import USED_BOOKS, Api, SimFactory, catalogue_asins


def balance(sim: KeepaSimulator) -> int:
    (key,) = sim.state()["keys"].values()
    left: int = key["tokens_left"]
    return left


def test_a_429_storm_refuses_the_next_paid_requests_at_a_full_balance(
    sim: KeepaSimulator, api: Api
) -> None:
    assert api.admin("POST", "faults", json={"storm_429": 2}).status_code == 200
    for _ in range(2):
        response = api.deal(USED_BOOKS)
        assert response.status_code == 429
        body = response.json()
        assert body["error"]["type"] == "NOT_ENOUGH_TOKEN"
        assert (body["tokensLeft"], body["tokensConsumed"]) == (300, 0)
    assert api.token()["tokensLeft"] == 300  # /token is not part of the storm
    assert api.deal(USED_BOOKS).json()["tokensLeft"] == 295
    state = sim.state()
    assert state["endpoints"]["deal"]["rejected_429"] == 2
    assert state["faults"]["remaining"]["storm_429"] == 0


def test_faults_can_be_limited_to_one_endpoint(sim: KeepaSimulator, api: Api) -> None:
    sim.set_faults({"storm_429": 1, "endpoints": ["product"]})
    assert api.deal(USED_BOOKS).status_code == 200
    assert api.product(catalogue_asins(sim, 1)).status_code == 429


def test_injected_5xx_answers_are_not_charged(sim: KeepaSimulator, api: Api) -> None:
    sim.set_faults({"error_5xx_next": 1})
    response = api.deal(USED_BOOKS)
    assert response.status_code == 500
    assert response.json()["error"]["type"] == "INTERNAL_SERVER_ERROR"
    assert response.json()["tokensLeft"] == 300
    sim.set_faults({"error_5xx_next": 1, "error_5xx_status": 503, "error_5xx_body": "html"})
    response = api.deal(USED_BOOKS)
    assert response.status_code == 503
    assert response.headers["Content-Type"] == "text/html"
    assert response.text.startswith("<html>")
    assert balance(sim) == 300


def test_a_5xx_rate_replays_exactly_for_a_seed(make_sim: SimFactory) -> None:
    def statuses(sim: KeepaSimulator) -> list[int]:
        sim.set_faults({"error_5xx_rate": 0.4})
        api = Api(sim.url)
        return [api.deal({**USED_BOOKS, "page": n % 3}).status_code for n in range(30)]

    first = statuses(make_sim(seed=5, refill_rate=100))
    assert first == statuses(make_sim(seed=5, refill_rate=100))
    assert 5 <= first.count(500) <= 20 and first.count(200) == 30 - first.count(500)
    assert first != statuses(make_sim(seed=6, refill_rate=100))


def test_latency_delays_the_answer(sim: KeepaSimulator, api: Api) -> None:
    sim.set_faults({"latency_ms": 80})
    started = time.perf_counter()
    body = api.deal(USED_BOOKS).json()
    assert time.perf_counter() - started >= 0.08
    assert body["processingTimeInMs"] >= 80


@pytest.mark.parametrize(
    ("faults", "error"),
    [
        ({"timeout_after_charge": 1, "stall_s": 3.0}, requests.ReadTimeout),
        ({"timeout_after_charge": 1, "timeout_mode": "drop"}, requests.ConnectionError),
    ],
)
def test_a_timeout_after_the_charge_costs_the_tokens(
    sim: KeepaSimulator, api: Api, faults: dict[str, Any], error: type[Exception]
) -> None:
    sim.set_faults(faults)
    query: dict[str, str | int] = {"key": api.key, "domain": 1}
    query["asin"] = ",".join(catalogue_asins(sim, 7))
    with pytest.raises(error):
        api.session.get(f"{api.base}/product", timeout=2.0, params=query)
    assert balance(sim) == 293  # charged, never answered
    assert api.deal(USED_BOOKS).json()["tokensLeft"] == 288


def test_a_malformed_body_is_charged(sim: KeepaSimulator, api: Api) -> None:
    sim.set_faults({"malformed_body": 1})
    response = api.deal(USED_BOOKS)
    assert response.status_code == 200
    with pytest.raises(ValueError):
        response.json()
    assert balance(sim) == 295


@pytest.mark.parametrize("encoding", ["identity", "gzip"])
def test_a_truncated_body_breaks_the_read(sim: KeepaSimulator, api: Api, encoding: str) -> None:
    sim.set_faults({"truncated_body": 1})
    with pytest.raises(
        (
            requests.exceptions.ChunkedEncodingError,
            requests.exceptions.ContentDecodingError,
            requests.exceptions.ConnectionError,
        )
    ):
        api.session.get(
            f"{api.base}/deal",
            headers={"Accept-Encoding": encoding},
            timeout=5,
            params={"key": api.key, "selection": '{"domainId": 1}'},
        )
    assert balance(sim) == 295
    assert api.deal(USED_BOOKS).status_code == 200  # a new connection works


def test_products_left_out_are_not_charged(sim: KeepaSimulator, api: Api) -> None:
    asins = catalogue_asins(sim, 40)
    sim.set_faults({"drop_products_rate": 1.0})
    assert (api.product(asins).json()["products"], balance(sim)) == ([], 300)
    sim.set_faults({"drop_products_rate": 0.5})
    body = api.product(asins).json()
    assert 5 < len(body["products"]) < 35
    assert body["tokensConsumed"] == len(body["products"])


def test_nulls_inside_arrays(sim: KeepaSimulator, api: Api) -> None:
    sim.set_faults({"null_rate": 1.0})
    for p in api.product(catalogue_asins(sim, 5), stats=90).json()["products"]:
        assert p["csv"][3] is None and p["csv"][2][1] is None
        assert p["stats"]["current"][2] is None and p["stats"]["avg90"][2] is None
        assert p["stats"]["min"][2] is None
        assert p["stats"]["current"][1] is not None


def test_a_failed_offer_fetch_costs_one_token(sim: KeepaSimulator, api: Api) -> None:
    sim.set_faults({"offers_fail_rate": 1.0})
    body = api.product(catalogue_asins(sim, 3), offers=20).json()
    assert body["tokensConsumed"] == 3
    assert all(p["offersSuccessful"] is False and p["offers"] == [] for p in body["products"])


def test_delete_clears_the_faults(sim: KeepaSimulator, api: Api) -> None:
    sim.set_faults({"storm_429": 5, "latency_ms": 10})
    cleared = api.admin("DELETE", "faults").json()
    assert cleared["config"]["storm_429"] == 0 and cleared["config"]["latency_ms"] == 0
    assert api.deal(USED_BOOKS).status_code == 200
    assert api.admin("GET", "faults").json()["injected"] == {}


def test_the_adapter_raises_what_the_wire_would(make_sim: SimFactory) -> None:
    sim = make_sim()
    session = requests.Session()
    session.mount("http://keepa.sim/", sim.adapter())

    def deal() -> requests.Response:
        return session.get(
            "http://keepa.sim/deal/",
            timeout=(1, 0.2),
            params={"key": "k", "selection": '{"domainId": 1}'},
        )

    assert deal().json()["tokensConsumed"] == 5
    sim.set_faults({"timeout_after_charge": 1})
    with pytest.raises(requests.ReadTimeout):
        deal()
    sim.set_faults({"timeout_after_charge": 1, "timeout_mode": "drop"})
    with pytest.raises(requests.ConnectionError):
        deal()
    sim.set_faults({"truncated_body": 1})
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        deal()
    assert deal().json()["tokensLeft"] == 300 - 5 * 5
