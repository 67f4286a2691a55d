"""What a harvest run works with: settings, the deals database, Keepa, the token budget,
a clock and the deal query, built once and closed together.

    with HarvestContext.from_settings(Settings.from_env()) as ctx:
        summary = update_recent_deals(ctx)

Tests pass their own pieces (a simulator's client, a Redis on a free port, a
ManualClock shared with the simulator); whatever `from_settings` creates itself, it
closes in `close()`, and nothing a caller passed in.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

import redis as redis_lib

from keepa_deals.config import Settings
from keepa_deals.errors import ConfigError
from keepa_deals.infra.clock import Clock, SystemClock
from keepa_deals.infra.closing import Closing
from keepa_deals.keepa.client import KeepaClient
from keepa_deals.keepa.deal_query import load_deal_query
from keepa_deals.store import open_from_settings
from keepa_deals.tokens import TokenManager


@dataclass
class HarvestContext(Closing):
    settings: Settings
    conn: sqlite3.Connection  # one per thread: sqlite3 connections are not shared
    keepa: KeepaClient
    tokens: TokenManager
    clock: Clock
    selection: dict[str, Any]  # the /deal query, checked (failure mode: numbers sent as text)
    # Asked between batches: True ends the run at once (the task lost its lock).
    stop: Callable[[], bool] | None = None
    # Asked between batches too: True ends the run (its worker is shutting down).
    shutting_down: Callable[[], bool] | None = None
    _owned: ExitStack = field(default_factory=ExitStack, repr=False)

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        clock: Clock | None = None,
        keepa: KeepaClient | None = None,
        redis: redis_lib.Redis | None = None,
        tokens: TokenManager | None = None,
        conn: sqlite3.Connection | None = None,
        stop: Callable[[], bool] | None = None,
        shutting_down: Callable[[], bool] | None = None,
    ) -> HarvestContext:
        """Everything from `settings`, except what is given. The deal query is read and
        the database migrated and checked first: a bad query or a drifted schema stops
        the run before any token is spent (failure modes: numbers sent as text, schema drift)."""
        with ExitStack() as owned:
            selection = load_deal_query(settings.deal_query_path)
            query_domain = selection.get("domainId", settings.keepa_domain)
            if query_domain != settings.keepa_domain:
                # Deals of one marketplace evaluated with another's products: refuse.
                raise ConfigError(
                    "DEAL_QUERY_PATH",
                    settings.deal_query_path,
                    f"the query's domainId {query_domain} must match "
                    f"KEEPA_DOMAIN={settings.keepa_domain}",
                )
            if conn is None:
                conn = open_from_settings(settings)
                owned.callback(conn.close)
            if keepa is None:
                keepa = KeepaClient.from_settings(settings)
                owned.callback(keepa.session.close)
            if tokens is None:
                # Without an injected clock the TokenManager reads Redis's TIME, one clock
                # for every host; a test's ManualClock is shared with the simulator.
                tokens = TokenManager.from_settings(settings, redis=redis, clock=clock, keepa=keepa)
                if redis is None:
                    owned.callback(tokens.redis.close)
            # Built: from here on `close()` owns them (until then, a failure closes them).
            kept = owned.pop_all()
        return cls(
            settings=settings,
            conn=conn,
            keepa=keepa,
            tokens=tokens,
            clock=clock if clock is not None else SystemClock(),
            selection=selection,
            stop=stop,
            shutting_down=shutting_down,
            _owned=kept,
        )

    @property
    def domain(self) -> int:
        """The Keepa domain the deal query asks for (the client's when it names none)."""
        found = self.selection.get("domainId")
        return found if isinstance(found, int) else self.keepa.domain

    def now_s(self) -> int:
        """Whole unix seconds on the context's clock: every time the store writes."""
        return int(self.clock.now())

    def stopped(self) -> bool:
        return self.stop is not None and self.stop()

    def shutdown_requested(self) -> bool:
        return self.shutting_down is not None and self.shutting_down()

    def close(self) -> None:
        """Close what `from_settings` opened, newest first. Safe to call twice."""
        self._owned.close()
