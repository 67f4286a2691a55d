"""KeepaClient against the Keepa simulator over real HTTP: replies parse into envelopes,
every failure becomes its typed error (never None), and the key never leaks.

A few replies the simulator cannot produce (a 400 that is not about the key, odd JSON)
come from `CannedServer`, a tiny HTTP server that answers what it is told.
"""

from __future__ import annotations

import json
import logging
import random
import socket
import threading
import traceback
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from keepa_deals.config import Settings
from keepa_deals.errors import KeepaDealsError
from keepa_deals.infra.clock import ManualClock
from keepa_deals.keepa.client import KeepaClient
from keepa_deals.keepa.deal_query import InvalidDealQuery
from keepa_deals.keepa.envelope import TokenEnvelope
from keepa_deals.keepa.errors import (
    BadRequest,
    InvalidKey,
    KeepaConnectionError,
    KeepaError,
    KeepaTimeout,
    MalformedResponse,
    NotEnoughTokens,
    PaymentRequired,
    ServerError,
)
from keepa_deals.keepa.replies import DealPage, KeepaReply, ProductReply
from keepa_deals.keepa_sim import KeepaSimulator
from tests.keepa_sim.conftest import START_S, USED_BOOKS, catalogue_asins

KEY = "SECRETKEY" + "0123456789abcdef" * 3 + "QWERTYUI"  # 65 letters and digits
OTHER_KEY = "OTHERKEY" + "f" * 40
SimFactory = Callable[..., KeepaSimulator]
ClientFactory = Callable[..., KeepaClient]
# A selection that passes the client's checks but that Keepa answers with 405.
BAD_DOMAIN_SELECTION = {"domainId": 7, "priceTypes": [2]}


# --- fixtures ------------------------------------------------------------------------


