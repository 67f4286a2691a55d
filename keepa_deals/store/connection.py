"""SQLite connections that a reading dashboard cannot break, and explicit transactions.

Failure mode "database is locked": SQLite's default 5 s busy timeout, under a dashboard reading the
database, kills a writer for good. Here:

- WAL mode: readers never block the writer and the writer never blocks readers, so a
  dashboard holding a long read transaction costs nothing but a growing WAL file.
- A long busy timeout, for the one remaining wait: two writers.
- Writers take the write lock up front (`BEGIN IMMEDIATE`). A deferred transaction that
  reads first and writes later can hit SQLITE_BUSY with no wait at all when another
  writer committed in between; an immediate one waits its turn under the timeout.
- `isolation_level=None`: Python's sqlite3 never opens or commits a transaction
  behind our back; `transaction()` is the only place that does.
"""

from __future__ import annotations

import itertools
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from keepa_deals.infra.file_access import current_user, current_user_name, may, owner_and_mode
from keepa_deals.store.errors import StoreError

DEFAULT_BUSY_TIMEOUT_S = 60.0
MEMORY = ":memory:"
_savepoints = itertools.count(1)


def connect(
    path: str | os.PathLike[str], *, busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S
) -> sqlite3.Connection:
    """A read-write connection in WAL mode. Creates the file (and its folder) if needed.

    Connections are not shared between threads (sqlite3's default check stays on):
    open one per thread or task.
    """
    in_memory = str(path) == MEMORY
    if not in_memory:
        try:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"{path}: cannot be opened ({exc}): {_NAME_A_FILE}") from exc
        check_writable(path)
    try:
        conn = sqlite3.connect(path, timeout=busy_timeout_s, isolation_level=None)
    except sqlite3.Error as exc:
        known = _open_error(path, exc)
        if known is None:
            raise
        raise known from exc
    try:
        conn.row_factory = sqlite3.Row
        # The busy timeout first: switching to WAL may itself wait for a lock.
        conn.execute(f"PRAGMA busy_timeout = {round(busy_timeout_s * 1000)}")
        conn.execute("PRAGMA foreign_keys = ON")
        mode = _enter_wal(conn, deadline_s=time.monotonic() + busy_timeout_s)
        if not in_memory and str(mode).lower() != "wal":
            raise StoreError(
                f"{path}: SQLite refused WAL mode (journal_mode={mode}); network file "
                "systems cannot do WAL: put DEALS_DB_PATH on a local disk"
            )
        # In WAL mode NORMAL is safe: a power cut may lose the last commits, never
        # corrupt, and a lost commit loses its watermark together with its results.
        conn.execute("PRAGMA synchronous = NORMAL")
    except BaseException as exc:
        conn.close()
        known = _open_error(path, exc) if isinstance(exc, sqlite3.Error) else None
        if known is not None:
            raise known from exc
        raise
    return conn


_NAME_A_FILE = "DEALS_DB_PATH must name a file in a folder that exists or can be created"


def _open_error(path: str | os.PathLike[str], exc: sqlite3.Error) -> StoreError | None:
    """The one line an operator needs for a file SQLite cannot use, or None when the
    error is not about the file (a lock, for one, stays what it is). Nothing here
    writes: a file that is no database is left exactly as it was."""
    name = getattr(exc, "sqlite_errorname", "")
    if name == "SQLITE_NOTADB":
        return StoreError(
            f"{path}: not a SQLite database ({exc}); it was left untouched: restore it "
            "from a backup, or move it aside and run `keepa-deals migrate` to start an "
            "empty one"
        )
    if name == "SQLITE_CORRUPT":
        return StoreError(
            f"{path}: the database is damaged ({exc}); it was left untouched: restore it "
            f"from a backup, or save what is left with `sqlite3 {path} .recover`"
        )
    if name == "SQLITE_CANTOPEN":
        return StoreError(f"{path}: cannot be opened ({exc}): {_NAME_A_FILE}")
    return None


