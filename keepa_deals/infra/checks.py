"""The one result type of every health check: preflight, doctor and the Diagnostics.

`ok` passes, `warn` passes but asks for attention, `fail` stops a start-up (preflight)
or makes a report unhealthy (doctor, Diagnostics/run_suite.sh).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Outcome = Literal["ok", "warn", "fail"]

_LABELS: dict[Outcome, str] = {"ok": "OK  ", "warn": "WARN", "fail": "FAIL"}


@dataclass(frozen=True)
class Check:
    name: str
    outcome: Outcome
    detail: str

    @property
    def label(self) -> str:
        """The four-letter column the Diagnostics print (`OK  `, `WARN`, `FAIL`)."""
        return _LABELS[self.outcome]