@pytest.fixture
def make_sim() -> Iterator[SimFactory]:
    started: list[KeepaSimulator] = []

    def factory(**overrides: Any) -> KeepaSimulator:
        kwargs: dict[str, Any] = {
            "seed": 7,
            "refill_rate": 5,
            "clock": ManualClock(START_S),
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


class Sleeps(list[float]):
    """Stands in for time.sleep: records the backoff instead of waiting it out."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def make_client(sleeps: Sleeps) -> Iterator[ClientFactory]:
    made: list[KeepaClient] = []

    def factory(base_url: str, key: str = KEY, **kwargs: Any) -> KeepaClient:
        kwargs.setdefault("sleep", sleeps)
        kwargs.setdefault("rng", random.Random(3))
        kwargs.setdefault("read_timeout_s", 10.0)
        client = KeepaClient(key, base_url, **kwargs)
        made.append(client)
        return client

    yield factory
    for client in made:
        client.session.close()


@pytest.fixture
def client(sim: KeepaSimulator, make_client: ClientFactory) -> KeepaClient:
    return make_client(sim.url)


def accounts(sim: KeepaSimulator) -> dict[str, Any]:
    """The token half of GET /_sim/state (the whole state also walks the deal book,
    which costs a third of a second a simulator)."""
    with sim.app.lock:
        return sim.app.accounts.snapshot(sim.now(), 1.0)


def endpoint_counters(sim: KeepaSimulator, endpoint: str) -> dict[str, int]:
    counters: dict[str, int] = accounts(sim)["endpoints"][endpoint]
    return counters


def balances(sim: KeepaSimulator) -> list[int]:
    return [key["tokens_left"] for key in accounts(sim)["keys"].values()]


def tokens_charged(sim: KeepaSimulator) -> int:
    charged: int = accounts(sim)["totals"]["tokens_charged"]
    return charged


def faults_injected(sim: KeepaSimulator) -> dict[str, int]:
    with sim.app.lock:
        injected: dict[str, int] = sim.app.faults.snapshot()["injected"]
    return injected


def free_port_url() -> str:
    """A URL nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


class CannedServer:
    """Answers each request with the next canned (status, body) and records the path."""

    def __init__(self, replies: list[tuple[int, bytes]]) -> None:
        self.replies = list(replies)
        self.paths: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                owner.paths.append(self.path)
                status, body = owner.replies.pop(0) if owner.replies else (599, b"")
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def canned() -> Iterator[Callable[[list[tuple[int, bytes]]], CannedServer]]:
    servers: list[CannedServer] = []

    def factory(replies: list[tuple[int, bytes]]) -> CannedServer:
        server = CannedServer(replies)
        servers.append(server)
        return server

    yield factory
    for server in servers:
        server.stop()


ENVELOPE = {
    "timestamp": 1_767_225_600_000,
    "tokensLeft": 42,
    "refillIn": 12_345,
    "refillRate": 5,
    "tokenFlowReduction": 0.0,
    "tokensConsumed": 1,
    "processingTimeInMs": 3,
}


def body(**fields: Any) -> bytes:
    return json.dumps({**ENVELOPE, **fields}).encode()


# --- replies and envelopes -----------------------------------------------------------


def test_token_reply_carries_the_parsed_envelope(sim: KeepaSimulator, client: KeepaClient) -> None:
    reply = client.token()
    assert isinstance(reply, KeepaReply)
    assert reply.endpoint == "token"
    assert reply.envelope == TokenEnvelope(
        tokens_left=300,  # a full bucket: 60 x 5
        refill_in_ms=reply.envelope.refill_in_ms,
        refill_rate=5,
        tokens_consumed=0,
        token_flow_reduction=0.0,
        timestamp_ms=int(START_S * 1000),
        processing_time_ms=reply.envelope.processing_time_ms,
    )
    assert 0 < reply.envelope.refill_in_ms <= 60_000
    assert reply.body["tokensLeft"] == 300
    assert tokens_charged(sim) == 0


def test_token_envelope_follows_the_simulated_clock(
    sim: KeepaSimulator, client: KeepaClient
) -> None:
    client.deals(USED_BOOKS)
    sim.advance(61)
    envelope = client.token().envelope
    assert envelope.tokens_left == 300  # 295 + one tick of 5
    assert envelope.timestamp_ms == int((START_S + 61) * 1000)


def test_a_deal_page_has_its_deals_and_an_envelope_of_what_it_cost(
    sim: KeepaSimulator, client: KeepaClient
) -> None:
    page = client.deals(USED_BOOKS)
    assert isinstance(page, DealPage)
    assert page.envelope.tokens_consumed == 5
    assert page.envelope.tokens_left == 295
    assert balances(sim) == [295]
    assert 0 < len(page.deals) <= 150
    assert all(isinstance(deal["asin"], str) for deal in page.deals)
    assert page.deals == page.body["deals"]["dr"]
    counters = endpoint_counters(sim, "deal")
    assert (counters["calls"], counters["tokens"]) == (1, 5)


def test_products_cost_what_the_envelope_says(sim: KeepaSimulator, client: KeepaClient) -> None:
    asins = catalogue_asins(sim, 3)
    reply = client.products(asins, stats=90)
    assert isinstance(reply, ProductReply)
    assert [p["asin"] for p in reply.products] == asins
    assert reply.envelope.tokens_consumed == 3
    assert reply.envelope.tokens_left == 297

    with_offers = client.products(asins, offers=20)
    assert with_offers.envelope.tokens_consumed >= 3  # 6 per offer page found (or 1)
    assert tokens_charged(sim) == 3 + with_offers.envelope.tokens_consumed
    assert with_offers.envelope.tokens_left == 297 - with_offers.envelope.tokens_consumed


def test_asins_given_as_one_string_are_a_comma_list(
    sim: KeepaSimulator, client: KeepaClient
) -> None:
    asins = catalogue_asins(sim, 2)
    reply = client.products(f" {asins[0].lower()} ,{asins[1]}")
    assert [p["asin"] for p in reply.products] == asins
    assert reply.envelope.tokens_consumed == 2


def test_an_untracked_asin_comes_back_without_data_at_one_token(client: KeepaClient) -> None:
    # Keepa answers a well-formed ASIN it does not track with a product that holds no
    # data (productType 3) and charges it like any product (docs/simulator.md).
    reply = client.products(["B0NOSUCH00"])
    assert [(p["asin"], p["productType"], p["csv"]) for p in reply.products] == [
        ("B0NOSUCH00", 3, None)
    ]
    assert reply.envelope.tokens_consumed == 1


def test_a_negative_balance_is_reported_as_it_is(
    make_sim: SimFactory, make_client: ClientFactory
) -> None:
    sim = make_sim(initial_tokens=2)
    client = make_client(sim.url)
    reply = client.products(catalogue_asins(sim, 5))
    assert reply.envelope.tokens_consumed == 5
    assert reply.envelope.tokens_left == -3


def test_from_settings_uses_the_url_and_the_retry_budget(
    sim: KeepaSimulator, sleeps: Sleeps
) -> None:
    settings = Settings.from_mapping(
        {"KEEPA_API_KEY": KEY, "KEEPA_API_URL": sim.url, "KEEPA_MAX_RETRIES": "1"}
    )
    client = KeepaClient.from_settings(settings, sleep=sleeps)
    try:
        assert client.token().envelope.tokens_left == 300
        sim.set_faults({"error_5xx_next": 5})
        with pytest.raises(ServerError):
            client.deals(USED_BOOKS)
        assert endpoint_counters(sim, "deal")["calls"] == 2
        assert len(sleeps) == 1
    finally:
        client.session.close()


# --- errors: every status has its type -------------------------------------------------


def test_an_empty_balance_is_not_enough_tokens_with_its_envelope(
    make_sim: SimFactory, make_client: ClientFactory
) -> None:
    sim = make_sim(initial_tokens=2)
    client = make_client(sim.url)
    client.products(catalogue_asins(sim, 4))  # 2 - 4 = -2
    with pytest.raises(NotEnoughTokens) as caught:
        client.deals(USED_BOOKS)
    error = caught.value
    assert error.status == 429
    assert error.envelope is not None
    assert error.envelope.tokens_left == -2
    assert error.envelope.tokens_consumed == 0
    assert 0 < error.envelope.refill_in_ms <= 60_000
    assert error.retry_after_s == error.envelope.refill_in_ms / 1000
    assert "-2" in str(error)
    # A 429 charges nothing and is not retried.
    assert endpoint_counters(sim, "deal") == {
        "calls": 1,
        "tokens": 0,
        "rejected_429": 1,
        "errors": 0,
    }
    assert balances(sim) == [-2]


def test_a_429_storm_is_not_enough_tokens_even_with_a_full_balance(
    sim: KeepaSimulator, client: KeepaClient
) -> None:
    sim.set_faults({"storm_429": 1})
    with pytest.raises(NotEnoughTokens) as caught:
        client.products(catalogue_asins(sim, 2))
    assert caught.value.envelope is not None
    assert caught.value.envelope.tokens_left == 300
    assert endpoint_counters(sim, "product")["calls"] == 1  # not retried
    assert client.products(catalogue_asins(sim, 2)).envelope.tokens_left == 298


@pytest.mark.parametrize("call", ["token", "deal", "product"])
def test_an_unknown_key_is_invalid_key(
    make_sim: SimFactory, make_client: ClientFactory, call: str
) -> None:
    sim = make_sim(accept_any_key=False, keys=[OTHER_KEY])
    client = make_client(sim.url)
    with pytest.raises(InvalidKey) as caught:
        if call == "token":
            client.token()
        elif call == "deal":
            client.deals(USED_BOOKS)
        else:
            client.products(catalogue_asins(sim, 1))
    assert caught.value.status == 400
    assert "KEEPA_API_KEY" in str(caught.value)  # tells the user what to do
    assert tokens_charged(sim) == 0
    assert accounts(sim)["keys"] == {}  # no bucket was ever opened for the key


def test_a_key_marked_unknown_later_is_invalid_key(
    sim: KeepaSimulator, client: KeepaClient
) -> None:
    assert client.token().envelope.tokens_left == 300
    sim.set_key(KEY, "unknown")
    with pytest.raises(InvalidKey):
        client.deals(USED_BOOKS)
    assert tokens_charged(sim) == 0


def test_an_empty_key_is_refused_before_any_request() -> None:
    with pytest.raises(InvalidKey, match="KEEPA_API_KEY"):
        KeepaClient("", "http://127.0.0.1:9")


@pytest.mark.parametrize("call", ["token", "deal", "product"])
def test_an_expired_key_is_payment_required(
    sim: KeepaSimulator, client: KeepaClient, call: str
) -> None:
    sim.set_key(KEY, "expired")
    with pytest.raises(PaymentRequired) as caught:
        if call == "token":
            client.token()
        elif call == "deal":
            client.deals(USED_BOOKS)
        else:
            client.products(catalogue_asins(sim, 1))
    assert caught.value.status == 402
    assert "renew" in str(caught.value)
    assert caught.value.envelope is not None
    # An expired key has no bucket: its 402 says 0 tokens at rate 0, as Keepa's does.
    assert (caught.value.envelope.tokens_left, caught.value.envelope.refill_rate) == (0, 0)
    assert tokens_charged(sim) == 0


def test_an_unknown_path_is_bad_request(
    sim: KeepaSimulator, make_client: ClientFactory, sleeps: Sleeps
) -> None:
    client = make_client(f"{sim.url}/v2")
    with pytest.raises(BadRequest) as caught:
        client.token()
    assert type(caught.value) is BadRequest
    assert caught.value.status == 404
    assert sleeps == []  # a 4xx is never retried


def test_a_selection_keepa_refuses_is_bad_request_and_costs_nothing(
    sim: KeepaSimulator, client: KeepaClient, sleeps: Sleeps
) -> None:
    with pytest.raises(BadRequest) as caught:
        client.deals(BAD_DOMAIN_SELECTION)
    assert type(caught.value) is BadRequest
    assert caught.value.status == 405
    assert caught.value.envelope is not None
    assert endpoint_counters(sim, "deal") == {
        "calls": 1,
        "tokens": 0,
        "rejected_429": 0,
        "errors": 1,
    }
    assert sleeps == []


@pytest.mark.parametrize("max_retries", [0, 2])
@pytest.mark.parametrize("body_kind", ["json", "html"])
def test_5xx_is_retried_a_bounded_number_of_times_then_server_error(
    sim: KeepaSimulator,
    make_client: ClientFactory,
    sleeps: Sleeps,
    max_retries: int,
    body_kind: str,
) -> None:
    client = make_client(sim.url, max_retries=max_retries, backoff_base_s=0.5)
    sim.set_faults({"error_5xx_next": 10, "error_5xx_status": 503, "error_5xx_body": body_kind})
    with pytest.raises(ServerError) as caught:
        client.deals(USED_BOOKS)
    assert caught.value.status == 503
    assert endpoint_counters(sim, "deal")["calls"] == max_retries + 1
    assert faults_injected(sim)["error_5xx_next"] == max_retries + 1
    assert tokens_charged(sim) == 0
    # Jittered exponential backoff: attempt n waits within [0.5, 1.5) x base x 2^n.
    assert len(sleeps) == max_retries
    for attempt, delay in enumerate(sleeps):
        assert 0.5 * 0.5 * 2**attempt <= delay < 1.5 * 0.5 * 2**attempt


def test_a_5xx_that_clears_within_the_retries_is_an_ordinary_reply(
    sim: KeepaSimulator, make_client: ClientFactory, sleeps: Sleeps
) -> None:
    client = make_client(sim.url, max_retries=3)
    sim.set_faults({"error_5xx_next": 2})
    page = client.deals(USED_BOOKS)
    assert page.envelope.tokens_consumed == 5
    assert len(sleeps) == 2
    assert endpoint_counters(sim, "deal")["calls"] == 3
    assert tokens_charged(sim) == 5  # charged once, by the attempt that got through


def test_a_stalled_answer_is_a_timeout_that_may_have_been_charged(
    sim: KeepaSimulator, make_client: ClientFactory, sleeps: Sleeps
) -> None:
    # Warm up: the first page builds the deal book (0.3 s alone, more under load), so a
    # patient client asks for it and the short timeout meets only the stall.
    make_client(sim.url).deals(USED_BOOKS)
    client = make_client(sim.url, read_timeout_s=1.0)
    sim.set_faults({"timeout_after_charge": 1, "timeout_mode": "stall", "stall_s": 30})
    with pytest.raises(KeepaTimeout) as caught:
        client.deals(USED_BOOKS)
    assert caught.value.may_have_charged
    assert "may" in str(caught.value) and "charged" in str(caught.value)
    assert tokens_charged(sim) == 10  # and indeed Keepa had
    assert endpoint_counters(sim, "deal")["calls"] == 2  # never retried: it may cost again
    assert sleeps == []


def test_a_dropped_connection_is_a_timeout_that_may_have_been_charged(
    sim: KeepaSimulator, client: KeepaClient, sleeps: Sleeps
) -> None:
    sim.set_faults({"timeout_after_charge": 1, "timeout_mode": "drop"})
    with pytest.raises(KeepaTimeout, match="may already have charged"):
        client.products(catalogue_asins(sim, 2))
    assert tokens_charged(sim) == 2
    assert endpoint_counters(sim, "product")["calls"] == 1
    assert sleeps == []
    # The next call opens a fresh connection and works.
    assert client.products(catalogue_asins(sim, 1)).envelope.tokens_left == 297


@pytest.mark.parametrize("fault", ["malformed_body", "truncated_body"])
@pytest.mark.parametrize("call", ["deal", "product"])
def test_a_malformed_or_truncated_body_is_malformed_response(
    sim: KeepaSimulator, client: KeepaClient, sleeps: Sleeps, fault: str, call: str
) -> None:
    sim.set_faults({fault: 1})
    with pytest.raises(MalformedResponse):
        if call == "deal":
            client.deals(USED_BOOKS)
        else:
            client.products(catalogue_asins(sim, 3))
    assert endpoint_counters(sim, call)["calls"] == 1  # charged, so not retried
    assert tokens_charged(sim) == (5 if call == "deal" else 3)
    assert sleeps == []


def test_nobody_listening_is_a_connection_error_after_the_retries(
    make_client: ClientFactory, sleeps: Sleeps
) -> None:
    client = make_client(free_port_url(), max_retries=2)
    with pytest.raises(KeepaConnectionError, match="cannot reach Keepa"):
        client.token()
    assert len(sleeps) == 2


def test_a_connect_timeout_is_a_connection_error_that_sent_nothing(
    make_client: ClientFactory, sleeps: Sleeps
) -> None:
    class NoConnection(requests.Session):
        def get(self, *args: Any, **kwargs: Any) -> requests.Response:
            raise requests.ConnectTimeout(f"connect to /token?key={KEY} timed out")

    session = NoConnection()
    client = make_client("http://127.0.0.1:9", session=session, max_retries=1)
    with pytest.raises(KeepaConnectionError, match="nothing was sent") as caught:
        client.token()
    assert len(sleeps) == 1
    assert_no_key_in_exception(caught.value)


@pytest.mark.parametrize(
    "selection",
    [
        {"domainId": 1, "priceTypes": [2], "dateRange": "1"},  # a string: Keepa'd default it
        {"domainId": 1, "priceTypes": [1, 2]},
        {"priceTypes": [2]},
        {"domainId": 1, "priceTypes": [2], "sortType": 9},
        {"domainId": 1, "priceTypes": [2], "page": -1},
        {"domainId": 1, "priceTypes": [2], "deltaPercentRange": [5, 50]},
        {"domainId": 1, "priceTypes": [2], "isLowest": 1},
        {"domainId": 1, "priceTypes": [2], "includeCategories": ["283155"]},
        {"domainId": 1, "priceTypes": [2], "dateRnage": 1},
    ],
)
def test_a_bad_selection_is_refused_before_any_token_is_spent(
    sim: KeepaSimulator, client: KeepaClient, selection: dict[str, Any]
) -> None:
    with pytest.raises(InvalidDealQuery) as caught:
        client.deals(selection)
    assert isinstance(caught.value, KeepaDealsError)
    assert endpoint_counters(sim, "deal")["calls"] == 0
    assert accounts(sim)["keys"] == {}  # the key never reached the simulator
    assert client.token().envelope.tokens_left == 300


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"asins": []}, "no ASINs"),
        ({"asins": ["", "  "]}, "no ASINs"),
        ({"asins": [f"B{i:09d}" for i in range(101)]}, "at most 100"),
        ({"asins": ["B000000001"], "offers": 10}, "20..100"),
        ({"asins": ["B000000001"], "offers": 101}, "20..100"),
    ],
)
def test_a_bad_product_request_is_refused_before_it_is_sent(
    sim: KeepaSimulator, client: KeepaClient, kwargs: dict[str, Any], problem: str
) -> None:
    asins = kwargs.pop("asins")
    with pytest.raises(BadRequest, match=problem):
        client.products(asins, **kwargs)
    assert endpoint_counters(sim, "product")["calls"] == 0


