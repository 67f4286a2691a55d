"""The dashboard's one way into the deals database: read-only, one connection a request.

A read-only connection cannot take the write lock, so the dashboard can never make a
writer wait (WAL: readers and the writer do not block each other); a connection per
request keeps every read transaction short, so the WAL can always be checkpointed.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from keepa_deals.config import Settings
from keepa_deals.store import connect_readonly

# A reader waits for nothing but a checkpoint's brief lock; a page should fail fast
# rather than hang on a broken disk.
READ_BUSY_TIMEOUT_S = 5.0


class DatabaseMissing(Exception):
    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(
            f"the deals database {path} does not exist yet: start the service "
            "(`keepa-deals run`) or create it with `keepa-deals migrate`"
        )


@contextmanager
def reading(settings: Settings) -> Iterator[sqlite3.Connection]:
    path = settings.deals_db_path
    if not path.exists():
        raise DatabaseMissing(str(path))
    conn = connect_readonly(path, busy_timeout_s=READ_BUSY_TIMEOUT_S)
    try:
        yield conn
    finally:
        conn.close()


def has_table(conn: sqlite3.Connection, name: str) -> bool:
    row = conn.execute(
        "SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?", (name,)
    ).fetchone()
    return row is not None
