"""One API key's tokens, the way Keepa meters them.

- `tick` (the default, Keepa's observed cadence): every 60 s from the key's first use,
  `rate` tokens arrive at once; `refillIn` counts down to the next tick.
- `continuous`: rate/60 tokens a second, accounted in whole tokens (a token arrives each
  60/rate s); `refillIn` counts down to the next whole token.

The balance never exceeds 60 x rate (tokens older than an hour expire); what a refill
would push above it is counted in `lost_to_cap`. A charge may take the balance below
zero. All times are simulated unix seconds.
"""

from __future__ import annotations

import math
from typing import Literal

RefillMode = Literal["tick", "continuous"]
REFILL_MODES: tuple[RefillMode, ...] = ("tick", "continuous")
TICK_S = 60.0
_EPS = 1e-6


class TokenBucket:
    def __init__(
        self, rate: int, now_s: float, mode: RefillMode = "tick", initial: int | None = None
    ) -> None:
        if rate < 1:
            raise ValueError("refill rate must be at least 1 token a minute")
        if mode not in REFILL_MODES:
            raise ValueError(f"refill mode must be one of {REFILL_MODES}")
        self.rate = rate
        self.mode: RefillMode = mode
        self.balance = self.capacity if initial is None else min(initial, self.capacity)
        self._origin_s = now_s
        self._done = 0  # ticks (tick mode) or whole tokens (continuous) since origin
        self.refilled = 0
        self.lost_to_cap = 0
        self.charged = 0

    @property
    def capacity(self) -> int:
        return 60 * self.rate

    def _add(self, tokens: int) -> None:
        total = self.balance + tokens
        lost = max(0, total - max(self.capacity, self.balance))
        self.balance = total - lost
        self.refilled += tokens - lost
        self.lost_to_cap += lost

    def _due(self, now_s: float) -> int:
        elapsed = now_s - self._origin_s + _EPS
        if self.mode == "tick":
            return int(elapsed // TICK_S)
        return int(elapsed * self.rate // TICK_S)

    def sync(self, now_s: float) -> None:
        """Apply every refill due by `now_s`."""
        due = self._due(now_s)
        if due > self._done:
            per = self.rate if self.mode == "tick" else 1
            self._add((due - self._done) * per)
            self._done = due

    def refill_in_ms(self, now_s: float) -> int:
        """Simulated ms until the next refill; always in [0, 60000)."""
        self.sync(now_s)
        step = TICK_S if self.mode == "tick" else TICK_S / self.rate
        next_s = self._origin_s + (self._done + 1) * step
        return max(0, min(59_999, math.ceil((next_s - now_s) * 1000 - _EPS)))

    def charge(self, tokens: int) -> None:
        self.balance -= tokens
        self.charged += tokens

    def set_rate(self, rate: int, now_s: float) -> None:
        """A plan change: new rate and cap from now; a balance above the cap is cut."""
        if rate < 1:
            raise ValueError("refill rate must be at least 1 token a minute")
        self.sync(now_s)
        if self.mode == "continuous":
            # Keep the fraction of a token already accrued, at the new speed.
            fraction = (now_s - self._origin_s) * self.rate / TICK_S - self._done
            self._origin_s = now_s - max(0.0, fraction) * TICK_S / rate
            self._done = 0
        self.rate = rate
        if self.balance > self.capacity:
            self.lost_to_cap += self.balance - self.capacity
            self.balance = self.capacity