def test_a_domain_keepa_does_not_have_is_refused() -> None:
    with pytest.raises(BadRequest, match="domain 7"):
        KeepaClient(KEY, "http://127.0.0.1:9", domain=7)


# --- replies the simulator never sends ---------------------------------------------------

_NOT_A_KEY_400 = {"type": "REQUEST_REJECTED", "message": "parameter stats is wrong"}


@pytest.mark.parametrize(
    ("status", "payload", "error_type"),
    [
        (400, body(error=_NOT_A_KEY_400), BadRequest),
        (400, body(error="Invalid API key"), InvalidKey),  # a bare string error
        (200, body(error={"type": "REQUEST_REJECTED", "message": "odd"}), BadRequest),
        (200, b"[1, 2, 3]", MalformedResponse),
        (200, b'"just a string"', MalformedResponse),
        (200, json.dumps({"deals": {"dr": []}}).encode(), MalformedResponse),  # no tokens
        (200, body(tokensLeft="42"), MalformedResponse),
        (200, body(tokensLeft=True), MalformedResponse),
        (200, body(timestamp=None), MalformedResponse),
        (200, body(tokensLeft=float("inf")), MalformedResponse),  # json: Infinity
        (200, body(refillIn=float("nan")), MalformedResponse),  # json: NaN
        (200, body(tokenFlowReduction=float("nan")), MalformedResponse),
        (200, b"\xff\xfe\x00garbage", MalformedResponse),
        (200, b"", MalformedResponse),
        (200, b"[" * 100_000, MalformedResponse),  # too deep for the parser
        (302, body(), MalformedResponse),
    ],
)
def test_odd_replies_become_typed_errors(
    canned: Callable[[list[tuple[int, bytes]]], CannedServer],
    make_client: ClientFactory,
    status: int,
    payload: bytes,
    error_type: type[KeepaError],
) -> None:
    server = canned([(status, payload)])
    client = make_client(server.url)
    with pytest.raises(error_type) as caught:
        client.token()
    assert type(caught.value) is error_type
    assert caught.value.status == status
    assert len(server.paths) == 1


