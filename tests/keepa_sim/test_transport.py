"""The HTTP layer and the clocks: gzip, keep-alive, the in-process adapter, wall-clock
refillIn on a scaled clock, and an API key that never shows up anywhere."""

from __future__ import annotations

import gzip
import http.client
import json
import logging
import sys
import time
from urllib.parse import quote, urlsplit

import pytest
import requests

from keepa_deals.infra.clock import ManualClock
from keepa_deals.keepa_sim import KeepaSimulator, SimulatorAdapter
from tests.keepa_sim.conftest import KEY, USED_BOOKS, Api, SimFactory, catalogue_asins

if sys.version_info >= (3, 14):
    from compression import zstd
else:
    from backports import zstd


def connection(sim: KeepaSimulator) -> http.client.HTTPConnection:
    address = urlsplit(sim.url)
    return http.client.HTTPConnection(address.hostname or "", address.port, timeout=10)


def test_gzip_when_asked_and_keep_alive(sim: KeepaSimulator) -> None:
    conn = connection(sim)
    path = f"/deal?key={KEY}&selection=" + quote(json.dumps(USED_BOOKS))
    conn.request("GET", path, headers={"Accept-Encoding": "gzip"})
    zipped = conn.getresponse()
    raw = zipped.read()
    assert zipped.getheader("Content-Encoding") == "gzip"
    assert int(zipped.getheader("Content-Length") or 0) == len(raw)
    body = json.loads(gzip.decompress(raw))
    conn.request("GET", path)  # same connection: it was kept alive
    plain = conn.getresponse()
    assert plain.getheader("Content-Encoding") is None
    assert json.loads(plain.read())["deals"] == body["deals"]
    conn.close()


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        ("zstd, gzip, deflate", "zstd"),  # what the keepa package sends: Keepa answers zstd
        ("gzip, deflate", "gzip"),
        ("gzip, zstd;q=0", "gzip"),
        ("br", None),
    ],
)
def test_zstd_first_when_the_client_accepts_it(
    sim: KeepaSimulator, accept: str, expected: str | None
) -> None:
    conn = connection(sim)
    conn.request("GET", f"/token?key={KEY}", headers={"Accept-Encoding": accept})
    answer = conn.getresponse()
    raw = answer.read()
    conn.close()
    assert answer.getheader("Content-Encoding") == expected
    if expected == "zstd":
        raw = zstd.decompress(raw)
    elif expected == "gzip":
        raw = gzip.decompress(raw)
    assert json.loads(raw)["tokensLeft"] == 300


def test_the_adapter_answers_without_a_socket(clock: ManualClock) -> None:
    sim = KeepaSimulator(seed=7, clock=clock, catalogue_size=4000)  # never started
    session = requests.Session()
    session.mount("http://keepa.sim/", SimulatorAdapter(sim))
    body = session.get("http://keepa.sim/token", params={"key": KEY}).json()
    assert (body["tokensLeft"], body["refillRate"]) == (300, 5)
    asins = catalogue_asins(sim, 4)
    query: dict[str, str | int] = {"key": KEY, "domain": 1, "asin": ",".join(asins)}
    products = session.get("http://keepa.sim/product", params=query).json()
    assert [p["asin"] for p in products["products"]] == asins
    posted = session.post(
        "http://keepa.sim/deal", params={"key": KEY}, data=json.dumps(USED_BOOKS)
    ).json()
    assert posted["tokensLeft"] == 291
    with pytest.raises(RuntimeError, match="start"):
        _ = sim.url


def test_a_scaled_clock_keeps_response_times_on_the_wall_clock(make_sim: SimFactory) -> None:
    sim = make_sim(clock="scaled", time_scale=600.0)
    api = Api(sim.url)
    simulated_start, wall_start = sim.now(), time.time()
    body = api.token()
    assert abs(body["timestamp"] - wall_start * 1000) < 2_000  # wall time, not simulated
    assert 0 <= body["refillIn"] <= 100  # 60 000 simulated ms / 600
    time.sleep(0.05)
    assert sim.now() - simulated_start >= 0.05 * 600
    state = api.admin("GET", "state").json()
    assert (state["clock"], state["time_scale"]) == ("scaled", 600.0)


def test_an_external_clock_is_shared(make_sim: SimFactory) -> None:
    class Harness:
        def __init__(self) -> None:
            self.now_s = 1_800_000_000.0

        def now(self) -> float:
            return self.now_s

    harness = Harness()
    sim = make_sim(clock=harness, initial_tokens=0)
    api = Api(sim.url)
    assert api.token()["timestamp"] == 1_800_000_000_000
    harness.now_s += 61
    body = api.token()
    assert (body["tokensLeft"], body["refillIn"], body["timestamp"]) == (
        5,
        59_000,
        1_800_000_061_000,
    )


def test_advance_over_http_moves_a_manual_clock(
    sim: KeepaSimulator, api: Api, clock: ManualClock
) -> None:
    before = clock.now()
    response = api.admin("POST", "advance", params={"seconds": 90})
    assert response.json()["now_s"] == before + 90 == clock.now()
    sim.advance(30)
    assert clock.now() == before + 120


def test_the_key_never_appears_in_bodies_state_or_logs(
    sim: KeepaSimulator, api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    asins = catalogue_asins(sim, 3)
    bodies = [
        api.token(),
        api.deal(USED_BOOKS).json(),
        api.product(asins, offers=20, stats=90).json(),
        api.get("deal", selection="{broken").json(),
        api.get("nowhere").json(),
    ]
    sim.set_key(KEY, "expired")
    bodies.append(api.deal(USED_BOOKS).json())
    sim.set_key(KEY, "active")
    sim.set_faults({"storm_429": 1})
    bodies.append(api.deal(USED_BOOKS).json())
    state = api.admin("GET", "state").json()
    texts = [json.dumps(b) for b in bodies] + [json.dumps(state), json.dumps(sim.state())]
    assert all(KEY not in text for text in texts)
    # The simulator's own log lines (urllib3 on the client side logs URLs: its business).
    logged = "\n".join(
        r.getMessage() for r in caplog.records if r.name.startswith("keepa_deals.keepa_sim")
    )
    assert "/deal" in logged and "/product" in logged  # the requests were logged...
    assert KEY not in logged
    (fingerprint,) = state["keys"]
    assert fingerprint in logged and fingerprint.startswith("k-")  # ...by fingerprint


def test_the_state_reports_counters_and_published_deals(
    sim: KeepaSimulator, api: Api, clock: ManualClock
) -> None:
    api.deal(USED_BOOKS)
    api.product(catalogue_asins(sim, 2))
    clock.advance(3600)
    state = sim.state()
    assert state["now_s"] == clock.now()
    assert state["endpoints"]["deal"] == {"calls": 1, "tokens": 5, "rejected_429": 0, "errors": 0}
    assert state["totals"]["tokens_charged"] == 7
    published = len(sim.deals_published(USED_BOOKS, clock.now() - 3600, clock.now()))
    assert state["deals"]["published_default_selection"] == published > 5
    assert state["deals"]["visible"] > 0
