"""Harvest fixtures: `make_harness` (tests/support/harness.py has the harness itself)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from keepa_deals.config import DEFAULT_DEAL_QUERY, Settings
from keepa_deals.infra.clock import ManualClock
from keepa_deals.infra.redis_server import RedisServerProcess
from keepa_deals.keepa_sim import KeepaSimulator
from tests.support.harness import START_S, Harness, HarnessFactory, write_query


@pytest.fixture
def make_harness(
    redis_server: RedisServerProcess, prefix: str, tmp_path: Path
) -> Iterator[HarnessFactory]:
    """Harness(seed, catalogue_size, refill_rate, initial_tokens, deal_rate, sort_jitter,
    query=dict overrides of the deal query, **Settings fields)."""
    made: list[Harness] = []

    def factory(
        *,
        seed: int = 11,
        catalogue_size: int = 3000,
        refill_rate: int = 5,
        initial_tokens: int | None = None,
        deal_rate: float = 1.0,
        sort_jitter: float = 0.05,
        query: dict[str, Any] | None = None,
        **settings: Any,
    ) -> Harness:
        clock = ManualClock(START_S)
        sim = KeepaSimulator(
            seed=seed,
            refill_rate=refill_rate,
            clock=clock,
            initial_tokens=initial_tokens,
            catalogue_size=catalogue_size,
            deal_rate=deal_rate,
            sort_jitter=sort_jitter,
        ).start()
        n = len(made)
        query_path = DEFAULT_DEAL_QUERY if query is None else write_query(tmp_path, query)
        base = Settings(
            redis_url=redis_server.url,
            redis_prefix=f"{prefix}{n}:",
            deals_db_path=tmp_path / f"deals{n}.db",
            deal_query_path=query_path,
            db_busy_timeout_s=30,
        )
        harness = Harness(sim, clock, replace(base, **settings), redis_server.url, tmp_path)
        harness.owned.callback(sim.stop)
        made.append(harness)
        return harness

    yield factory
    for harness in made:
        harness.close()