@pytest.mark.parametrize(
    ("deals", "problem"),
    [(None, "no 'deals'"), ([], "not an object"), ({"dr": {}}, "'dr' is not a list")],
)
def test_a_deal_reply_without_a_deal_list_is_malformed(
    canned: Callable[[list[tuple[int, bytes]]], CannedServer],
    make_client: ClientFactory,
    deals: object,
    problem: str,
) -> None:
    fields = {} if deals is None else {"deals": deals}
    server = canned([(200, body(**fields))])
    with pytest.raises(MalformedResponse, match=problem) as caught:
        make_client(server.url).deals(USED_BOOKS)
    assert caught.value.envelope is not None
    assert caught.value.envelope.tokens_left == 42


def test_product_replies_tolerate_missing_and_odd_entries(
    canned: Callable[[list[tuple[int, bytes]]], CannedServer], make_client: ClientFactory
) -> None:
    products = [{"asin": "B000000001", "stats": None, "csv": [None, [1, 2]]}, None, {"t": 1}]
    server = canned([(200, body()), (200, body(products=products)), (200, body(products=5))])
    client = make_client(server.url)
    assert client.products(["B000000001"]).products == []  # no `products`: none were known
    assert [p["asin"] for p in client.products(["B000000001"]).products] == ["B000000001"]
    with pytest.raises(MalformedResponse, match="not a list"):
        client.products(["B000000001"])


