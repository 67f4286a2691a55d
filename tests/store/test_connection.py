"""Connections: WAL mode, explicit transactions, and a reading dashboard that cannot make
a writer fail (failure mode: database is locked)."""

from __future__ import annotations

import os
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
from keepa_deals.store.errors import StoreError
from keepa_deals.store.state import advance_watermark
from tests.support.as_other_user import Raised, folder, other_user, run_as_other_user
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


# --- a database this user cannot write, and files that are no database -----------------


def root_owned_database(var: Path) -> Path:
    """What `sudo keepa-deals migrate` before a deploy leaves: a migrated deals.db owned
    by root, mode 0644, in the service user's own folder."""
    path = var / "deals.db"
    open_store(path, busy_timeout_s=10).close()
    path.chmod(0o644)
    return path


def write_a_watermark(path: Path) -> str:
    """Open as the service does and write; what it got as a string."""
    conn = connect(path, busy_timeout_s=10)
    try:
        with transaction(conn):
            advance_watermark(conn, NOW_S, NOW_S)
    finally:
        conn.close()
    return "written"


def cannot_write(db: Path, which: Path, owner: str, mode: str) -> Raised:
    user = other_user()
    if which == db.parent:
        problem = f"its folder {which} is owned by {owner}, mode {mode}"
        fix = f"give the folder to that user: chown {user.pw_name}: {which}"
    else:
        problem = f"{which} is owned by {owner}, mode {mode}"
        fix = f"give the database files to that user: chown {user.pw_name}: {db}*"
    return Raised(
        "DatabaseNotWritable",
        f"{db}: {user.pw_name} (uid {user.pw_uid}) cannot write the database: {problem}; {fix}",
    )


def test_a_database_the_user_cannot_write_is_refused_at_open_naming_owner_and_mode() -> None:
    """SQLite opens a file it cannot write read-only without a word: the database then
    passed every start-up check and each run failed at its first write with "attempt
    to write a readonly database"."""
    with folder() as var:
        db = root_owned_database(var)
        result = run_as_other_user(lambda: write_a_watermark(db))
        assert result == cannot_write(db, db, "root:root", "0644")


def test_a_wal_or_shm_file_the_user_cannot_write_is_refused() -> None:
    """The database is the user's, but its -wal and -shm, left while a connection is
    open, are root's (copied or restored by root: SQLite itself gives them the
    database's owner). A reader must write -shm too."""
    with folder() as var:
        db = root_owned_database(var)
        user = other_user()
        os.chown(db, user.pw_uid, user.pw_gid)
        held = connect(db, busy_timeout_s=10)  # keeps -wal and -shm in place
        try:
            held.execute("SELECT COUNT(*) FROM deals").fetchone()
            wal, shm = Path(f"{db}-wal"), Path(f"{db}-shm")
            for path in (wal, shm):
                os.chown(path, 0, 0)
                path.chmod(0o644)
            result = run_as_other_user(lambda: write_a_watermark(db))
        finally:
            held.close()
        assert result == cannot_write(db, wal, "root:root", "0644")


def test_a_folder_the_user_cannot_write_is_refused() -> None:
    """SQLite creates -wal and -shm beside the database: its folder must be writable."""
    with folder(owner="root") as var:
        db = root_owned_database(var)
        user = other_user()
        os.chown(db, user.pw_uid, user.pw_gid)
        result = run_as_other_user(lambda: write_a_watermark(db))
        assert result == cannot_write(db, var, "root:root", "0755")


def test_a_database_the_user_owns_opens_and_takes_writes() -> None:
    """The same checks as the service user in its own folder: nothing to refuse."""
    with folder() as var:
        db = var / "deals.db"
        assert run_as_other_user(lambda: open_store(db, busy_timeout_s=10).close()) is None
        assert run_as_other_user(lambda: write_a_watermark(db)) == "written"
        assert db.stat().st_uid == other_user().pw_uid


def test_a_file_that_is_no_database_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "deals.db"
    content = b"not a database, a note someone saved here\n" * 40
    path.write_bytes(content)
    before = path.stat()
    with pytest.raises(StoreError) as caught:
        open_store(path)
    assert str(caught.value) == (
        f"{path}: not a SQLite database (file is not a database); it was left untouched: "
        "restore it from a backup, or move it aside and run `keepa-deals migrate` to "
        "start an empty one"
    )
    assert path.read_bytes() == content
    assert path.stat().st_mtime_ns == before.st_mtime_ns
    assert sorted(p.name for p in tmp_path.iterdir()) == ["deals.db"]  # no -wal, no -shm


@pytest.mark.parametrize("what", ["a folder", "under a file"])
def test_a_path_that_cannot_be_opened_is_refused_naming_it(tmp_path: Path, what: str) -> None:
    if what == "a folder":
        path = tmp_path / "deals.db"
        path.mkdir()
    else:
        (tmp_path / "var").write_text("a file where the folder should be\n")
        path = tmp_path / "var" / "deals.db"
    with pytest.raises(StoreError) as caught:
        open_store(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: cannot be opened (")
    assert message.endswith(
        "): DEALS_DB_PATH must name a file in a folder that exists or can be created"
    )
