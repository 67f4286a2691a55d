"""`KeepaSimulator`: the catalogue, the token accounting and the server, in one object.

    sim = KeepaSimulator(seed=1, refill_rate=5, clock="manual").start()
    requests.get(f"{sim.url}/token", params={"key": "any"})
    sim.advance(60)
    sim.stop()

Use it in-process without a socket through `sim.adapter()` (a `requests` adapter).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Self

from keepa_deals.infra.closing import Closing
from keepa_deals.keepa.keepa_time import unix_s_to_keepa_minutes
from keepa_deals.keepa_sim.accounts import Accounts, KeyStatus
from keepa_deals.keepa_sim.adapter import SimulatorAdapter
from keepa_deals.keepa_sim.app import SimulatorApp
from keepa_deals.keepa_sim.bucket import RefillMode
from keepa_deals.keepa_sim.catalogue import shared_catalogue
from keepa_deals.keepa_sim.deals import DealEngine
from keepa_deals.keepa_sim.products import ProductBuilder
from keepa_deals.keepa_sim.server import ServerThread
from keepa_deals.keepa_sim.timeline import Timeline
from keepa_deals.keepa_sim.timesource import NowClock, TimeSource

DEFAULT_CATALOGUE_SIZE = 30_000
# Share of a product's changes that are price drops. With the default catalogue this
# publishes ~130 used-book deals an hour for the project's default query.
DROP_PROBABILITY = 0.5
# How far before its start the simulator's histories are at each product's own cadence
# (coarser before: timeline.py).
FINE_HISTORY_DAYS = 183


class KeepaSimulator(Closing):
    def __init__(
        self,
        *,
        seed: int = 0,
        refill_rate: int = 5,
        clock: str | NowClock = "manual",
        time_scale: float = 1.0,
        refill_mode: RefillMode = "tick",
        initial_tokens: int | None = None,
        catalogue_size: int = DEFAULT_CATALOGUE_SIZE,
        deal_rate: float = 1.0,
        sort_jitter: float = 0.05,
        accept_any_key: bool = True,
        keys: Iterable[str] = (),
        page_cache_s: float = 120.0,
        start_s: float | None = None,
    ) -> None:
        """`deal_rate` scales how often products change, and so the deals published an
        hour (and the history's density). A product's history runs from its
        `trackingSince`, at its own cadence for the half year before the simulator's
        start and after, two-weekly before (timeline.py). `start_s` starts a manual or
        scaled clock there."""
        if deal_rate <= 0:
            raise ValueError("deal_rate must be positive")
        time_source = TimeSource(clock, time_scale, start_s)
        timeline = Timeline(
            shared_catalogue(seed, catalogue_size),
            drop_probability=DROP_PROBABILITY,
            change_rate=deal_rate,
        )
        timeline.set_fine_from(
            unix_s_to_keepa_minutes(time_source.now_s()) - FINE_HISTORY_DAYS * 1440
        )
        self.app = SimulatorApp(
            seed=seed,
            time_source=time_source,
            accounts=Accounts(refill_rate, refill_mode, initial_tokens, accept_any_key, keys),
            engine=DealEngine(timeline, seed, sort_jitter, page_cache_s),
            products=ProductBuilder(timeline),
        )
        self._server: ServerThread | None = None

    # --- lifecycle ---------------------------------------------------------------

    def start(self, host: str = "127.0.0.1", port: int = 0) -> Self:
        """Serve HTTP on a background thread (port 0: any free port)."""
        if self._server is not None:
            raise RuntimeError("the simulator is already serving")
        self._server = ServerThread(self.app, host, port)
        return self

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the simulator is not serving: call start() first")
        return self._server.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    # `with` ends by stopping the server.
    close = stop

    def adapter(self) -> SimulatorAdapter:
        """A `requests` adapter answering in-process: session.mount("http://keepa.sim/", ...)."""
        return SimulatorAdapter(self.app)

    # --- control -----------------------------------------------------------------

    def now(self) -> float:
        """Simulated unix seconds."""
        return self.app.time.now_s()

    def advance(self, seconds: float) -> float:
        """Move a manual clock forward; returns the new simulated time."""
        return self.app.advance(seconds)

    def set_plan(self, refill_rate: int) -> None:
        """A plan change: every key's rate and cap change now."""
        self.app.set_plan(refill_rate)

    def set_key(self, key: str, status: KeyStatus) -> None:
        """Mark a key "active", "expired" (402) or "unknown" (400)."""
        with self.app.lock:
            self.app.accounts.set_status(key, status)

    def set_faults(self, faults: Mapping[str, Any]) -> None:
        """Replace the fault configuration (schema in `keepa_deals.keepa_sim.faults`)."""
        with self.app.lock:
            self.app.faults.set(faults)

    def clear_faults(self) -> None:
        with self.app.lock:
            self.app.faults.clear()

    def state(self) -> dict[str, Any]:
        """What GET /_sim/state answers."""
        return self.app.state()

    def deals_published(
        self, selection: Mapping[str, Any], start_s: float, end_s: float
    ) -> list[tuple[str, int]]:
        """(asin, creationDate) of every deal matching `selection` that became visible in
        (start_s, end_s], oldest first. Ignores `page` and sorting."""
        return self.app.published(selection, start_s, end_s)