def test_the_request_carries_the_parameters_keepa_expects(
    canned: Callable[[list[tuple[int, bytes]]], CannedServer], make_client: ClientFactory
) -> None:
    server = canned([(200, body(products=[]))])
    make_client(server.url, domain=3).products(
        ["b000000001", "B000000002"],
        stats=90,
        history=False,
        days=30,
        offers=20,
        update=0,
        only_live_offers=True,
        rating=True,
        stock=True,
    )
    path, _, query = server.paths[0].partition("?")
    params = dict(part.split("=", 1) for part in query.split("&"))
    assert path == "/product"
    assert params == {
        "key": KEY,
        "domain": "3",
        "asin": "B000000001%2CB000000002",
        "history": "0",
        "stats": "90",
        "days": "30",
        "offers": "20",
        "update": "0",
        "only-live-offers": "1",
        "rating": "1",
        "stock": "1",
    }


def test_a_deal_selection_is_posted_with_numbers_as_json_numbers(
    make_client: ClientFactory,
) -> None:
    seen: list[requests.PreparedRequest] = []

    class Recording(requests.Session):
        def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
            seen.append(request)
            response = requests.Response()
            response.status_code = 200
            response._content = body(deals={"dr": [{"asin": "B000000001"}, {"no": 1}]})
            return response

    page = make_client("http://keepa.invalid", session=Recording()).deals(USED_BOOKS)
    assert [deal["asin"] for deal in page.deals] == ["B000000001"]
    (request,) = seen
    assert request.method == "POST"
    assert request.body is not None
    assert json.loads(request.body) == USED_BOOKS
    assert '"page": 0' in str(request.body)  # a number, not "0"


