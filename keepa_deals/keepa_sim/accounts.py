"""API keys, their token buckets, and the per-endpoint counters.

Keys are held by fingerprint only (a SHA-256 prefix): the simulator can say which key
did what in its state and logs without ever writing a key down.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any, Literal

from keepa_deals.keepa_sim.bucket import RefillMode, TokenBucket

KeyStatus = Literal["active", "expired", "unknown"]
KEY_STATUSES: tuple[KeyStatus, ...] = ("active", "expired", "unknown")
ENDPOINTS = ("token", "product", "deal", "category", "search")


def fingerprint(key: str) -> str:
    """Short, stable and one-way: safe to log."""
    return "k-" + hashlib.sha256(key.encode()).hexdigest()[:10]


@dataclass
class EndpointCounters:
    calls: int = 0
    tokens: int = 0
    rejected_429: int = 0
    errors: int = 0  # answered 4xx/5xx other than 429


class Accounts:
    def __init__(
        self,
        rate: int,
        mode: RefillMode = "tick",
        initial_tokens: int | None = None,
        accept_any_key: bool = True,
        keys: Iterable[str] = (),
    ) -> None:
        TokenBucket(rate, 0.0, mode)  # validates rate and mode up front
        self.rate = rate
        self.mode: RefillMode = mode
        self.initial_tokens = initial_tokens
        self.accept_any_key = accept_any_key
        self._status: dict[str, KeyStatus] = {fingerprint(k): "active" for k in keys}
        self.buckets: dict[str, TokenBucket] = {}
        self.counters = {name: EndpointCounters() for name in ENDPOINTS}

    def status(self, key: str) -> KeyStatus:
        default: KeyStatus = "active" if self.accept_any_key else "unknown"
        return self._status.get(fingerprint(key), default)

    def set_status(self, key: str, status: KeyStatus) -> None:
        if status not in KEY_STATUSES:
            raise ValueError(f"key status must be one of {KEY_STATUSES}")
        self._status[fingerprint(key)] = status

    def bucket(self, key: str, now_s: float) -> TokenBucket:
        """The key's bucket, created full (or at `initial_tokens`) on first use."""
        fp = fingerprint(key)
        bucket = self.buckets.get(fp)
        if bucket is None:
            bucket = TokenBucket(self.rate, now_s, self.mode, self.initial_tokens)
            self.buckets[fp] = bucket
        bucket.sync(now_s)
        return bucket

    def set_rate(self, rate: int, now_s: float) -> None:
        TokenBucket(rate, now_s, self.mode)
        self.rate = rate
        for bucket in self.buckets.values():
            bucket.set_rate(rate, now_s)

    def snapshot(self, now_s: float, scale: float) -> dict[str, Any]:
        keys = {}
        for fp, bucket in sorted(self.buckets.items()):
            # Catch the bucket up first: the balance must include every refill so far,
            # as tokens_refilled below does.
            refill_in_ms = int(bucket.refill_in_ms(now_s) / scale)
            keys[fp] = {
                "status": self._status.get(fp, "active" if self.accept_any_key else "unknown"),
                "tokens_left": bucket.balance,
                "refill_in_ms": refill_in_ms,
                "tokens_charged": bucket.charged,
                "tokens_refilled": bucket.refilled,
                "tokens_lost_to_cap": bucket.lost_to_cap,
            }
        endpoints = {name: asdict(c) for name, c in self.counters.items()}
        return {
            "refill_rate": self.rate,
            "refill_mode": self.mode,
            "capacity": 60 * self.rate,
            "keys": keys,
            "endpoints": endpoints,
            "totals": {
                "calls": sum(c.calls for c in self.counters.values()),
                "tokens_charged": sum(c.tokens for c in self.counters.values()),
                "rejected_429": sum(c.rejected_429 for c in self.counters.values()),
                "tokens_refilled": sum(b.refilled for b in self.buckets.values()),
                "tokens_lost_to_cap": sum(b.lost_to_cap for b in self.buckets.values()),
            },
        }
