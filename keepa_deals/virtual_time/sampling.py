"""What the loop notes at every event: the simulator's counters, the backlog, and the
TokenManager's own view (its status(), read-only).

Samples are taken at each beat tick (every BACKFILL_EVERY_S at the defaults), so
anything measured from them (time in recharge, the backlog windows) has that
resolution. Token counts are exact at the sample times: they are the simulator's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from keepa_deals.store import count_pending
from keepa_deals.virtual_time.ledger import LedgerTotals
from keepa_deals.virtual_time.stack import START_S, SimulationStack


@dataclass(frozen=True)
class Sample:
    at_s: float  # offset from the start
    totals: LedgerTotals
    pending: int  # deals waiting in `pending`: the backlog
    accepted: int  # accept verdicts so far (runs)
    estimate: int | None  # the TokenManager's balance estimate (None: no state yet)
    recharge: bool


@dataclass
class Sampler:
    stack: SimulationStack
    samples: list[Sample] = field(default_factory=list)
    recharge_time_s: float = 0.0
    # The largest starvation bound status() gave per class, and the classes it ever
    # called unbounded (a wait only another class's action can end).
    bound_s: dict[str, float] = field(default_factory=dict)
    unbounded: set[str] = field(default_factory=set)
    estimate_error_max: int = 0  # |TokenManager estimate - Keepa's balance|, largest seen

    def sample(self, accepted: int) -> Sample:
        now_s = self.stack.clock.now()
        totals = self.stack.ledger.totals()
        status = self.stack.tokens.status().as_dict()
        estimate, recharge = None, False
        if status.get("state") == "ok":
            estimate = int(status["balance"])
            recharge = bool(status["recharge"]["active"])
            self._bounds(status["classes"])
            if totals.balance is not None:
                self.estimate_error_max = max(
                    self.estimate_error_max, abs(estimate - totals.balance)
                )
            self._recharge(now_s, status["recharge"])
        sample = Sample(
            at_s=now_s - START_S,
            totals=totals,
            pending=count_pending(self.stack.ctx.conn),
            accepted=accepted,
            estimate=estimate,
            recharge=recharge,
        )
        self.samples.append(sample)
        return sample

    def _recharge(self, now_s: float, recharge: dict[str, Any]) -> None:
        """Time in recharge: whole intervals that began in it, plus the part of an
        interval after an entry seen for the first time. An exit between two samples is
        counted at the later one (at most one interval too much per exit)."""
        previous = self.samples[-1] if self.samples else None
        prev_s = START_S + previous.at_s if previous is not None else now_s
        if previous is not None and previous.recharge:
            self.recharge_time_s += now_s - prev_s
        elif recharge["active"] and recharge["since"] is not None:
            self.recharge_time_s += now_s - max(float(recharge["since"]), prev_s)

    def _bounds(self, classes: dict[str, Any]) -> None:
        for name, info in classes.items():
            bound = info["starvation_bound_s"]
            if bound is None:
                self.unbounded.add(name)
                continue
            self.bound_s[name] = max(float(bound), self.bound_s.get(name, 0.0))
