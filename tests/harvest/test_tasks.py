"""The tasks as a caller sees them: what they are built from, what they refuse before
spending a token (failure mode: numbers sent as text), how every run ends on its own, and what they
return."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from keepa_deals.config import Settings
from keepa_deals.errors import ConfigError
from keepa_deals.harvest import RunSummary
from keepa_deals.harvest.context import HarvestContext
from keepa_deals.harvest.upserter import update_recent_deals
from keepa_deals.infra.clock import ManualClock
from keepa_deals.infra.redis_server import RedisServerProcess
from keepa_deals.keepa.deal_query import InvalidDealQuery
from keepa_deals.keepa.replies import DealPage
from keepa_deals.keepa_sim import KeepaSimulator
from keepa_deals.store import get_run
from keepa_deals.tokens.manager import STOP_CHECK_S
from tests.support.harness import KEY, START_S, HarnessFactory, accounted_asins


def test_a_number_sent_as_text_is_refused_before_a_token_is_spent(
    make_harness: HarnessFactory,
) -> None:
    h = make_harness(query={"dateRange": "1"})
    with pytest.raises(InvalidDealQuery, match="dateRange"):
        h.context()
    assert h.sim.state()["totals"]["calls"] == 0


def test_every_page_request_carries_numbers_as_numbers(
    make_harness: HarnessFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = make_harness(catalogue_size=30_000)
    sent: list[dict[str, Any]] = []
    real = h.ctx.keepa.deals

    def recording(selection: dict[str, Any]) -> DealPage:
        sent.append(dict(selection))
        return real(selection)

    monkeypatch.setattr(h.ctx.keepa, "deals", recording)
    h.upsert()
    h.backfill()
    assert len(sent) >= 3
    for selection in sent:
        for name in ("page", "sortType", "dateRange", "domainId"):
            assert type(selection[name]) is int, (name, selection[name])
        assert selection["priceTypes"] == [2]


def test_a_query_for_another_marketplace_is_refused(make_harness: HarnessFactory) -> None:
    h = make_harness(query={"domainId": 3})
    with pytest.raises(ConfigError, match="KEEPA_DOMAIN"):
        h.context()


def test_the_first_run_takes_only_the_recent_deals(make_harness: HarnessFactory) -> None:
    h = make_harness(upsert_first_lookback_s=1800, query={"singleVariation": False})
    summary = h.upsert()
    assert summary.watermark_s is not None
    created = h.conn.execute("SELECT MIN(deal_created_s) FROM pending").fetchone()[0]
    oldest_rejected = h.conn.execute("SELECT MIN(first_rejected_s) FROM rejections")
    assert created is None or created >= START_S - 1800
    assert oldest_rejected.fetchone()[0] is not None
    older = {a for a, _ in h.sim.deals_published(h.ctx.selection, START_S - 7200, START_S - 1860)}
    newer = {a for a, _ in h.sim.deals_published(h.ctx.selection, START_S - 1800, START_S)}
    seen = set().union(*accounted_asins(h.conn).values())
    assert older - newer and not (older - newer) & seen  # left to the backfiller


def test_a_run_ends_after_its_longest_duration(make_harness: HarnessFactory) -> None:
    h = make_harness(
        initial_tokens=0, threshold_upsert=1, harvest_max_run_s=10, harvest_inline_wait_s=20
    )
    h.ctx.tokens.sync()  # the first call starts Keepa's refill minute
    # Synced again off the tick: at the tick itself Keepa says refillIn 59 999 ms (it is
    # always below a minute), which would place the refill 1 ms early on a clock with
    # no latency at all.
    h.at(0.5)
    h.ctx.tokens.sync()
    h.at(45)
    summary = h.upsert()  # waits 15 s (virtual) for the refill, reads a page, and stops
    assert summary.stop_reason == "max_duration"
    assert summary.stats.tokens_discovery == 5 and h.clock.now() >= START_S + 60


def test_the_summary_is_json_and_matches_the_runs_row(make_harness: HarnessFactory) -> None:
    h = make_harness()
    summary = h.upsert()
    data = json.loads(json.dumps(summary.to_dict()))
    assert data["task"] == "upsert" and data["stop_reason"] == "done"
    assert data["stats"]["tokens_total"] == summary.stats.tokens_total > 0
    assert data["watermark_s"] == summary.watermark_s and "cursor_page" in data
    row = get_run(h.conn, summary.run_id)
    assert row is not None and row.stats == summary.stats and row.stop_reason == "done"
    assert isinstance(summary, RunSummary) and row.ended_s == summary.ended_s


def test_with_no_context_a_task_builds_one_from_the_environment_and_closes_it(
    redis_server: RedisServerProcess,
    prefix: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)  # no stray .env
    with KeepaSimulator(seed=5, clock="wall", catalogue_size=2000).start() as sim:
        env = {
            "KEEPA_API_KEY": KEY,
            "KEEPA_API_URL": sim.url,
            "REDIS_URL": redis_server.url,
            "KEEPA_REDIS_PREFIX": prefix,
            "DEALS_DB_PATH": str(tmp_path / "env.db"),
            "KEEPA_MAX_RETRIES": "0",
        }
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        summary = update_recent_deals()
        assert summary.stop_reason == "done" and summary.stats.tokens_discovery == 5
    check = sqlite3.connect(tmp_path / "env.db")
    assert check.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 1
    check.close()


def test_close_releases_what_from_settings_opened(
    redis_server: RedisServerProcess, prefix: str, tmp_path: Path
) -> None:
    settings = Settings(
        keepa_api_key=KEY,
        redis_url=redis_server.url,
        redis_prefix=prefix,
        deals_db_path=tmp_path / "own.db",
    )
    ctx = HarvestContext.from_settings(settings, clock=ManualClock(START_S))
    assert ctx.now_s() == int(START_S) and ctx.domain == 1
    ctx.close()
    with pytest.raises(sqlite3.ProgrammingError):
        ctx.conn.execute("SELECT 1")
    ctx.close()  # twice is harmless


def test_a_run_stops_at_its_next_check_when_the_worker_shuts_down(
    make_harness: HarnessFactory,
) -> None:
    """A warm shutdown (SIGTERM to the worker) reaches a run between two batches: it
    stops there for `shutdown`, what it read is committed, its grants are settled, and
    the deals it did not reach stay for the next run."""
    whole = make_harness(catalogue_size=30_000)
    uninterrupted = whole.sim.state()["totals"]["calls"]
    whole.upsert()
    uninterrupted = whole.sim.state()["totals"]["calls"] - uninterrupted
    assert uninterrupted > 3  # enough calls that a stop after two is a stop mid-run

    h = make_harness(catalogue_size=30_000)
    h.ctx.shutting_down = lambda: h.sim.state()["totals"]["calls"] >= 2
    summary = h.upsert()
    assert summary.stop_reason == "shutdown"
    calls = h.sim.state()["totals"]["calls"]
    assert 2 <= calls < uninterrupted, (calls, uninterrupted)
    assert h.ctx.tokens.status().as_dict()["grants_in_flight"] == 0
    row = get_run(h.conn, summary.run_id)
    assert row is not None and row.stop_reason == "shutdown" and row.ended_s is not None
    # Nothing lost: the next run (no shutdown now) carries on from what was committed.
    h.ctx.shutting_down = None
    assert h.upsert().stop_reason in ("done", "tokens")


def test_a_run_asked_to_shut_down_before_it_begins_spends_nothing(
    make_harness: HarnessFactory,
) -> None:
    h = make_harness()
    h.ctx.shutting_down = lambda: True
    summary = h.upsert()
    assert (summary.stop_reason, summary.stats.tokens_total) == ("shutdown", 0)
    assert h.sim.state()["totals"]["calls"] == 0


def test_a_run_waiting_for_tokens_stops_within_a_check_of_a_shutdown(
    make_harness: HarnessFactory,
) -> None:
    """Mid-wait (the refill 15 s away, within HARVEST_INLINE_WAIT_S), the worker is told
    to stop: the run ends within STOP_CHECK_S, before the tokens arrive, spending none."""
    h = make_harness(initial_tokens=0, threshold_upsert=1, harvest_inline_wait_s=20)
    h.ctx.tokens.sync()  # the first call starts Keepa's refill minute (as above)
    h.at(0.5)
    h.ctx.tokens.sync()
    h.at(45)
    start = h.clock.now()
    h.ctx.shutting_down = lambda: h.clock.now() >= start + 2
    summary = h.upsert()
    assert (summary.stop_reason, summary.stats.tokens_total) == ("shutdown", 0)
    assert 2 <= h.clock.now() - start <= 2 + STOP_CHECK_S
    assert h.ctx.tokens.status().as_dict()["grants_in_flight"] == 0
