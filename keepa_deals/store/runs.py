"""`runs`: one row per task run, so progress is measured, not assumed (failure mode: green but
idle).

A run is started, updated as it goes (a crash keeps the counts so far) and finished
with the reason it stopped. Tokens are what Keepa charged (`tokensConsumed`), by stage.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, fields

from keepa_deals.store.rows import from_row, require_int


@dataclass
class RunStats:
    """Counters a task accumulates in memory and writes with update_run/finish_run."""

    tokens_discovery: int = 0  # /deal pages
    tokens_peek: int = 0  # stage 1, stale refreshes included
    tokens_commit: int = 0  # stage 2
    deals_seen: int = 0
    deals_peeked: int = 0
    deals_committed: int = 0
    deals_accepted: int = 0
    deals_rejected: int = 0
    deals_deferred: int = 0  # put in pending for lack of tokens
    deals_failed: int = 0  # errors, counted towards quarantine

    @property
    def tokens_total(self) -> int:
        return self.tokens_discovery + self.tokens_peek + self.tokens_commit

    def add(self, other: RunStats) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


@dataclass(frozen=True)
class Run:
    id: int
    task: str
    started_s: int
    ended_s: int | None  # None: still running, or it crashed
    tokens_discovery: int
    tokens_peek: int
    tokens_commit: int
    deals_seen: int
    deals_peeked: int
    deals_committed: int
    deals_accepted: int
    deals_rejected: int
    deals_deferred: int
    deals_failed: int
    stop_reason: str | None
    error: str | None

    @property
    def stats(self) -> RunStats:
        return RunStats(**{f.name: getattr(self, f.name) for f in fields(RunStats)})


_COUNTERS = tuple(f.name for f in fields(RunStats))
_SET_COUNTERS = ", ".join(f"{c} = :{c}" for c in _COUNTERS)


def _counters(stats: RunStats) -> dict[str, int]:
    values = {c: getattr(stats, c) for c in _COUNTERS}
    for name, value in values.items():
        require_int("RunStats", name, value, optional=False)
    return values


def start_run(conn: sqlite3.Connection, task: str, now_s: int) -> int:
    """A new run of `task`; returns its id."""
    row = conn.execute(
        "INSERT INTO runs (task, started_s) VALUES (?, ?) RETURNING id", (task, now_s)
    ).fetchall()
    return int(row[0][0])


def update_run(conn: sqlite3.Connection, run_id: int, stats: RunStats) -> None:
    """Write the counts so far (cheap; do it with each batch's transaction)."""
    conn.execute(
        f"UPDATE runs SET {_SET_COUNTERS} WHERE id = :id",  # noqa: S608 - RunStats fields
        {**_counters(stats), "id": run_id},
    )


def finish_run(
    conn: sqlite3.Connection,
    run_id: int,
    stats: RunStats,
    stop_reason: str,
    now_s: int,
    error: str | None = None,
) -> bool:
    """Close the run. False when it was already finished (nothing is overwritten)."""
    cur = conn.execute(
        f"UPDATE runs SET {_SET_COUNTERS}, ended_s = :now,"  # noqa: S608 - RunStats fields
        " stop_reason = :stop_reason, error = :error WHERE id = :id AND ended_s IS NULL",
        {
            **_counters(stats),
            "now": now_s,
            "stop_reason": stop_reason,
            "error": error,
            "id": run_id,
        },
    )
    return cur.rowcount == 1


def get_run(conn: sqlite3.Connection, run_id: int) -> Run | None:
    row = conn.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
    return None if row is None else from_row(Run, row)


def recent_runs(conn: sqlite3.Connection, task: str | None = None, limit: int = 20) -> list[Run]:
    rows = conn.execute(
        "SELECT * FROM runs WHERE (:task IS NULL OR task = :task)"
        " ORDER BY started_s DESC, id DESC LIMIT :limit",
        {"task": task, "limit": limit},
    ).fetchall()
    return [from_row(Run, r) for r in rows]


def close_abandoned_runs(conn: sqlite3.Connection, task: str, now_s: int) -> int:
    """Mark runs of `task` that never finished (their process died) as abandoned.
    Call it only while holding the task's lock, when no run of it can be live."""
    return conn.execute(
        "UPDATE runs SET ended_s = MAX(started_s, ?), stop_reason = 'abandoned'"
        " WHERE task = ? AND ended_s IS NULL",
        (now_s, task),
    ).rowcount
