"""`system_state`: small typed values that must survive restarts, above all the upserter's
watermark and the backfiller's cursor.

The watermark ratchets (failure modes: stalled watermark, skipping watermark): `advance_watermark`
writes `MAX(stored, proposed)` in one statement, so no caller, however late or concurrent,
can move it backwards, and a trigger refuses a backwards UPDATE from anyone else.
Call it inside the `transaction()` that stores the results justifying it: they commit
together or not at all.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from keepa_deals.store.connection import transaction
from keepa_deals.store.rows import require_int

WATERMARK = "watermark_s"
BACKFILL_PAGE = "backfill_page"
BACKFILL_PASSES = "backfill_passes"


def get_int(conn: sqlite3.Connection, key: str) -> int | None:
    row = conn.execute("SELECT int_value FROM system_state WHERE key = ?", (key,)).fetchone()
    return None if row is None or row[0] is None else int(row[0])


# A key holds an int or a text: writing one clears the other.
_SET_SQL = (
    "INSERT INTO system_state (key, int_value, text_value, updated_s) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (key) DO UPDATE SET int_value = excluded.int_value,"
    " text_value = excluded.text_value, updated_s = excluded.updated_s"
)


def set_int(conn: sqlite3.Connection, key: str, value: int, now_s: int) -> None:
    require_int("system_state", key, value, optional=False)
    conn.execute(_SET_SQL, (key, value, None, now_s))


def get_text(conn: sqlite3.Connection, key: str) -> str | None:
    row = conn.execute("SELECT text_value FROM system_state WHERE key = ?", (key,)).fetchone()
    return None if row is None or row[0] is None else str(row[0])


def set_text(conn: sqlite3.Connection, key: str, value: str, now_s: int) -> None:
    conn.execute(_SET_SQL, (key, None, value, now_s))


def updated_at(conn: sqlite3.Connection, key: str) -> int | None:
    """When `key` last changed (diagnostics: how old is the watermark?)."""
    row = conn.execute("SELECT updated_s FROM system_state WHERE key = ?", (key,)).fetchone()
    return None if row is None else int(row[0])


# --- the watermark ------------------------------------------------------------------------


def get_watermark(conn: sqlite3.Connection) -> int | None:
    """Unix seconds of the newest deal the upserter has accounted for (evaluated or put
    in `pending`); None before the first run."""
    return get_int(conn, WATERMARK)


def advance_watermark(conn: sqlite3.Connection, to_s: int, now_s: int) -> int:
    """Move the watermark forward to `to_s`; an older `to_s` changes nothing. Returns the
    watermark now stored, which is >= `to_s` and >= what was stored before."""
    require_int("watermark", "to_s", to_s, optional=False)
    row = conn.execute(
        "INSERT INTO system_state (key, int_value, text_value, updated_s) VALUES (?, ?, NULL, ?)"
        " ON CONFLICT (key) DO UPDATE SET"
        " updated_s = CASE WHEN excluded.int_value > system_state.int_value"
        "   THEN excluded.updated_s ELSE system_state.updated_s END,"
        " int_value = MAX(system_state.int_value, excluded.int_value)"
        " RETURNING int_value",
        (WATERMARK, to_s, now_s),
    ).fetchall()
    return int(row[0][0])


# --- the backfill cursor ------------------------------------------------------------------


@dataclass(frozen=True)
class BackfillCursor:
    page: int = 0  # the next page of the deal query to fetch
    # Completed passes over every page: the backfill never ends (failure mode "a backfill
    # that ends").
    passes: int = 0

    def __post_init__(self) -> None:
        if self.page < 0 or self.passes < 0:
            raise ValueError(f"cursor fields must be >= 0: {self}")

    def next_page(self) -> BackfillCursor:
        return BackfillCursor(self.page + 1, self.passes)

    def restart(self) -> BackfillCursor:
        """The results ended: start again at page 0, counting the pass."""
        return BackfillCursor(0, self.passes + 1)


def get_cursor(conn: sqlite3.Connection) -> BackfillCursor:
    return BackfillCursor(get_int(conn, BACKFILL_PAGE) or 0, get_int(conn, BACKFILL_PASSES) or 0)


def set_cursor(conn: sqlite3.Connection, cursor: BackfillCursor, now_s: int) -> None:
    with transaction(conn):
        set_int(conn, BACKFILL_PAGE, cursor.page, now_s)
        set_int(conn, BACKFILL_PASSES, cursor.passes, now_s)