# --- the key never leaks ---------------------------------------------------------------


def exception_chain(error: BaseException) -> list[BaseException]:
    """The error, its causes and contexts, and any exceptions held in their args."""
    seen: list[BaseException] = []
    pending: list[BaseException | None] = [error]
    while pending:
        current = pending.pop()
        if current is None or any(current is s for s in seen):
            continue
        seen.append(current)
        pending += [current.__cause__, current.__context__]
        pending += [a for a in current.args if isinstance(a, BaseException)]
        reason = getattr(current, "reason", None)
        if isinstance(reason, BaseException):
            pending.append(reason)
    return seen


def assert_no_key_in_exception(error: BaseException) -> None:
    for link in exception_chain(error):
        for text in (str(link), repr(link), repr(link.args)):
            assert KEY not in text, f"{type(link).__name__} leaks the key: {text}"
    assert KEY not in "".join(traceback.format_exception(error))


class KeyWatch(logging.Handler):
    """Records every log line (message and traceback) under the loggers that matter.

    It sits on those loggers rather than on the root, so it sees each record before any
    root handler (which the client may have given a redacting filter) rewrites it.
    """

    LOGGERS = ("urllib3", "requests", "keepa_deals")

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    def addFilter(self, filter: Any) -> None:
        """Refuses filters: the loggers' own filters must do the work."""


