"""Simulated time, and the time the simulator shows its clients.

- `wall`: real time.
- `scaled`: simulated time runs K times faster than the wall clock and drives the
  catalogue and the refills, but `timestamp` and `refillIn` in responses stay on the
  wall clock (refillIn = simulated ms to the refill / K), so a real client that waits
  `refillIn` waits the right wall time.
- `manual`: time moves only when told (`advance`); responses show simulated time.
- any object with `now()` (unix seconds): shared with the caller, e.g. a virtual-time
  harness driving both sides. Responses show its time. A `ScaledClock` object is read
  like `scaled`.
"""

from __future__ import annotations

import time
from typing import Literal, Protocol

from keepa_deals.infra.clock import ManualClock, ScaledClock, SystemClock

ClockKind = Literal["wall", "scaled", "manual", "external"]
CLOCK_NAMES = ("wall", "scaled", "manual")


class NowClock(Protocol):
    def now(self) -> float: ...


class TimeSource:
    def __init__(
        self,
        clock: str | NowClock = "manual",
        time_scale: float = 1.0,
        start_s: float | None = None,
    ) -> None:
        self.scale = 1.0
        self.kind: ClockKind
        self.clock: NowClock
        if clock == "wall":
            self.clock, self.kind = SystemClock(), "wall"
        elif clock == "scaled":
            if time_scale <= 0:
                raise ValueError("time_scale must be positive")
            self.clock, self.kind = ScaledClock(time_scale, start_s), "scaled"
            self.scale = time_scale
        elif clock == "manual":
            self.clock = ManualClock() if start_s is None else ManualClock(start_s)
            self.kind = "manual"
        elif isinstance(clock, str):
            raise ValueError(f"clock must be one of {CLOCK_NAMES} or an object with now()")
        elif callable(getattr(clock, "now", None)):
            self.clock, self.kind = clock, "external"
            if isinstance(clock, ManualClock):
                self.kind = "manual"
            elif isinstance(clock, ScaledClock):
                self.kind, self.scale = "scaled", clock.scale
        else:
            raise TypeError("clock must be 'wall', 'scaled', 'manual' or have a now() method")

    def now_s(self) -> float:
        return float(self.clock.now())

    def timestamp_ms(self) -> int:
        """What responses call `timestamp`."""
        if self.kind in ("wall", "scaled"):
            return int(time.time() * 1000)
        return int(self.now_s() * 1000)

    def to_client_ms(self, simulated_ms: float) -> int:
        return int(simulated_ms / self.scale)

    def advance(self, seconds: float) -> None:
        advance = getattr(self.clock, "advance", None)
        if self.kind in ("wall", "scaled") or advance is None:
            raise RuntimeError(f"a {self.kind} clock cannot be advanced; use clock='manual'")
        advance(seconds)
