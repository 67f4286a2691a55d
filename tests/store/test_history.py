"""Pruning `runs` and `rejections` (HISTORY_KEEP_S): old history goes, in batches, and
nothing the harvest still reads."""

from __future__ import annotations

import sqlite3

import pytest

from keepa_deals.evaluation.verdicts import Reason, Stage
from keepa_deals.store import (
    RejectionRecord,
    finish_run,
    has_rejection_at_price,
    history,
    record_rejection,
    start_run,
    transaction,
)
from keepa_deals.store.history import Pruned, prune_due, prune_history
from keepa_deals.store.runs import RunStats
from tests.support.store_rows import NOW_S

DAY_S = 86_400
KEEP_S = 30 * DAY_S
MEMORY_S = 14 * DAY_S


def add_run(conn: sqlite3.Connection, started_s: int, ended: bool = True) -> int:
    with transaction(conn):
        run_id = start_run(conn, "backfill", started_s)
        if ended:
            finish_run(conn, run_id, RunStats(), "tokens", started_s + 5)
    return run_id


def add_rejection(
    conn: sqlite3.Connection, price_cents: int, at_s: int, run_id: int | None = None
) -> None:
    with transaction(conn):
        record_rejection(
            conn,
            RejectionRecord(
                asin="000000000A",
                domain=1,
                price_cents=price_cents,
                stage=Stage.PEEK,
                reason=Reason.NO_RANK_DROPS,
                rejected_s=at_s,
                tokens_spent=1,
                run_id=run_id,
            ),
        )


def run_ids(conn: sqlite3.Connection) -> list[int]:
    return [int(r[0]) for r in conn.execute("SELECT id FROM runs ORDER BY id")]


def test_old_ended_runs_go_and_open_and_recent_ones_stay(conn: sqlite3.Connection) -> None:
    old = add_run(conn, NOW_S - KEEP_S - 10)
    still_open = add_run(conn, NOW_S - KEEP_S - 10, ended=False)  # for close_abandoned_runs
    recent = add_run(conn, NOW_S - KEEP_S + 10)
    pruned = prune_history(conn, NOW_S, KEEP_S, MEMORY_S)
    assert pruned == Pruned(runs=1, rejections=0)
    assert old not in run_ids(conn)
    assert run_ids(conn) == [still_open, recent]


def test_a_rejection_goes_once_older_than_both_the_history_and_the_memory(
    conn: sqlite3.Connection,
) -> None:
    keep_s, memory_s = 10 * DAY_S, 20 * DAY_S  # the memory is the longer one here
    add_rejection(conn, 1_000, NOW_S - memory_s - 10)
    add_rejection(conn, 2_000, NOW_S - memory_s + 10)  # still saves tokens: stays
    assert prune_history(conn, NOW_S, keep_s, memory_s).rejections == 1
    assert not has_rejection_at_price(conn, "000000000A", 1, 1_000)
    assert has_rejection_at_price(conn, "000000000A", 1, 2_000)


def test_a_rejection_naming_a_pruned_run_keeps_its_row(conn: sqlite3.Connection) -> None:
    run_id = add_run(conn, NOW_S - KEEP_S - 10)
    add_rejection(conn, 1_000, NOW_S - MEMORY_S + 10, run_id=run_id)
    assert prune_history(conn, NOW_S, KEEP_S, MEMORY_S) == Pruned(runs=1, rejections=0)
    row = conn.execute("SELECT run_id FROM rejections").fetchone()
    assert row is not None and row[0] is None  # ON DELETE SET NULL


@pytest.mark.parametrize(("keep_s", "memory_s"), [(0, MEMORY_S), (KEEP_S, 0)])
def test_zero_keeps_forever(conn: sqlite3.Connection, keep_s: int, memory_s: int) -> None:
    """HISTORY_KEEP_S=0 keeps everything; REJECTION_MEMORY_S=0 keeps every rejection
    (each one still saves its tokens)."""
    add_run(conn, NOW_S - 400 * DAY_S)
    add_rejection(conn, 1_000, NOW_S - 400 * DAY_S)
    pruned = prune_history(conn, NOW_S, keep_s, memory_s)
    assert pruned.rejections == 0
    assert pruned.runs == (0 if keep_s == 0 else 1)


def test_many_rows_go_in_batches_until_none_is_left(
    conn: sqlite3.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(history, "BATCH_ROWS", 3)
    for i in range(10):
        add_run(conn, NOW_S - KEEP_S - 100 + i)
    kept = add_run(conn, NOW_S)
    assert prune_history(conn, NOW_S, KEEP_S, MEMORY_S).runs == 10
    assert run_ids(conn) == [kept]
    assert not conn.in_transaction


def test_a_backlog_is_pruned_a_budget_at_a_time(
    conn: sqlite3.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A year of runs after an upgrade: each call deletes for at most its budget (here
    one batch), the day is not counted as pruned until nothing old is left, and the
    next calls carry on."""
    monkeypatch.setattr(history, "BATCH_ROWS", 3)
    for i in range(10):
        add_run(conn, NOW_S - KEEP_S - 100 + i)
    assert prune_history(conn, NOW_S, KEEP_S, MEMORY_S, budget_s=0) == Pruned(3, 0, False)
    assert prune_due(conn, NOW_S)  # not recorded: the next run goes on
    results = [prune_history(conn, NOW_S, KEEP_S, MEMORY_S, budget_s=0) for _ in range(3)]
    assert [r.runs for r in results] == [3, 3, 1]
    assert [r.done for r in results] == [False, False, True]
    assert run_ids(conn) == [] and not prune_due(conn, NOW_S)


def test_pruning_is_due_once_a_day(conn: sqlite3.Connection) -> None:
    assert prune_due(conn, NOW_S)
    prune_history(conn, NOW_S, KEEP_S, MEMORY_S)
    assert not prune_due(conn, NOW_S + DAY_S - 1)
    assert prune_due(conn, NOW_S + DAY_S)


def test_a_deleted_run_finds_the_rejections_naming_it_by_index(
    conn: sqlite3.Connection,
) -> None:
    """ON DELETE SET NULL looks up rejections by run_id for every deleted run: without
    the index (schema version 3) each lookup scans the whole table."""
    plan = " ".join(
        str(row[-1])
        for row in conn.execute("EXPLAIN QUERY PLAN SELECT 1 FROM rejections WHERE run_id = 1")
    )
    assert "rejections_by_run" in plan, plan
