"""Pruning the history the service writes around the clock: `runs` (two to three rows a
minute at the defaults, about a million a year) and `rejections` (one row per ASIN and
price ruled out).

Nothing the harvest still reads is deleted:
- a run still open (`ended_s` NULL) stays, for `close_abandoned_runs`;
- a rejection younger than REJECTION_MEMORY_S still saves its tokens (triage), so
  rejections go only once older than both HISTORY_KEEP_S and that memory, and never
  while the memory is 0 (forever).
Deals, pending, quarantine and system_state are not history: they are never pruned
here.

Deletes go in batches, one transaction each, so a writer of the other task waits for a
few milliseconds at most, never for the whole prune.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from keepa_deals.store.connection import transaction
from keepa_deals.store.state import get_int, set_int

# `system_state` key: when (unix s) history was last pruned.
PRUNED_AT = "history_pruned_s"
PRUNE_EVERY_S = 86_400
BATCH_ROWS = 2_000


@dataclass(frozen=True)
class Pruned:
    runs: int = 0
    rejections: int = 0


def prune_due(conn: sqlite3.Connection, now_s: int) -> bool:
    last = get_int(conn, PRUNED_AT)
    return last is None or now_s - last >= PRUNE_EVERY_S


def prune_history(
    conn: sqlite3.Connection, now_s: int, keep_s: int, rejection_memory_s: int
) -> Pruned:
    """Delete what is older than `keep_s` (0: nothing) and record when; see the module
    docstring for what stays."""
    runs = rejections = 0
    if keep_s > 0:
        if rejection_memory_s > 0:
            rejections = _delete_in_batches(
                conn,
                "DELETE FROM rejections WHERE rowid IN (SELECT rowid FROM rejections"
                " WHERE rejected_s < ? LIMIT ?)",
                now_s - max(keep_s, rejection_memory_s),
            )
        runs = _delete_in_batches(
            conn,
            "DELETE FROM runs WHERE id IN (SELECT id FROM runs"
            " WHERE started_s < ? AND ended_s IS NOT NULL LIMIT ?)",
            now_s - keep_s,
        )
    with transaction(conn):
        set_int(conn, PRUNED_AT, now_s, now_s)
    return Pruned(runs, rejections)


def _delete_in_batches(conn: sqlite3.Connection, sql: str, before_s: int) -> int:
    deleted = 0
    while True:
        with transaction(conn):
            count = conn.execute(sql, (before_s, BATCH_ROWS)).rowcount
        deleted += count
        if count < BATCH_ROWS:
            return deleted
