"""The simulator's own token accounting, read directly: the truth the report is built on.

The simulator meters the one key the simulation uses exactly as Keepa would (refills,
charges, what the cap threw away, 429s). Reading its bucket is free and changes nothing:
`sync` only applies refills already due, which any request would apply too.

Scenario actions that act on Keepa's side behind the TokenManager's back live here as
well: a drifted balance, and products that cost more than Keepa's price list says.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from keepa_deals.keepa_sim import KeepaSimulator
from keepa_deals.keepa_sim.accounts import fingerprint
from keepa_deals.keepa_sim.bucket import TokenBucket


@dataclass(frozen=True)
class LedgerTotals:
    charged: int = 0
    refilled: int = 0
    lost_to_cap: int = 0
    rejected_429: int = 0
    balance: int | None = None  # None: the key was never used yet

    def minus(self, earlier: LedgerTotals) -> LedgerTotals:
        return LedgerTotals(
            charged=self.charged - earlier.charged,
            refilled=self.refilled - earlier.refilled,
            lost_to_cap=self.lost_to_cap - earlier.lost_to_cap,
            rejected_429=self.rejected_429 - earlier.rejected_429,
            balance=self.balance,
        )


class SimulatorLedger:
    def __init__(self, sim: KeepaSimulator, key: str) -> None:
        self.sim = sim
        self._fp = fingerprint(key)
        self._key = key
        self.cost_factor = 1.0
        products = sim.app.products
        self._build: Callable[..., tuple[dict[str, Any], int]] = products.build
        # An instance attribute shadows the method: /product charges what this returns.
        setattr(products, "build", self._surcharged)  # noqa: B010 - mypy: method assignment

    def _bucket(self, create: bool = False) -> TokenBucket | None:
        app = self.sim.app
        if create:
            return app.accounts.bucket(self._key, app.time.now_s())
        bucket = app.accounts.buckets.get(self._fp)
        if bucket is not None:
            bucket.sync(app.time.now_s())
        return bucket

    def totals(self) -> LedgerTotals:
        app = self.sim.app
        with app.lock:
            rejected = sum(c.rejected_429 for c in app.accounts.counters.values())
            bucket = self._bucket()
            if bucket is None:
                return LedgerTotals(rejected_429=rejected)
            return LedgerTotals(
                charged=bucket.charged,
                refilled=bucket.refilled,
                lost_to_cap=bucket.lost_to_cap,
                rejected_429=rejected,
                balance=bucket.balance,
            )

    def snapshot(self) -> dict[str, Any]:
        """The accounts part of the simulator's state() (keys, endpoints, totals), without
        the deal statistics state() also computes, which cost seconds on a large
        catalogue."""
        app = self.sim.app
        with app.lock:
            return app.accounts.snapshot(app.time.now_s(), app.time.scale)

    def balance(self) -> int | None:
        with self.sim.app.lock:
            bucket = self._bucket()
            return None if bucket is None else bucket.balance

    def drift(self, tokens: int) -> tuple[int, int]:
        """Move Keepa's balance by `tokens` without telling anyone (never above the cap).
        Returns (before, after)."""
        with self.sim.app.lock:
            bucket = self._bucket(create=True)
            assert bucket is not None
            before = bucket.balance
            bucket.balance = min(bucket.capacity, before + tokens)
            return before, bucket.balance

    def _surcharged(self, *args: Any, **kwargs: Any) -> tuple[dict[str, Any], int]:
        product, cost = self._build(*args, **kwargs)
        if self.cost_factor == 1.0:
            return product, cost
        return product, math.ceil(cost * self.cost_factor)
