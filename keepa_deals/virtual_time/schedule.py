"""Beat's schedule on a virtual clock: when each task runs next.

Beat sends each task at origin + k x period (k = 0, 1, ...), and each message expires
after one period (`celery_app.py`), so a task that was busy past several of its ticks
runs once for the newest unexpired tick, not once per tick missed. Tasks due at the same
moment run in the order given (the upserter first, as its class has priority).

The simulation runs one task at a time. In production the two tasks run side by side on
two worker processes; here a run that waits for tokens holds back the other task's tick
until it ends. Runs wait at most HARVEST_INLINE_WAIT_S per call, so the difference is
seconds against minutes-long periods.
"""

from __future__ import annotations

import math
from collections.abc import Mapping


class BeatSchedule:
    def __init__(self, origin_s: float, periods_s: Mapping[str, float]) -> None:
        for task, period in periods_s.items():
            if period <= 0:
                raise ValueError(f"{task}: a beat period must be positive")
        self.origin_s = origin_s
        self.periods_s = dict(periods_s)
        # The tick each task runs for next (the first ticks are at the origin).
        self._next_s = dict.fromkeys(self.periods_s, origin_s)
        self.ticks_skipped = dict.fromkeys(self.periods_s, 0)

    def next_due_s(self) -> float:
        """The earliest tick still to run."""
        return min(self._next_s.values())

    def due(self, now_s: float) -> list[str]:
        """Tasks with a tick at or before `now_s`, in run order."""
        return [task for task, tick in self._next_s.items() if tick <= now_s]

    def ran(self, task: str, ended_s: float) -> None:
        """`task` ran for its pending tick and ended at `ended_s`: move to the next tick,
        dropping ticks whose message expired meanwhile (tick + period <= ended_s)."""
        period = self.periods_s[task]
        following = self._next_s[task] + period
        # The oldest tick still alive at ended_s: tick > ended_s - period.
        k_alive = math.floor((ended_s - period - self.origin_s) / period) + 1
        upcoming = max(following, self.origin_s + k_alive * period)
        self.ticks_skipped[task] += max(0, round((upcoming - following) / period))
        self._next_s[task] = upcoming
