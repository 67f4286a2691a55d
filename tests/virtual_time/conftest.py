"""Simulation fixtures. Every simulation here uses the session's private redis-server
(`--redis-url`), under a one-off key prefix that is deleted afterwards, so no test
starts a server of its own. Time is virtual: nothing here sleeps."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from keepa_deals.infra.redis_server import RedisServerProcess
from keepa_deals.virtual_time import SimulationOptions, run_simulation

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
# Fees at zero: nearly every deal is worth a commit, so a small catalogue makes a
# backlog at 5 tokens/min (the scenarios use the same settings).
FEE_FREE = {
    "MIN_PROFIT_CENTS": "0",
    "MIN_ROI_PERCENT": "0",
    "FBA_FEE_CENTS": "0",
    "CLOSING_FEE_CENTS": "0",
    "BUY_SHIPPING_CENTS": "0",
    "REFERRAL_FEE_PERCENT": "0",
}

Simulate = Callable[..., dict[str, Any]]


@pytest.fixture
def simulate(redis_server: RedisServerProcess) -> Simulate:
    """run_simulation(SimulationOptions(**options)) against the session's Redis."""

    def run(**options: Any) -> dict[str, Any]:
        report = run_simulation(SimulationOptions(redis_url=redis_server.url, **options))
        json.dumps(report)  # the report is JSON as it stands
        return report

    return run