@pytest.fixture
def key_watch(caplog: pytest.LogCaptureFixture) -> Iterator[KeyWatch]:
    watch = KeyWatch()
    for name in KeyWatch.LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)
        logging.getLogger(name).addHandler(watch)
    caplog.set_level(logging.DEBUG)
    yield watch
    for name in KeyWatch.LOGGERS:
        logging.getLogger(name).removeHandler(watch)
    text = "\n".join(watch.lines) + caplog.text
    assert KEY not in text


def _expect(sim: KeepaSimulator, client: KeepaClient, case: str) -> KeepaError:
    sel = USED_BOOKS
    if case == "429":
        sim.set_faults({"storm_429": 1})
    elif case == "400-key":
        sim.set_key(KEY, "unknown")
    elif case == "402":
        sim.set_key(KEY, "expired")
    elif case == "405":
        sel = BAD_DOMAIN_SELECTION
    elif case == "5xx":
        sim.set_faults({"error_5xx_next": 10, "error_5xx_body": "html"})
    elif case == "stall":
        sim.set_faults({"timeout_after_charge": 1, "stall_s": 30})
    elif case == "drop":
        sim.set_faults({"timeout_after_charge": 1, "timeout_mode": "drop"})
    elif case in ("malformed_body", "truncated_body"):
        sim.set_faults({case: 1})
    with pytest.raises(KeepaError) as caught:
        client.deals(sel)
    return caught.value


