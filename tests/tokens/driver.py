"""Drives a TokenManager with competing classes on virtual time against a true bucket.

Each class asks again when its computed wait is over, or after `ask_every_s` at most
(beat brings a stopped task back). Granted calls are charged to the bucket (Keepa)
at once and settled after a latency, possibly out of order. Every step checks the
invariants that must hold whatever the demand.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from keepa_deals.infra.clock import ManualClock
from keepa_deals.tokens import Grant, TokenManager
from keepa_deals.tokens.errors import ImpossibleRequest
from tests.tokens.model import KeepaBucket


@dataclass
class Demand:
    cls: str
    cost: int
    ask_every_s: float = 60.0  # longest gap between two asks while it wants tokens
    think_s: float = 0.0  # pause after a grant before it wants tokens again
    min_actual: float = 1.0  # actual cost as a fraction of the estimate: [min_actual, 1]


@dataclass
class ClassReport:
    grants: int = 0
    tokens: int = 0  # charged by Keepa (the actual cost)
    granted_tokens: int = 0  # the estimated costs granted: what shares are measured in
    waits_s: list[float] = field(default_factory=list)
    bounds_s: list[float | None] = field(default_factory=list)
    # A wait still open when the run ends: (how long so far, its bound). A class that
    # is never served shows up only here.
    open_wait: tuple[float, float | None] | None = None
    reasons: set[str] = field(default_factory=set)
    final_bound_s: float | None = None  # the starvation bound status() gave at the end

    @property
    def longest_wait_s(self) -> float:
        return max(self.waits_s, default=0.0)


@dataclass
class Report:
    classes: dict[str, ClassReport]
    http_429: int
    lowest_true_balance: int
    lowest_estimate: int
    violations: list[str]
    duration_s: float
    demands: list[Demand]


class Driver:
    def __init__(
        self,
        tm: TokenManager,
        clock: ManualClock,
        bucket: KeepaBucket,
        demands: list[Demand],
        seed: int = 0,
        max_latency_s: float = 5.0,
        check_every_step: bool = True,
    ) -> None:
        self.tm, self.clock, self.bucket = tm, clock, bucket
        self.demands = demands
        self.rng = random.Random(seed)
        self.max_latency_s = max_latency_s
        self.check = check_every_step
        self.floor = tm.policy.floor
        self.next_ask = {d.cls: clock.now() for d in demands}
        self.wait_start: dict[str, float | None] = {d.cls: None for d in demands}
        self.wait_bound: dict[str, float | None] = {d.cls: None for d in demands}
        self.pending: list[tuple[float, Grant, dict[str, object]]] = []
        self.reports = {d.cls: ClassReport() for d in demands}
        self.violations: list[str] = []
        self.lowest_estimate = 0

    def run(self, duration_s: float) -> Report:
        end = self.clock.now() + duration_s
        while True:
            t = min([*self.next_ask.values(), *(p[0] for p in self.pending)])
            if t > end:
                break
            if t > self.clock.now():
                self.clock.set(t)
            self._settle_due()
            for demand in self.demands:
                if self.next_ask[demand.cls] <= self.clock.now():
                    self._ask(demand)
            if self.check:
                self._check()
        for cls, started in self.wait_start.items():
            if started is not None:
                self.reports[cls].open_wait = (end - started, self.wait_bound[cls])
        final = self.tm.status().as_dict()["classes"]
        for cls, report in self.reports.items():
            report.final_bound_s = final[cls]["starvation_bound_s"]
        return Report(
            self.reports,
            self.bucket.refused,
            self.bucket.lowest,
            self.lowest_estimate,
            self.violations,
            duration_s,
            self.demands,
        )

    def _settle_due(self) -> None:
        due = [p for p in self.pending if p[0] <= self.clock.now()]
        self.pending = [p for p in self.pending if p[0] > self.clock.now()]
        self.rng.shuffle(due)  # responses may be applied in any order
        for _, grant, envelope in due:
            self.tm.settle(grant, envelope)

    def _ask(self, demand: Demand) -> None:
        now = self.clock.now()
        try:
            decision = self.tm.try_acquire(demand.cls, demand.cost)
        except ImpossibleRequest as exc:
            self.violations.append(f"impossible for a valid demand: {exc}")
            self.next_ask[demand.cls] = math.inf
            return
        report = self.reports[demand.cls]
        if not decision.granted:
            report.reasons.add(decision.reason)
            if self.wait_start[demand.cls] is None:
                self.wait_start[demand.cls] = now
                bound = self.tm.status().as_dict()["classes"][demand.cls]["starvation_bound_s"]
                self.wait_bound[demand.cls] = bound
            self.next_ask[demand.cls] = now + min(decision.wait_s, demand.ask_every_s)
            return
        assert decision.grant is not None
        started = self.wait_start[demand.cls]
        if started is not None:
            report.waits_s.append(now - started)
            report.bounds_s.append(self.wait_bound[demand.cls])
            self.wait_start[demand.cls] = None
        if decision.balance <= 0:
            self.violations.append(f"granted at balance {decision.balance}")
        if decision.balance - demand.cost < self.floor:
            self.violations.append(f"grant leaves {decision.balance - demand.cost} < floor")
        actual = self.rng.randint(max(1, math.ceil(demand.cost * demand.min_actual)), demand.cost)
        charged = self.bucket.charge(now, actual)
        report.grants += 1
        report.granted_tokens += demand.cost
        report.tokens += actual if charged else 0
        envelope = self.bucket.envelope(now, actual if charged else 0)
        latency = self.rng.uniform(0, self.max_latency_s)
        self.pending.append((now + latency, decision.grant, envelope))
        self.next_ask[demand.cls] = now + demand.think_s

    def _check(self) -> None:
        status = self.tm.status().as_dict()
        estimate = int(status["balance"])
        self.lowest_estimate = min(self.lowest_estimate, estimate)
        self.bucket.advance(self.clock.now())
        if estimate > self.bucket.balance:
            self.violations.append(
                f"estimate {estimate} above Keepa's true balance {self.bucket.balance}"
            )
        # While calls are in flight the estimate may count a charge twice (Keepa's newer
        # number may already include a grant we still subtract): cautious, so it may
        # dip below the floor then. Settled, it must not.
        if estimate < self.floor and not self.pending:
            self.violations.append(f"estimate {estimate} below floor {self.floor}")
        if self.bucket.balance < self.floor:
            self.violations.append(f"true balance {self.bucket.balance} below floor")
