"""system_state: typed values, a watermark that only ratchets forward (failure modes: stalled
watermark, skipping watermark), and the backfill cursor (failure mode: a backfill that ends)."""

from __future__ import annotations

import random
import sqlite3
import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keepa_deals.store import (
    BackfillCursor,
    advance_watermark,
    connect,
    get_cursor,
    get_int,
    get_text,
    get_watermark,
    migrate,
    open_store,
    set_cursor,
    set_int,
    set_text,
    transaction,
    updated_at,
)
from tests.support.store_rows import NOW_S


def test_values_are_typed(conn: sqlite3.Connection) -> None:
    assert get_int(conn, "k") is None and get_text(conn, "k") is None
    set_int(conn, "k", 42, NOW_S)
    assert (get_int(conn, "k"), get_text(conn, "k")) == (42, None)
    set_text(conn, "k", "query-v2", NOW_S + 1)
    assert (get_int(conn, "k"), get_text(conn, "k")) == (None, "query-v2")
    assert updated_at(conn, "k") == NOW_S + 1
    with pytest.raises(TypeError):
        set_int(conn, "k", "42", NOW_S)  # type: ignore[arg-type]


def test_the_watermark_never_moves_backwards(conn: sqlite3.Connection) -> None:
    assert get_watermark(conn) is None
    assert advance_watermark(conn, NOW_S, NOW_S) == NOW_S
    assert advance_watermark(conn, NOW_S - 3600, NOW_S + 10) == NOW_S
    assert advance_watermark(conn, NOW_S, NOW_S + 20) == NOW_S  # the same: unchanged
    assert updated_at(conn, "watermark_s") == NOW_S  # an ignored proposal is no update
    assert advance_watermark(conn, NOW_S + 60, NOW_S + 30) == NOW_S + 60
    assert get_watermark(conn) == NOW_S + 60 and updated_at(conn, "watermark_s") == NOW_S + 30


def test_other_writers_cannot_move_it_backwards_either(conn: sqlite3.Connection) -> None:
    advance_watermark(conn, NOW_S, NOW_S)
    with pytest.raises(sqlite3.IntegrityError, match="never moves backwards"):
        conn.execute("UPDATE system_state SET int_value = 0 WHERE key = 'watermark_s'")
    with pytest.raises(sqlite3.IntegrityError, match="never moves backwards"):
        set_int(conn, "watermark_s", NOW_S - 1, NOW_S)
    assert get_watermark(conn) == NOW_S


def test_the_watermark_commits_with_the_results_or_not_at_all(conn: sqlite3.Connection) -> None:
    advance_watermark(conn, NOW_S, NOW_S)
    with pytest.raises(RuntimeError), transaction(conn):
        advance_watermark(conn, NOW_S + 600, NOW_S)
        raise RuntimeError("the batch failed before its results were stored")
    assert get_watermark(conn) == NOW_S


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=10**10), min_size=1, max_size=30))
def test_the_watermark_is_the_running_maximum(proposals: list[int]) -> None:
    conn = connect(":memory:")
    migrate(conn)
    seen: list[int] = []
    for n, proposal in enumerate(proposals):
        seen.append(advance_watermark(conn, proposal, n))
    assert seen == [max(proposals[: k + 1]) for k in range(len(proposals))]
    conn.close()


def test_concurrent_writers_leave_the_maximum_and_never_go_back(db_path: Path) -> None:
    open_store(db_path).close()
    proposals = list(range(NOW_S, NOW_S + 400))
    random.Random(7).shuffle(proposals)
    observed: list[list[int]] = []

    def writer(share: list[int]) -> None:
        conn = connect(db_path, busy_timeout_s=30)
        mine: list[int] = []
        for value in share:
            with transaction(conn):
                mine.append(advance_watermark(conn, value, NOW_S))
        observed.append(mine)
        conn.close()

    threads = [threading.Thread(target=writer, args=(proposals[k::4],)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    conn = connect(db_path)
    assert get_watermark(conn) == max(proposals)
    for mine in observed:  # what each writer read back never decreased
        assert mine == sorted(mine)
    conn.close()


def test_the_cursor_starts_at_page_0_and_restarts_after_the_end(conn: sqlite3.Connection) -> None:
    assert get_cursor(conn) == BackfillCursor(0, 0)
    cursor = BackfillCursor(0, 0).next_page().next_page()
    set_cursor(conn, cursor, NOW_S)
    assert get_cursor(conn) == BackfillCursor(2, 0)
    set_cursor(conn, get_cursor(conn).restart(), NOW_S)
    assert get_cursor(conn) == BackfillCursor(0, 1)
    with pytest.raises(ValueError):
        BackfillCursor(-1, 0)


def test_a_cursor_set_in_a_failed_batch_is_not_saved(conn: sqlite3.Connection) -> None:
    set_cursor(conn, BackfillCursor(5, 0), NOW_S)
    with pytest.raises(RuntimeError), transaction(conn):
        set_cursor(conn, BackfillCursor(6, 0), NOW_S)
        raise RuntimeError("batch failed")
    assert get_cursor(conn) == BackfillCursor(5, 0)
