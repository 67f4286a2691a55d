"""Connections: WAL mode, explicit transactions, and a reading dashboard that cannot make
a writer fail (failure mode: database is locked)."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest

from keepa_deals.store import (
    DealStatus,
    connect,
    connect_readonly,
    count_by_status,
    get_deal,
    get_watermark,
    open_store,
    transaction,
    upsert_deal,
)
from keepa_deals.store.state import advance_watermark
from tests.support.store_rows import NOW_S, accepted_row


def test_connections_use_wal_foreign_keys_and_a_long_busy_timeout(
    conn: sqlite3.Connection,
) -> None:
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 10_000
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    assert conn.isolation_level is None and not conn.in_transaction


def test_the_database_folder_is_created(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "deals.db"
    connect(path).close()
    assert path.is_file()


def test_a_transaction_commits_or_rolls_back_as_a_whole(conn: sqlite3.Connection) -> None:
    with pytest.raises(RuntimeError), transaction(conn):
        upsert_deal(conn, accepted_row("0000000001"))
        advance_watermark(conn, NOW_S, NOW_S)
        raise RuntimeError("crash mid-batch")
    assert get_deal(conn, "0000000001", 1) is None and get_watermark(conn) is None
    assert not conn.in_transaction
    with transaction(conn):
        upsert_deal(conn, accepted_row("0000000001"))
        advance_watermark(conn, NOW_S, NOW_S)
    assert get_deal(conn, "0000000001", 1) is not None and get_watermark(conn) == NOW_S


def test_a_nested_transaction_is_a_savepoint(conn: sqlite3.Connection) -> None:
    with transaction(conn):
        upsert_deal(conn, accepted_row("0000000001"))
        with pytest.raises(ValueError), transaction(conn):
            upsert_deal(conn, accepted_row("0000000002"))
            raise ValueError("inner failure")
        assert conn.in_transaction  # the outer transaction goes on
    assert get_deal(conn, "0000000001", 1) is not None
    assert get_deal(conn, "0000000002", 1) is None

    with pytest.raises(ValueError), transaction(conn):
        with transaction(conn):
            upsert_deal(conn, accepted_row("0000000003"))
        raise ValueError("outer failure undoes the released savepoint too")
    assert get_deal(conn, "0000000003", 1) is None


def test_a_long_read_transaction_does_not_make_writes_fail(
    conn: sqlite3.Connection, db_path: Path
) -> None:
    """A dashboard opens a read transaction and keeps it; the writer carries on."""
    upsert_deal(conn, accepted_row("0000000000"))
    for reader in (connect(db_path, busy_timeout_s=10), connect_readonly(db_path)):
        reader.execute("BEGIN")
        before = reader.execute("SELECT COUNT(*) FROM deals").fetchone()[0]
        started = time.monotonic()
        for n in range(1, 51):
            with transaction(conn):
                upsert_deal(conn, accepted_row(f"{n:010d}"))
                advance_watermark(conn, NOW_S + n, NOW_S)
        # No write waited on the reader: 50 commits, each far below any busy timeout.
        assert time.monotonic() - started < 5
        # The reader still sees its snapshot; once it ends, it sees every write.
        assert reader.execute("SELECT COUNT(*) FROM deals").fetchone()[0] == before
        reader.execute("COMMIT")
        assert reader.execute("SELECT COUNT(*) FROM deals").fetchone()[0] == 51
        reader.close()
    assert count_by_status(conn)[DealStatus.ACCEPTED] == 51 and get_watermark(conn) == NOW_S + 50


def test_a_second_writer_waits_for_the_first_instead_of_failing(db_path: Path) -> None:
    open_store(db_path).close()
    holding = threading.Event()

    def hold_the_write_lock() -> None:
        first = connect(db_path, busy_timeout_s=10)
        with transaction(first):
            upsert_deal(first, accepted_row("0000000001"))
            holding.set()
            time.sleep(0.5)
        first.close()

    thread = threading.Thread(target=hold_the_write_lock)
    thread.start()
    assert holding.wait(5)
    second = connect(db_path, busy_timeout_s=10)
    with transaction(second):  # waits out the first writer's 0.5 s
        upsert_deal(second, accepted_row("0000000002"))
    thread.join()
    assert count_by_status(second)[DealStatus.ACCEPTED] == 2

    # The same contention with SQLite's habit of giving up quickly fails: the timeout is
    # what keeps the second writer alive.
    impatient = connect(db_path, busy_timeout_s=0.05)
    holding.clear()
    thread = threading.Thread(target=hold_the_write_lock)
    thread.start()
    assert holding.wait(5)
    with pytest.raises(sqlite3.OperationalError, match="locked"), transaction(impatient):
        pass
    thread.join()
    second.close()
    impatient.close()


def test_a_readonly_connection_cannot_write(conn: sqlite3.Connection, db_path: Path) -> None:
    reader = connect_readonly(db_path)
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        reader.execute("DELETE FROM deals")
    reader.close()


class _LockedAtFirst:
    """A connection whose journal-mode pragma answers "database is locked" `times` times:
    what SQLite does, busy handler or not, while another connection closes the WAL."""

    def __init__(self, times: int) -> None:
        self.left = times
        self.calls = 0

    def execute(self, sql: str) -> sqlite3.Cursor:
        self.calls += 1
        if self.left:
            self.left -= 1
            raise sqlite3.OperationalError("database is locked")
        return sqlite3.connect(":memory:").execute("SELECT 'wal'")


def test_a_locked_journal_mode_switch_is_retried_within_the_busy_timeout() -> None:
    from keepa_deals.store.connection import _enter_wal

    fake = _LockedAtFirst(times=3)
    assert _enter_wal(fake, deadline_s=time.monotonic() + 5) == "wal"  # type: ignore[arg-type]
    assert fake.calls == 4


def test_a_journal_mode_switch_locked_past_the_busy_timeout_is_reported() -> None:
    from keepa_deals.store.connection import _enter_wal

    fake = _LockedAtFirst(times=10**6)
    started = time.monotonic()
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        _enter_wal(fake, deadline_s=started + 0.2)  # type: ignore[arg-type]
    assert time.monotonic() - started < 1.0
