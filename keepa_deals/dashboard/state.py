"""What every router reaches through `request.app.state.dash`: the configuration, the
templates, the clock and the cached doctor verdict."""

from __future__ import annotations

import logging
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
from keepa_deals.infra.checks import Check
from keepa_deals.service.doctor import run_doctor
from keepa_deals.service.timebase import now_s as service_now_s

log = logging.getLogger(__name__)
TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"


class DoctorCache:
    """`keepa-deals doctor`'s checks for all requests, refreshed in the background every
    `every_s` (Refreshed).

    A full doctor run pings the workers (up to 2 s) and may look at a lock twice (5 s
    apart): far too slow per request, and /healthz is polled."""

    def __init__(
        self,
        settings: Settings,
        every_s: float,
        checks: Sequence[Callable[[Settings], Check]] | None = None,
    ) -> None:
        self.checks = checks
        self._refreshed = Refreshed(every_s, lambda: run_doctor(settings, checks=self.checks))

    def get(self) -> tuple[list[Check], float]:
        """The checks and how many seconds ago they ran."""
        checks, age_s = self._refreshed.get()
        return list(checks), age_s


class Refreshed:
    """A value that is costly to compute (a scan of a million rows), served from its
    last computation while a background thread brings it up to date: a request never
    waits for it once it exists, and it is at most one computation old. The first
    request computes it in place. At most one refresh runs at a time."""

    def __init__(self, every_s: float, compute: Callable[[], Any]) -> None:
        self.every_s = every_s
        self.compute = compute
        self._lock = threading.Lock()
        self._refreshing = False
        self._at_s: float | None = None
        self._value: Any = None

    def get(self) -> tuple[Any, float]:
        """The value and its age in seconds."""
        with self._lock:
            first = self._at_s is None
        if first:
            self._store(self.compute())
        with self._lock:
            assert self._at_s is not None
            age_s = time.monotonic() - self._at_s
            if age_s >= self.every_s and not self._refreshing:
                self._refreshing = True
                threading.Thread(target=self._refresh, daemon=True).start()
            return self._value, age_s

    def _store(self, value: Any) -> None:
        with self._lock:
            self._value, self._at_s = value, time.monotonic()

    def _refresh(self) -> None:
        try:
            self._store(self.compute())
        except Exception:  # the last good value stays; the next request tries again
            log.exception("dashboard: refreshing a cached value failed")
        finally:
            with self._lock:
                self._refreshing = False


CATEGORIES_EVERY_S = 300.0
# What /health and /metrics read from the database and Redis: status scans every deal.
SNAPSHOT_EVERY_S = 10.0


@dataclass
class Dashboard:
    config: DashboardConfig
    templates: Jinja2Templates
    doctor: DoctorCache
    clock: Callable[[], float] | None = None
    snapshots: dict[str, Refreshed] = field(default_factory=dict)

    def snapshot(
        self, name: str, compute: Callable[[], Any], every_s: float = SNAPSHOT_EVERY_S
    ) -> tuple[Any, float]:
        """`compute()`'s result, refreshed in the background every `every_s`."""
        cached = self.snapshots.get(name)
        if cached is None:
            cached = self.snapshots.setdefault(name, Refreshed(every_s, compute))
        value, age_s = cached.get()
        return value, age_s

    @property
    def settings(self) -> Settings:
        return self.config.settings

    def now_s(self) -> float:
        """Service time: a scaled simulator's deals are timed on its clock."""
        return self.clock() if self.clock is not None else service_now_s(self.settings)


def dash(request: Request) -> Dashboard:
    found: Dashboard = request.app.state.dash
    return found
