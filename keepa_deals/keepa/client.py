"""The Keepa HTTP client: one keep-alive session, typed errors, never a silent None.

Every reply carries its TokenEnvelope so the TokenManager can settle the grant with
what Keepa really charged. Every error is one of the types in `errors.py`; a 429 is
`NotEnoughTokens`, never an empty page (failure mode: an error read as the end). The key travels in
the query string, so every message that could quote a URL goes through `redact`.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import requests
from requests.exceptions import ChunkedEncodingError, ContentDecodingError
from urllib3.exceptions import NameResolutionError, NewConnectionError

from keepa_deals.config import KEEPA_DOMAINS
from keepa_deals.infra.redact import install_log_redaction, redact, register_secret
from keepa_deals.keepa.deal_query import validate_selection
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

if TYPE_CHECKING:
    from keepa_deals.config import Settings

log = logging.getLogger(__name__)

MAX_ASINS_PER_REQUEST = 100
DEAL_PAGE_SIZE = 150
USER_AGENT = "keepa-deals/0.1"
# How much of a body that is not JSON an error quotes.
BODY_PREVIEW_CHARS = 40
_NOT_JSON = object()


BACKOFF_BASE_S = 0.5


def backoff_s(base_s: float, attempt: int, draw: float) -> float:
    """The wait before retry `attempt` (0 first): doubling, jittered by `draw` in [0, 1)
    to between half and one and a half times."""
    return base_s * 2.0**attempt * (0.5 + draw)


def longest_backoff_s(max_retries: int, base_s: float = BACKOFF_BASE_S) -> float:
    """All the waits of a call that uses every retry, each at its largest jitter."""
    return sum(backoff_s(base_s, attempt, 1.0) for attempt in range(max_retries))


class KeepaClient:
    def __init__(
        self,
        api_key: str,
        base_url: str = "https://api.keepa.com",
        *,
        domain: int = 1,
        connect_timeout_s: float = 5.0,
        read_timeout_s: float = 40.0,
        max_retries: int = 3,
        backoff_base_s: float = BACKOFF_BASE_S,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        if not api_key:
            raise InvalidKey("no Keepa API key was given: set KEEPA_API_KEY in .env")
        if domain not in KEEPA_DOMAINS:
            raise BadRequest(f"domain {domain} is not a Keepa domain id {KEEPA_DOMAINS}")
        register_secret(api_key)
        install_log_redaction()
        self._key = api_key
        self.base_url = base_url.rstrip("/")
        self.domain = domain
        self.timeout = (connect_timeout_s, read_timeout_s)
        self.max_retries = max_retries
        self.backoff_base_s = backoff_base_s
        self._sleep = sleep
        self._rng = rng or random.Random()
        self.session = session or requests.Session()
        self.session.headers.update({"Accept-Encoding": "gzip", "User-Agent": USER_AGENT})

    @classmethod
    def from_settings(
        cls, settings: Settings, session: requests.Session | None = None, **kwargs: Any
    ) -> KeepaClient:
        return cls(
            settings.keepa_api_key or "",
            settings.keepa_api_url,
            domain=settings.keepa_domain,
            connect_timeout_s=settings.keepa_connect_timeout_s,
            read_timeout_s=settings.keepa_read_timeout_s,
            max_retries=settings.keepa_max_retries,
            session=session,
            **kwargs,
        )

    def __repr__(self) -> str:
        return f"KeepaClient(base_url={self.base_url!r}, domain={self.domain})"

    # --- endpoints ------------------------------------------------------------------

    def token(self) -> KeepaReply:
        """Free: only the token fields. Keepa asks clients not to poll it."""
        return self._request("token", {})

    def deals(self, selection: Mapping[str, Any]) -> DealPage:
        """One page of the deal query. Costs 5 tokens."""
        checked = validate_selection(selection)
        checked.setdefault("domainId", self.domain)
        reply = self._request("deal", {}, json_body=checked)
        container = reply.body.get("deals")
        if container is None:
            # A 200 without `deals` is not "no deals": it is a reply we do not understand.
            raise MalformedResponse(
                "/deal reply has no 'deals' object",
                endpoint="deal",
                status=200,
                envelope=reply.envelope,
            )
        if not isinstance(container, dict):
            raise MalformedResponse(
                "/deal 'deals' is not an object",
                endpoint="deal",
                status=200,
                envelope=reply.envelope,
            )
        raw = container.get("dr")
        if raw is None:
            raw = []
        if not isinstance(raw, list):
            raise MalformedResponse(
                "/deal 'dr' is not a list", endpoint="deal", status=200, envelope=reply.envelope
            )
        deals = [d for d in raw if isinstance(d, dict) and isinstance(d.get("asin"), str)]
        return DealPage(reply.endpoint, reply.envelope, reply.body, reply.sent_at_s, deals)

    def products(
        self,
        asins: Iterable[str],
        *,
        stats: int | None = None,
        history: bool = True,
        days: int | None = None,
        offers: int | None = None,
        update: int | None = None,
        only_live_offers: bool = False,
        rating: bool = False,
        buybox: bool = False,
        stock: bool = False,
    ) -> ProductReply:
        """Up to 100 products. Cost depends on the result: read `envelope.tokens_consumed`."""
        if isinstance(asins, str):
            # A bare string would otherwise be read one character at a time.
            asins = asins.split(",")
        asin_list = [a.strip().upper() for a in asins if a and a.strip()]
        if not asin_list:
            raise BadRequest("no ASINs given", endpoint="product")
        if len(asin_list) > MAX_ASINS_PER_REQUEST:
            raise BadRequest(
                f"{len(asin_list)} ASINs: Keepa takes at most {MAX_ASINS_PER_REQUEST} a request",
                endpoint="product",
            )
        if offers is not None and not 20 <= offers <= 100:
            raise BadRequest(f"offers={offers}: Keepa takes 20..100", endpoint="product")
        params: dict[str, Any] = {
            "domain": self.domain,
            "asin": ",".join(asin_list),
            "history": 1 if history else 0,
        }
        if stats is not None:
            params["stats"] = stats
        if days is not None:
            params["days"] = days
        if offers is not None:
            params["offers"] = offers
        if update is not None:
            params["update"] = update
        if only_live_offers:
            params["only-live-offers"] = 1
        if rating:
            params["rating"] = 1
        if buybox:
            params["buybox"] = 1
        if stock:
            params["stock"] = 1
        reply = self._request("product", params)
        raw = reply.body.get("products")
        if raw is None:
            # Keepa leaves `products` out when none of the ASINs is known (the `keepa`
            # package says "Possibly invalid ASINs"); the envelope is still there.
            raw = []
        if not isinstance(raw, list):
            raise MalformedResponse(
                "/product 'products' is not a list",
                endpoint="product",
                status=200,
                envelope=reply.envelope,
            )
        products = [p for p in raw if isinstance(p, dict) and isinstance(p.get("asin"), str)]
        return ProductReply(reply.endpoint, reply.envelope, reply.body, reply.sent_at_s, products)

    # --- transport ------------------------------------------------------------------

    def _request(
        self, endpoint: str, params: dict[str, Any], json_body: Mapping[str, Any] | None = None
    ) -> KeepaReply:
        attempt = 0
        while True:
            try:
                return self._once(endpoint, params, json_body)
            except (ServerError, KeepaConnectionError) as exc:
                # Neither was charged (5xx answers and refused connections cost nothing),
                # so a bounded retry is safe. Timeouts are not retried: they may have been.
                if attempt >= self.max_retries:
                    raise
                delay = backoff_s(self.backoff_base_s, attempt, self._rng.random())
                log.warning(
                    "keepa /%s: %s; retry %d/%d in %.1fs",
                    endpoint,
                    exc,
                    attempt + 1,
                    self.max_retries,
                    delay,
                )
                self._sleep(delay)
                attempt += 1

    def _once(
        self, endpoint: str, params: dict[str, Any], json_body: Mapping[str, Any] | None
    ) -> KeepaReply:
        url = f"{self.base_url}/{endpoint}"
        query = {"key": self._key, **params}
        sent_at_s = time.time()
        try:
            if json_body is None:
                resp = self.session.get(url, params=query, timeout=self.timeout)
            else:
                resp = self.session.post(
                    url,
                    params=query,
                    data=json.dumps(json_body),
                    headers={"Content-Type": "application/json"},
                    timeout=self.timeout,
                )
            content = resp.content  # may raise on a truncated chunked/gzip body
        except requests.RequestException as exc:
            failure = self._transport_error(endpoint, exc)
        else:
            return self._parse(endpoint, resp.status_code, content, sent_at_s)
        # Raised here, outside the `except`, so that requests' exception (whose message
        # and `.request` quote the URL, key included) is not kept as `__context__`.
        raise failure

    def _transport_error(self, endpoint: str, exc: requests.RequestException) -> KeepaError:
        if isinstance(exc, requests.ConnectTimeout):
            return KeepaConnectionError(
                f"/{endpoint}: no connection within {self.timeout[0]:g}s; nothing was sent",
                endpoint=endpoint,
            )
        if isinstance(exc, requests.Timeout):
            return KeepaTimeout(
                f"/{endpoint}: no answer within {self.timeout[1]:g}s; Keepa may already have "
                f"charged this request ({type(exc).__name__})",
                endpoint=endpoint,
            )
        text = redact(str(exc))
        if isinstance(exc, requests.ConnectionError):
            if _never_sent(exc):
                return KeepaConnectionError(
                    f"/{endpoint}: cannot reach Keepa: {text}", endpoint=endpoint
                )
            # The request left; the connection broke before the answer. Keepa may have
            # charged it, exactly as with a read timeout.
            return KeepaTimeout(
                f"/{endpoint}: connection lost before the answer; Keepa may "
                f"already have charged this request: {text}",
                endpoint=endpoint,
            )
        if isinstance(exc, ChunkedEncodingError | ContentDecodingError):
            return MalformedResponse(
                f"/{endpoint}: body truncated or corrupt: {text}", endpoint=endpoint
            )
        # InvalidURL, MissingSchema, TooManyRedirects...: the request itself is wrong.
        return BadRequest(f"/{endpoint}: the request could not be made: {text}", endpoint=endpoint)

    def _parse(self, endpoint: str, status: int, content: bytes, sent_at_s: float) -> KeepaReply:
        try:
            body: Any = json.loads(content)
        except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
            body = _NOT_JSON
        # Raised outside the `except`: the JSONDecodeError would keep the whole body.
        if body is _NOT_JSON:
            if status >= 500:
                raise ServerError(
                    f"/{endpoint}: HTTP {status} with a non-JSON body",
                    endpoint=endpoint,
                    status=status,
                )
            # Redacted whole, then cut: a key that the cut splits is no longer the key,
            # and redacting the cut preview showed its first part.
            preview = redact(content.decode("utf-8", "replace"))[:BODY_PREVIEW_CHARS]
            raise MalformedResponse(
                f"/{endpoint}: HTTP {status} body is not JSON ({len(content)} bytes, starts "
                f"{preview!r})",
                endpoint=endpoint,
                status=status,
            )
        if not isinstance(body, dict):
            raise MalformedResponse(
                f"/{endpoint}: HTTP {status} body is not a JSON object",
                endpoint=endpoint,
                status=status,
            )
        try:
            envelope: TokenEnvelope | None = TokenEnvelope.from_body(body)
        except (KeyError, TypeError, ValueError) as exc:
            envelope = None
            envelope_problem = str(exc)
        if status == 200 and "error" not in body:
            if envelope is None:
                raise MalformedResponse(
                    f"/{endpoint}: {envelope_problem}", endpoint=endpoint, status=status
                )
            return KeepaReply(endpoint, envelope, body, sent_at_s)
        raise _error_for(endpoint, status, body, envelope)


def _error_for(
    endpoint: str, status: int, body: dict[str, Any], envelope: TokenEnvelope | None
) -> KeepaError:
    raw_error = body.get("error")
    if isinstance(raw_error, dict):
        etype, emsg = str(raw_error.get("type", "")), str(raw_error.get("message", ""))
    else:  # a bare string (or nothing): keep what there is
        etype, emsg = "", "" if raw_error is None else str(raw_error)
    etype, emsg = redact(etype), redact(emsg)
    detail = f"{etype}: {emsg}".strip(": ") or "no error details"
    where = f"/{endpoint}: HTTP {status}"
    kw: dict[str, Any] = {"endpoint": endpoint, "status": status, "envelope": envelope}
    if status == 429:
        wait = f"{envelope.refill_in_ms / 1000:.0f}s" if envelope else "a minute"
        return NotEnoughTokens(
            f"{where}: not enough tokens (balance "
            f"{envelope.tokens_left if envelope else '?'}); the next refill is "
            f"in {wait}",
            **kw,
        )
    if status == 402:
        return PaymentRequired(
            f"{where}: the Keepa subscription for this key is expired or "
            f"unpaid; renew it at keepa.com ({detail})",
            **kw,
        )
    if status == 400 and "key" in f"{etype} {emsg}".lower():
        return InvalidKey(
            f"{where}: Keepa rejected the API key; check KEEPA_API_KEY in .env ({detail})", **kw
        )
    if 400 <= status < 500 or status == 200:
        return BadRequest(f"{where}: {detail}", **kw)
    if status >= 500:
        return ServerError(f"{where}: {detail}", **kw)
    return MalformedResponse(f"{where}: unexpected status ({detail})", **kw)


def _never_sent(exc: requests.ConnectionError) -> bool:
    """True when the connection failed before the request could reach Keepa."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, NewConnectionError | ConnectionRefusedError | NameResolutionError):
            return True
        pending += [current.__cause__, current.__context__]
        pending += [a for a in getattr(current, "args", ()) if isinstance(a, BaseException)]
        reason = getattr(current, "reason", None)
        if isinstance(reason, BaseException):
            pending.append(reason)
    return False