@pytest.mark.parametrize(
    "case",
    ["429", "400-key", "402", "405", "5xx", "stall", "drop", "malformed_body", "truncated_body"],
)
def test_the_key_is_in_no_error_and_no_log_line(
    sim: KeepaSimulator, make_client: ClientFactory, key_watch: KeyWatch, case: str
) -> None:
    # The first /deal builds the simulator's deal book (0.3 s alone, more under load):
    # done by a patient client, so the short timeout meets only the stall.
    make_client(sim.url).deals(USED_BOOKS)
    client = make_client(sim.url, read_timeout_s=1.0 if case == "stall" else 10, max_retries=1)
    client.token()
    client.deals(USED_BOOKS)
    error = _expect(sim, client, case)
    assert_no_key_in_exception(error)
    assert KEY not in repr(client)
    # Not vacuous: urllib3 did log the request lines, with the key masked.
    assert any("/token?key=***" in line for line in key_watch.lines)


def test_the_key_is_not_in_a_connection_error_nor_its_causes(
    make_client: ClientFactory, key_watch: KeyWatch
) -> None:
    client = make_client(free_port_url(), max_retries=1)
    with pytest.raises(KeepaConnectionError) as caught:
        client.token()
    assert "key=***" in str(caught.value)  # requests quoted the URL; it was masked
    assert_no_key_in_exception(caught.value)
    assert any("retry 1/1" in line for line in key_watch.lines)


def test_the_key_is_not_in_urllib3_retry_logs(
    make_client: ClientFactory, key_watch: KeyWatch
) -> None:
    session = requests.Session()
    session.mount("http://", HTTPAdapter(max_retries=Retry(total=2, backoff_factor=0)))
    client = make_client(free_port_url(), session=session, max_retries=0)
    with pytest.raises(KeepaConnectionError) as caught:
        client.token()
    assert_no_key_in_exception(caught.value)
    assert any(line.startswith("urllib3.util.retry") for line in key_watch.lines)
    assert any(line.startswith("urllib3.connectionpool Retrying") for line in key_watch.lines)


def test_the_key_is_masked_in_a_logged_traceback(
    sim: KeepaSimulator, client: KeepaClient, key_watch: KeyWatch
) -> None:
    try:
        raise RuntimeError(f"GET {sim.url}/deal?key={KEY}&domain=1 failed")
    except RuntimeError:
        logging.getLogger("keepa_deals.keepa.client").exception("a caller logs what it caught")
    assert any("key=***" in line for line in key_watch.lines)


def test_a_successful_round_trip_logs_nothing_secret(
    sim: KeepaSimulator, client: KeepaClient, key_watch: KeyWatch
) -> None:
    client.deals(USED_BOOKS)
    client.products(catalogue_asins(sim, 2), offers=20)
    assert any("/deal?key=***" in line for line in key_watch.lines)
    assert any("/product?key=***" in line for line in key_watch.lines)


@pytest.mark.parametrize("key", [KEY, "CANARY" + "7q3xk9w2m4p8r6t1v5z0b"])  # 65 and 27 chars
def test_a_key_in_a_non_json_body_is_hidden_wherever_the_preview_cut_falls(
    canned: Callable[[list[tuple[int, bytes]]], CannedServer], make_client: ClientFactory, key: str
) -> None:
    """The error quotes the body's first 40 characters. Cut before redaction, a key that
    the cut splits is no longer the key, and its first part was shown (19 of a 27-character
    key); so the body is redacted first and cut after, for the key at every offset up to
    and past the cut."""
    offsets = range(0, 42)
    bodies = [b"<" * offset + key.encode() + b"> not json" for offset in offsets]
    server = canned([(200, content) for content in bodies])
    client = make_client(server.url, key=key)
    for offset, content in zip(offsets, bodies, strict=True):
        with pytest.raises(MalformedResponse) as caught:
            client.token()
        shown = "".join(traceback.format_exception(caught.value))
        # No run of 4 of the key's characters, wherever the cut fell.
        assert not any(key[i : i + 4] in shown for i in range(len(key) - 3)), (offset, shown)
        starts = ("<" * offset + "***> not json")[:40]
        assert str(caught.value) == (
            f"/token: HTTP 200 body is not JSON ({len(content)} bytes, starts {starts!r})"
        ), offset
