"""The event loop: jump the virtual clock to the next event and run what is due there.

Events are beat's ticks for either task (`schedule.py`) and the scenario's timed
changes. Between events nothing happens, so the clock jumps; inside a run time moves
only when the TokenManager waits its computed time (ManualClock.sleep advances it).
A run that raises is recorded and the loop carries on, as Celery would with the next
beat tick; the report counts such errors.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from keepa_deals.harvest import RunSummary
from keepa_deals.harvest.backfiller import backfill_deals
from keepa_deals.harvest.context import HarvestContext
from keepa_deals.harvest.upserter import update_recent_deals
from keepa_deals.virtual_time.ledger import LedgerTotals
from keepa_deals.virtual_time.observe import ClassWaits
from keepa_deals.virtual_time.sampling import Sample, Sampler
from keepa_deals.virtual_time.scenario import Scenario, ScenarioEvent
from keepa_deals.virtual_time.schedule import BeatSchedule
from keepa_deals.virtual_time.stack import START_S, SimulationStack
from keepa_deals.virtual_time.tracker import DealOutcomes, DealTracker

log = logging.getLogger(__name__)

PUBLISHED_EVERY_S = 3600
# Beat's order at a shared tick: the upserter's class has priority.
TASKS: dict[str, Callable[[HarvestContext], RunSummary]] = {
    "upsert": update_recent_deals,
    "backfill": backfill_deals,
}


@dataclass(frozen=True)
class RunRecord:
    task: str
    started_s: float
    ended_s: float
    tokens_charged: int  # what the simulator charged while it ran (the truth)
    stop_reason: str
    accepted: int
    error: str | None = None


@dataclass(frozen=True)
class AppliedEvent:
    at_s: float  # offset the scenario asked for
    applied_s: float  # offset it was applied at (after a run that was going on)
    actions: dict[str, Any]


@dataclass
class SimulationResult:
    hours: float
    start_s: float
    end_s: float
    wall_s: float
    runs: list[RunRecord]
    samples: list[Sample]
    events: list[AppliedEvent]
    events_not_reached: int
    totals: LedgerTotals
    min_balance: int | None  # lowest balance right after a charge (None: no charge)
    min_balance_any: int | None  # ...or right after a scenario drift
    outcomes: DealOutcomes
    recharge_time_s: float
    waits: dict[str, ClassWaits]  # the TokenManager's decisions, per class
    wait_bound_s: dict[str, float]  # the largest starvation bound status() gave
    unbounded: set[str]  # classes status() ever called unbounded
    estimate_error_max: int  # |TokenManager estimate - Keepa's balance| at samples
    final_status: dict[str, Any]
    ticks_skipped: dict[str, int]
    sim_state: dict[str, Any] = field(repr=False, default_factory=dict)  # ledger.snapshot()


class Simulation:
    def __init__(
        self, stack: SimulationStack, hours: float, scenario: Scenario | None = None
    ) -> None:
        if hours <= 0:
            raise ValueError("hours must be positive")
        self.stack = stack
        self.hours = hours
        self.end_s = START_S + hours * 3600
        settings = stack.settings
        self.schedule = BeatSchedule(
            START_S, {"upsert": settings.upsert_every_s, "backfill": settings.backfill_every_s}
        )
        self.events = list(scenario.events) if scenario is not None else []
        self.tracker = DealTracker(stack.ctx.conn, stack.ctx.domain)
        self.sampler = Sampler(stack)
        self.runs: list[RunRecord] = []
        self.applied: list[AppliedEvent] = []
        self._accepted = 0  # accept verdicts so far, summed as runs end
        self._published: list[tuple[str, int]] = []
        self._published_until_s = START_S
        self._min_balance: int | None = None
        self._min_drifted: int | None = None
        self._charged_seen = 0
        stack.keepa.on_page = lambda records: self.tracker.page_read(records, stack.clock.now())
        stack.keepa.after_call = self._after_call

    def run(self) -> SimulationResult:
        clock = self.stack.clock
        wall_start = time.perf_counter()
        while True:
            upcoming = self.schedule.next_due_s()
            if self.events:
                upcoming = min(upcoming, START_S + self.events[0].at_s)
            if upcoming >= self.end_s:
                break
            if clock.now() < upcoming:
                clock.set(upcoming)
            self._apply_due_events()
            self.sampler.sample(self._accepted)
            if clock.now() - self._published_until_s >= PUBLISHED_EVERY_S:
                self._collect_published()
            for task in self.schedule.due(clock.now()):
                self._run(task)
        if clock.now() < self.end_s:
            clock.set(self.end_s)
        self.sampler.sample(self._accepted)
        self._collect_published()
        return SimulationResult(
            hours=self.hours,
            start_s=START_S,
            end_s=clock.now(),
            wall_s=time.perf_counter() - wall_start,
            runs=self.runs,
            samples=self.sampler.samples,
            events=self.applied,
            events_not_reached=len(self.events),
            totals=self.stack.ledger.totals(),
            min_balance=self._min_balance,
            min_balance_any=_lowest(self._min_balance, self._min_drifted),
            outcomes=self.tracker.outcomes(self._published),
            recharge_time_s=self.sampler.recharge_time_s,
            waits=self.stack.tokens.classes,
            wait_bound_s=dict(self.sampler.bound_s),
            unbounded=set(self.sampler.unbounded),
            estimate_error_max=self.sampler.estimate_error_max,
            final_status=self.stack.tokens.status().as_dict(),
            ticks_skipped=dict(self.schedule.ticks_skipped),
            sim_state=self.stack.ledger.snapshot(),
        )

    # --- one run ------------------------------------------------------------------

    def _run(self, task: str) -> None:
        clock, ledger = self.stack.clock, self.stack.ledger
        before = ledger.totals().charged
        started_s = clock.now()
        error = None
        try:
            summary = TASKS[task](self.stack.ctx)
            reason, accepted = summary.stop_reason, summary.stats.deals_accepted
        except Exception as exc:  # a crashed run: Celery logs it and beat comes back
            log.exception("simulate: %s run raised", task)
            reason, accepted, error = "error", 0, f"{type(exc).__name__}: {exc}"
        self.tracker.run_ended(clock.now())
        self._accepted += accepted
        self.runs.append(
            RunRecord(
                task,
                started_s - START_S,
                clock.now() - START_S,
                ledger.totals().charged - before,
                reason,
                accepted,
                error,
            )
        )
        self.schedule.ran(task, clock.now())

    def _collect_published(self) -> None:
        """The deals the simulator published since the last call. Asked hour by hour:
        the simulator then finds most of their records still in its cache, where one
        question for the whole run would rebuild them all."""
        now_s = self.stack.clock.now()
        selection = self.stack.ctx.selection
        found = self.stack.sim.deals_published(selection, self._published_until_s, now_s)
        self._published.extend(found)
        self._published_until_s = now_s

    def _after_call(self) -> None:
        """After each paid call: the balance it left, if it was charged."""
        totals = self.stack.ledger.totals()
        if totals.charged > self._charged_seen and totals.balance is not None:
            self._min_balance = _lowest(self._min_balance, totals.balance)
        self._charged_seen = totals.charged

    # --- scenario -----------------------------------------------------------------

    def _apply_due_events(self) -> None:
        now_s = self.stack.clock.now()
        while self.events and START_S + self.events[0].at_s <= now_s:
            event = self.events.pop(0)
            self.applied.append(AppliedEvent(event.at_s, now_s - START_S, self._apply(event)))

    def _apply(self, event: ScenarioEvent) -> dict[str, Any]:
        sim, ledger = self.stack.sim, self.stack.ledger
        done: dict[str, Any] = {}
        for action in event.actions():
            if action == "set_plan" and event.set_plan is not None:
                sim.set_plan(event.set_plan)
                done["set_plan"] = event.set_plan
            elif action == "clear_faults":
                sim.clear_faults()
                done["clear_faults"] = True
            elif action == "faults" and event.faults is not None:
                sim.set_faults(event.faults)
                done["faults"] = dict(event.faults)
            elif action == "drift_tokens" and event.drift_tokens is not None:
                before, after = ledger.drift(event.drift_tokens)
                done["drift_tokens"] = {"by": event.drift_tokens, "from": before, "to": after}
                self._min_drifted = _lowest(self._min_drifted, after)
            elif action == "product_cost_factor" and event.product_cost_factor is not None:
                ledger.cost_factor = event.product_cost_factor
                done["product_cost_factor"] = event.product_cost_factor
        return done


def _lowest(a: int | None, b: int | None) -> int | None:
    if a is None:
        return b
    return a if b is None else min(a, b)
