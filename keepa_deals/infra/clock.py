"""Clocks. Production waits on real time; tests and simulation step a virtual one."""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Unix seconds."""
        ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class ManualClock:
    """Time moves only when told; `sleep` advances it instead of blocking."""

    def __init__(self, start_s: float = 1_767_225_600.0) -> None:  # 2026-01-01 UTC
        self._now_s = float(start_s)
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._now_s

    def sleep(self, seconds: float) -> None:
        self.advance(max(0.0, seconds))

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a clock does not move backwards")
        with self._lock:
            self._now_s += seconds

    def set(self, now_s: float) -> None:
        with self._lock:
            if now_s < self._now_s:
                raise ValueError("a clock does not move backwards")
            self._now_s = now_s


class ScaledClock:
    """Runs `scale` times faster than the wall clock from a common origin.

    Processes that must agree (worker, beat, simulator) pass the same `origin_s` and
    `wall_origin_s`: simulated time is then one function of the wall clock for all.
    """

    def __init__(
        self, scale: float, origin_s: float | None = None, wall_origin_s: float | None = None
    ) -> None:
        if scale <= 0:
            raise ValueError("scale must be positive")
        self.scale = scale
        self._wall_origin_s = time.time() if wall_origin_s is None else wall_origin_s
        self._origin_s = self._wall_origin_s if origin_s is None else origin_s

    def now(self) -> float:
        return self._origin_s + (time.time() - self._wall_origin_s) * self.scale

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds / self.scale)
