"""The request handler: Keepa's API as a pure function of a request and simulated time.

`SimulatorApp.handle(method, path, query, body, headers) -> Response` knows nothing
about sockets; the HTTP server (`server.py`) and the in-process `requests` adapter
(`adapter.py`) are thin layers over it. One lock serialises requests, so token
accounting is exact under concurrency; any waiting a fault asks for is done by the
transport, outside the lock.

Order of checks for an API call: path (404), key (400 unknown, 402 expired), then
parameters (400/405), then injected faults before admission (429 storm, 5xx), then
admission (429 at a balance <= 0), then the work, the charge of what it actually cost,
and faults after the charge (timeout, malformed or truncated body).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from keepa_deals.keepa.keepa_time import unix_s_to_keepa_minutes
from keepa_deals.keepa_sim.accounts import ENDPOINTS, Accounts, fingerprint
from keepa_deals.keepa_sim.admin import handle_admin
from keepa_deals.keepa_sim.bucket import TokenBucket
from keepa_deals.keepa_sim.categories import COST as CATEGORY_COST
from keepa_deals.keepa_sim.categories import CategoryIndex
from keepa_deals.keepa_sim.deals import DealEngine
from keepa_deals.keepa_sim.faults import Faults, inject_nulls
from keepa_deals.keepa_sim.product_params import is_asin, is_code, parse_product_params
from keepa_deals.keepa_sim.products import ProductBuilder
from keepa_deals.keepa_sim.selection import DEFAULT_SELECTION, DOMAINS, parse_selection
from keepa_deals.keepa_sim.timesource import TimeSource
from keepa_deals.keepa_sim.wire import RawJSON, RequestError, Response, json_response

log = logging.getLogger("keepa_deals.keepa_sim")

QueryParams = Mapping[str, str | Sequence[str]]
_HTML_5XX = b"<html><body><h1>502 Bad Gateway</h1></body></html>"


def flatten_query(query: QueryParams) -> dict[str, str]:
    """parse_qs-style lists to single values (the first wins)."""
    flat = {}
    for name, value in query.items():
        if isinstance(value, str):
            flat[name] = value
        elif value:
            flat[name] = str(value[0])
    return flat


class SimulatorApp:
    def __init__(
        self,
        *,
        seed: int,
        time_source: TimeSource,
        accounts: Accounts,
        engine: DealEngine,
        products: ProductBuilder,
    ) -> None:
        self.seed = seed
        self.time = time_source
        self.accounts = accounts
        self.engine = engine
        self.products = products
        self.categories = CategoryIndex(products.timeline.catalogue)
        self.faults = Faults(seed)
        self.lock = threading.RLock()
        self.started_s = time_source.now_s()
        self._published = (self.started_s, 0)  # default-selection deals counted so far

    # --- entry point -------------------------------------------------------------

    def handle(
        self,
        method: str,
        path: str,
        query: QueryParams,
        body: bytes = b"",
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        started = time.perf_counter()
        params = flatten_query(query)
        route = path.split("?", 1)[0].rstrip("/") or "/"
        if route == "/_sim" or route.startswith("/_sim/"):
            return handle_admin(self, method.upper(), route, params, body)
        endpoint = route.lstrip("/")
        with self.lock:
            response, key_fp, cost = self._api(method.upper(), endpoint, params, body, started)
        log.debug(
            "keepa-sim %s /%s key=%s -> %d cost=%d",
            method,
            endpoint,
            key_fp,
            response.status,
            cost,
        )
        return response

    def _api(
        self, method: str, endpoint: str, params: dict[str, str], body: bytes, started: float
    ) -> tuple[Response, str, int]:
        now_s = self.time.now_s()
        key = params.get("key", "")
        key_fp = fingerprint(key) if key else "-"
        bucket: TokenBucket | None = None

        def refuse(status: int, message: str, details: str = "") -> tuple[Response, str, int]:
            error = RequestError(status, message, details)
            return self._error(error, bucket, now_s, started), key_fp, 0

        if endpoint not in ENDPOINTS:
            if key and self.accounts.status(key) != "unknown":
                bucket = self.accounts.bucket(key, now_s)  # its balance, as on any error
            return refuse(404, f"no such endpoint /{endpoint}")
        if not key or self.accounts.status(key) == "unknown":
            return refuse(400, "Invalid API key.", "the key is missing or not known")
        counters = self.accounts.counters[endpoint]
        counters.calls += 1
        if self.accounts.status(key) == "expired":
            # An expired subscription has no tokens and no refill: the envelope says 0
            # for both (never the bucket the key would have, let alone a full one).
            counters.errors += 1
            return refuse(402, "Payment required: the subscription of this key expired.")
        bucket = self.accounts.bucket(key, now_s)
        if method not in ("GET", "POST"):
            counters.errors += 1
            return refuse(405, f"method {method} not allowed")
        if endpoint == "token":
            return self._ok({}, bucket, 0, now_s, started), key_fp, 0
        try:
            request = self._parse(endpoint, params, body)
        except RequestError as error:
            counters.errors += 1
            return refuse(error.status, error.message, error.details)
        faulty = self.faults.applies(endpoint)
        delay_s = self.faults.config.latency_ms / 1000 if faulty else 0.0
        if faulty and self.faults.take("storm_429"):
            counters.rejected_429 += 1
            return self._not_enough(bucket, now_s, started, delay_s), key_fp, 0
        if faulty and (self.faults.take("error_5xx_next") or self.faults.draw("error_5xx_rate")):
            counters.errors += 1
            return self._server_error(bucket, now_s, started, delay_s), key_fp, 0
        if bucket.balance <= 0:
            counters.rejected_429 += 1
            return self._not_enough(bucket, now_s, started, delay_s), key_fp, 0
        if endpoint == "deal":
            fields, cost = self._deal(request, now_s)
        elif endpoint in ("category", "search"):
            fields, cost = request, CATEGORY_COST
        else:
            fields, cost = self._product(request, now_s, faulty)
        bucket.charge(cost)
        counters.tokens += cost
        response = self._ok(fields, bucket, cost, now_s, started, delay_s)
        if faulty:
            self.faults.after_charge(response)
        return response, key_fp, cost

    # --- endpoints ---------------------------------------------------------------

    def _parse(self, endpoint: str, params: dict[str, str], body: bytes) -> Any:
        if endpoint == "product":
            return parse_product_params(params)
        if endpoint in ("category", "search"):
            # Found before admission (nothing is charged for a refused request), answered
            # after it: looking up the tree has no side effect.
            domain_id = params.get("domain", "")
            if not domain_id.isdigit() or int(domain_id) not in DOMAINS:
                raise RequestError(400, f"domain={domain_id}: not a Keepa domain")
            if endpoint == "category":
                return self.categories.lookup(params, int(domain_id))
            return self.categories.search(params, int(domain_id))
        raw = body.decode("utf-8", "replace").strip() or params.get("selection", "")
        if not raw:
            raise RequestError(400, "the selection parameter is required")
        try:
            selection = json.loads(raw)
        except ValueError:
            raise RequestError(400, "selection is not valid JSON") from None
        domain = params.get("domain")
        return parse_selection(selection, int(domain) if domain and domain.isdigit() else None)

    def _deal(self, selection: Any, now_s: float) -> tuple[dict[str, object], int]:
        page = self.engine.page(selection, now_s)
        return {"deals": RawJSON(page.body_json)}, 5

    def _product(self, params: Any, now_s: float, faulty: bool) -> tuple[dict[str, object], int]:
        """Keepa's rule for what comes back (docs/simulator.md): an item that is not an
        ASIN (or a product code) is dropped; when nothing is left, the answer has no
        `products` at all. A well-formed ASIN the catalogue lacks comes back as a
        product without data (1 token); a code that matches nothing is dropped."""
        catalogue = self.products.timeline.catalogue
        now_km = unix_s_to_keepa_minutes(now_s)
        valid = [i for i in params.items if (is_code(i) if params.by_code else is_asin(i))]
        if not valid:
            return {}, 0
        products = []
        total = 0
        for item in valid:
            index = (
                catalogue.index_of_code(item)
                if params.by_code
                else catalogue.index_by_asin.get(item)
            )
            if index is None:
                if not params.by_code:
                    products.append(self.products.untracked(item, params))
                    total += 1
                continue
            if faulty and self.faults.draw("drop_products_rate"):
                continue
            failed = params.offers is not None and faulty and self.faults.draw("offers_fail_rate")
            product, cost = self.products.build(index, now_km, params, failed)
            if faulty and self.faults.draw("null_rate"):
                inject_nulls(product)
            products.append(product)
            total += cost
        return {"products": products}, total

    # --- responses ---------------------------------------------------------------

    def envelope(
        self,
        bucket: TokenBucket | None,
        now_s: float,
        consumed: int,
        started: float,
        delay_s: float = 0.0,
    ) -> dict[str, object]:
        return {
            "timestamp": self.time.timestamp_ms(),
            "tokensLeft": bucket.balance if bucket else 0,
            "refillIn": self.time.to_client_ms(bucket.refill_in_ms(now_s)) if bucket else 0,
            "refillRate": bucket.rate if bucket else 0,
            "tokenFlowReduction": 0.0,
            "tokensConsumed": consumed,
            "processingTimeInMs": int((time.perf_counter() - started + delay_s) * 1000),
        }

    def _ok(
        self,
        fields: dict[str, object],
        bucket: TokenBucket,
        cost: int,
        now_s: float,
        started: float,
        delay_s: float = 0.0,
    ) -> Response:
        body = {**fields, **self.envelope(bucket, now_s, cost, started, delay_s)}
        response = json_response(200, body)
        response.delay_s = delay_s
        return response

    def _error(
        self,
        error: RequestError,
        bucket: TokenBucket | None,
        now_s: float,
        started: float,
        delay_s: float = 0.0,
    ) -> Response:
        body = {**self.envelope(bucket, now_s, 0, started, delay_s), "error": error.error_object()}
        response = json_response(error.status, body)
        response.delay_s = delay_s
        return response

    def _not_enough(
        self, bucket: TokenBucket, now_s: float, started: float, delay_s: float
    ) -> Response:
        error = RequestError(429, "Not enough tokens: wait for the next refill (see refillIn).")
        return self._error(error, bucket, now_s, started, delay_s)

    def _server_error(
        self, bucket: TokenBucket, now_s: float, started: float, delay_s: float
    ) -> Response:
        status = self.faults.config.error_5xx_status
        if self.faults.config.error_5xx_body == "html":
            return Response(status, {"Content-Type": "text/html"}, _HTML_5XX, delay_s=delay_s)
        return self._error(
            RequestError(status, "Internal server error (injected)."),
            bucket,
            now_s,
            started,
            delay_s,
        )

    # --- simulation control (admin) -----------------------------------------------

    def state(self) -> dict[str, Any]:
        with self.lock:
            now_s = self.time.now_s()
            now_km = unix_s_to_keepa_minutes(now_s)
            self.engine.book.advance(now_km)
            since_s, count = self._published
            if now_s > since_s:
                count += len(self.published(DEFAULT_SELECTION, since_s, now_s))
                self._published = (now_s, count)
            return {
                "now_s": now_s,
                "now_keepa_minute": now_km,
                "clock": self.time.kind,
                "time_scale": self.time.scale,
                "seed": self.seed,
                "catalogue_size": self.products.timeline.catalogue.size,
                **self.accounts.snapshot(now_s, self.time.scale),
                "deals": {
                    "visible": self.engine.book.size(),
                    "published_since_s": self.started_s,
                    "published_default_selection": count,
                },
                "faults": self.faults.snapshot(),
            }

    def published(
        self, selection: Mapping[str, Any], start_s: float, end_s: float
    ) -> list[tuple[str, int]]:
        with self.lock:
            return self.engine.published(parse_selection(selection, None), start_s, end_s)

    def advance(self, seconds: float) -> float:
        with self.lock:
            self.time.advance(seconds)
            return self.time.now_s()

    def set_plan(self, refill_rate: int) -> None:
        with self.lock:
            self.accounts.set_rate(refill_rate, self.time.now_s())
