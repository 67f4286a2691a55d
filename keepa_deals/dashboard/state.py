"""What every router reaches through `request.app.state.dash`: the configuration, the
templates, the clock and the cached doctor verdict."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.templating import Jinja2Templates

from keepa_deals.config import Settings
from keepa_deals.dashboard.config import DashboardConfig
from keepa_deals.doctor import run_doctor
from keepa_deals.preflight import Check
from keepa_deals.timebase import now_s as service_now_s

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"


class DoctorCache:
    """`keepa-deals doctor`'s checks, run at most once every `every_s` for all requests.

    A full doctor run pings the workers (up to 2 s) and may look at a lock twice (5 s
    apart): far too slow per request, and /healthz is polled. Concurrent requests wait
    for the one run in progress instead of starting their own."""

    def __init__(
        self,
        settings: Settings,
        every_s: float,
        checks: Sequence[Callable[[Settings], Check]] | None = None,
    ) -> None:
        self.settings = settings
        self.every_s = every_s
        self.checks = checks
        self._lock = threading.Lock()
        self._at_s: float | None = None
        self._result: list[Check] = []

    def get(self) -> tuple[list[Check], float]:
        """The checks and how many seconds ago they ran."""
        with self._lock:
            now = time.monotonic()
            if self._at_s is None or now - self._at_s >= self.every_s:
                self._result = run_doctor(self.settings, checks=self.checks)
                self._at_s = time.monotonic()
            return list(self._result), time.monotonic() - self._at_s


class TimedCache:
    """One value, recomputed at most every `every_s`: for what is costly to read and
    changes slowly (the category list scans every accepted deal)."""

    def __init__(self, every_s: float) -> None:
        self.every_s = every_s
        self._lock = threading.Lock()
        self._at_s: float | None = None
        self._value: Any = None

    def get(self, compute: Callable[[], Any]) -> Any:
        with self._lock:
            now = time.monotonic()
            if self._at_s is None or now - self._at_s >= self.every_s:
                self._value = compute()
                self._at_s = time.monotonic()
            return self._value


CATEGORIES_EVERY_S = 300.0


@dataclass
class Dashboard:
    config: DashboardConfig
    templates: Jinja2Templates
    doctor: DoctorCache
    clock: Callable[[], float] | None = None
    categories: TimedCache = field(default_factory=lambda: TimedCache(CATEGORIES_EVERY_S))

    @property
    def settings(self) -> Settings:
        return self.config.settings

    def now_s(self) -> float:
        """Service time: a scaled simulator's deals are timed on its clock."""
        return self.clock() if self.clock is not None else service_now_s(self.settings)


def dash(request: Request) -> Dashboard:
    found: Dashboard = request.app.state.dash
    return found
