"""runs: one row per task run, with tokens by stage, counts and why it stopped."""

from __future__ import annotations

import sqlite3

from keepa_deals.store import (
    RunStats,
    close_abandoned_runs,
    finish_run,
    get_run,
    recent_runs,
    start_run,
    update_run,
)
from tests.support.store_rows import NOW_S


def test_a_run_is_started_updated_and_finished_once(conn: sqlite3.Connection) -> None:
    run_id = start_run(conn, "upsert", NOW_S)
    stats = RunStats(tokens_discovery=5, deals_seen=150)
    update_run(conn, run_id, stats)
    running = get_run(conn, run_id)
    assert running is not None and running.ended_s is None and running.deals_seen == 150

    stats.add(
        RunStats(
            tokens_peek=40,
            tokens_commit=36,
            deals_peeked=40,
            deals_committed=4,
            deals_accepted=1,
            deals_rejected=145,
            deals_deferred=4,
            deals_failed=1,
        )
    )
    assert finish_run(conn, run_id, stats, "budget", NOW_S + 90)
    done = get_run(conn, run_id)
    assert done is not None and done.stats == stats and stats.tokens_total == 81
    assert (done.ended_s, done.stop_reason, done.error) == (NOW_S + 90, "budget", None)
    assert not finish_run(conn, run_id, RunStats(), "again", NOW_S + 100)
    assert get_run(conn, run_id) == done


def test_recent_runs_and_abandoned_ones(conn: sqlite3.Connection) -> None:
    crashed = start_run(conn, "backfill", NOW_S)
    other = start_run(conn, "upsert", NOW_S + 1)
    latest = start_run(conn, "backfill", NOW_S + 2)
    assert [r.id for r in recent_runs(conn)] == [latest, other, crashed]
    assert [r.id for r in recent_runs(conn, "backfill", limit=1)] == [latest]
    finish_run(conn, latest, RunStats(), "done", NOW_S + 3, error=None)
    assert close_abandoned_runs(conn, "backfill", NOW_S + 10) == 1
    run = get_run(conn, crashed)
    assert run is not None and (run.stop_reason, run.ended_s) == ("abandoned", NOW_S + 10)
    assert get_run(conn, other) is not None and get_run(conn, 9999) is None
