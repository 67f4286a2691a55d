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

Deletes go in batches of one transaction each, for at most PRUNE_BUDGET_S per call.
SQLite's write lock has no queue: a writer of the other task that finds it taken
retries on its busy timeout's schedule (up to 100 ms apart) and keeps losing to batches
that follow each other at once. So the time a prune holds the database is bounded, not
merely cut up. A day's history (about 3,600 runs) takes a few batches; a backlog (the
first prune after an upgrade, a year of runs) carries on at the next runs, and the day
counts as pruned only once nothing old is left (bench/history_prune.py measures both).
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass

from keepa_deals.store.connection import transaction
from keepa_deals.store.state import get_int, set_int

# `system_state` key: when (unix s) history was last pruned.
PRUNED_AT = "history_pruned_s"
PRUNE_EVERY_S = 86_400
BATCH_ROWS = 2_000
# Wall seconds of deleting per call: the longest another writer can be kept waiting.
PRUNE_BUDGET_S = 0.2


@dataclass(frozen=True)
class Pruned:
    runs: int = 0
    rejections: int = 0
    done: bool = True  # False: the budget ran out with old rows left; the next call goes on


def prune_due(conn: sqlite3.Connection, now_s: int) -> bool:
    last = get_int(conn, PRUNED_AT)
    return last is None or now_s - last >= PRUNE_EVERY_S


def prune_history(
    conn: sqlite3.Connection,
    now_s: int,
    keep_s: int,
    rejection_memory_s: int,
    budget_s: float = PRUNE_BUDGET_S,
) -> Pruned:
    """Delete what is older than `keep_s` (0: nothing), for at most `budget_s`; once
    nothing old is left, record when (see the module docstring for what stays)."""
    deadline = time.monotonic() + budget_s
    runs = rejections = 0
    done = True
    if keep_s > 0:
        if rejection_memory_s > 0:
            rejections, done = _delete_in_batches(
                conn,
                "DELETE FROM rejections WHERE rowid IN (SELECT rowid FROM rejections"
                " WHERE rejected_s < ? LIMIT ?)",
                now_s - max(keep_s, rejection_memory_s),
                deadline,
            )
        if done:
            runs, done = _delete_in_batches(
                conn,
                "DELETE FROM runs WHERE id IN (SELECT id FROM runs"
                " WHERE started_s < ? AND ended_s IS NOT NULL LIMIT ?)",
                now_s - keep_s,
                deadline,
            )
    if done:
        with transaction(conn):
            set_int(conn, PRUNED_AT, now_s, now_s)
    return Pruned(runs, rejections, done)


def _delete_in_batches(
    conn: sqlite3.Connection, sql: str, before_s: int, deadline: float
) -> tuple[int, bool]:
    """(rows deleted, whether none is left)."""
    deleted = 0
    while True:
        with transaction(conn):
            count = conn.execute(sql, (before_s, BATCH_ROWS)).rowcount
        deleted += count
        if count < BATCH_ROWS:
            return deleted, True
        if time.monotonic() >= deadline:
            return deleted, False
