"""An exact, tiny model of Keepa's token bucket for tests that need the truth.

Ticks once a minute from `phase_s`, caps at 60 x rate, runs a request only at a
positive balance and charges its full cost, as `keepa-api.md` describes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class KeepaBucket:
    balance: int
    rate: int = 5
    now_s: float = 0.0
    phase_s: float = 30.0  # first tick this many seconds after now_s
    refused: int = 0
    charged: int = 0
    lowest: int = field(default=0, init=False)

    # Keepa counts in whole milliseconds; so does the model, to compare exactly.
    def __post_init__(self) -> None:
        self._next_tick_ms = _ms(self.now_s + self.phase_s)
        self.lowest = self.balance

    def rebase(self, now_s: float) -> None:
        """Move a bucket made without a time onto the test's clock."""
        self.now_s = now_s
        self._next_tick_ms = _ms(now_s + self.phase_s)

    @property
    def capacity(self) -> int:
        return 60 * self.rate

    def advance(self, now_s: float) -> None:
        while self._next_tick_ms <= _ms(now_s):
            self.balance = min(self.capacity, self.balance + self.rate)
            self._next_tick_ms += 60_000
        self.now_s = max(self.now_s, now_s)

    def charge(self, now_s: float, cost: int) -> bool:
        """False (a 429) when the balance is <= 0; nothing is charged then."""
        self.advance(now_s)
        if self.balance <= 0:
            self.refused += 1
            return False
        self.balance -= cost
        self.charged += cost
        self.lowest = min(self.lowest, self.balance)
        return True

    def set_rate(self, rate: int) -> None:
        self.rate = rate
        self.balance = min(self.balance, self.capacity)

    def envelope(self, now_s: float, consumed: int) -> dict[str, Any]:
        self.advance(now_s)
        return {
            "tokensLeft": self.balance,
            "refillIn": self._next_tick_ms - _ms(now_s),
            "refillRate": self.rate,
            "tokensConsumed": consumed,
            "tokenFlowReduction": 0.0,
            "timestamp": _ms(now_s),
        }


def _ms(seconds: float) -> int:
    return round(seconds * 1000)