class DatabaseNotWritable(StoreError):
    """This user may not write the database, its -wal or -shm, or their folder."""

    def __init__(self, message: str, blocking: Path | None = None) -> None:
        super().__init__(message)
        self.blocking = blocking  # the first file or folder this user may not write


def first_unwritable(path: str | os.PathLike[str]) -> Path | None:
    """The first file or folder that keeps this process from writing the database at
    `path`, or None when nothing does.

    SQLite opens a file it may not write read-only without a word, and a run then
    fails at its first write ("attempt to write a readonly database"); with a -shm it
    may not write, even reads fail. So the file, its -wal and -shm (when they exist)
    and their folder (where SQLite creates them) are checked up front."""
    db = Path(path)
    folder = db.parent
    if not may(folder, os.X_OK):
        return folder
    for file in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
        if file.exists() and not may(file, os.R_OK | os.W_OK):
            return file
    if not may(folder, os.W_OK | os.X_OK):
        return folder
    return None


def write_problem(path: str | os.PathLike[str]) -> str | None:
    """What keeps this process from writing the database, with its owner and mode."""
    blocking = first_unwritable(path)
    if blocking is None:
        return None
    what = f"its folder {blocking}" if blocking == Path(path).parent else str(blocking)
    return f"{what} is {owner_and_mode(blocking)}"


def check_writable(path: str | os.PathLike[str]) -> None:
    """Raise DatabaseNotWritable naming the file, its owner and mode, and the fix."""
    blocking = first_unwritable(path)
    if blocking is None:
        return
    user = current_user_name()
    fix = (
        f"give the folder to that user: chown {user}: {blocking}"
        if blocking == Path(path).parent
        else f"give the database files to that user: chown {user}: {path}*"
    )
    raise DatabaseNotWritable(
        f"{path}: {current_user()} cannot write the database: {write_problem(path)}; {fix}",
        blocking,
    )


def _enter_wal(conn: sqlite3.Connection, *, deadline_s: float) -> str:
    """Switch to WAL (a no-op when the file is already WAL) and return the mode in force.

    SQLite does not always run the busy handler for the locks that a journal-mode
    change takes: a connection opening while the last other one closes (and so
    checkpoints and removes the WAL file) can get "database is locked" at once, busy
    timeout or not. That wait is short, so it is retried here until the busy timeout
    would have run out, and only then reported.
    """
    delay_s = 0.001
    while True:
        try:
            mode = str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower()
            if mode == "wal":
                return mode
            return str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]).lower()
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            if time.monotonic() + delay_s > deadline_s:
                raise
        time.sleep(delay_s)
        delay_s = min(delay_s * 2, 0.1)


def connect_readonly(
    path: str | os.PathLike[str], *, busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S
) -> sqlite3.Connection:
    """A connection that cannot write: what a dashboard or a diagnostic should use."""
    uri = Path(path).resolve().as_uri() + "?mode=ro"
    conn = sqlite3.connect(uri, uri=True, timeout=busy_timeout_s, isolation_level=None)
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {round(busy_timeout_s * 1000)}")
    return conn


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """All or nothing: commit on success, roll back on any exception.

    The outermost call is a `BEGIN IMMEDIATE` transaction. A call inside another one is
    a savepoint, so the store's functions can be atomic alone and still join the
    caller's transaction (results and the watermark that they justify commit together).
    Do not start writes inside a plain `BEGIN` you opened yourself: that read
    transaction cannot always be upgraded to a write one.
    """
    if conn.in_transaction:
        name = f"sp{next(_savepoints)}"
        conn.execute(f"SAVEPOINT {name}")
        try:
            yield conn
        except BaseException:
            conn.execute(f"ROLLBACK TO {name}")
            conn.execute(f"RELEASE {name}")
            raise
        conn.execute(f"RELEASE {name}")
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        _rollback_if_open(conn)
        raise


def _rollback_if_open(conn: sqlite3.Connection) -> None:
    # A failed COMMIT may already have ended the transaction; ROLLBACK would then fail
    # and hide the original error.
    if conn.in_transaction:
        conn.execute("ROLLBACK")
