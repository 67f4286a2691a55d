"""How long the daily history prune takes, and how long it makes another writer wait.

Two cases, each while a second connection writes one small transaction every
`--write-every-ms` (as the other task would) and records how long each waited:
- backlog: a year of history at the defaults (`--runs` runs, about 2.5 a minute;
  `--rejections` rejections, a fifth of them naming a run), everything but the last
  HISTORY_KEEP_S due, as at the first prune after an upgrade. The backfiller prunes for
  PRUNE_BUDGET_S per run; here the calls follow each other `--gap-ms` apart (the
  service's are a minute apart), until nothing old is left.
- day: the steady state, one day's runs (3,600) and rejections (1,000) come due.
Prints JSON.

    .venv/bin/python bench/history_prune.py [--runs 1300000] [--rejections 500000]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from _shared import machine, percentiles

from keepa_deals.store import open_store
from keepa_deals.store.history import BATCH_ROWS, PRUNE_BUDGET_S, prune_history

NOW_S = 1_798_761_600  # 2027-01-01 00:00 UTC
YEAR_S = 365 * 86_400
KEEP_S = 90 * 86_400
MEMORY_S = 14 * 86_400


def fill(conn: sqlite3.Connection, runs: int, rejections: int) -> None:
    """`runs` ended runs evenly over the last year, `rejections` over the same year."""
    step_s = YEAR_S / runs
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO runs (task, started_s, ended_s, stop_reason) VALUES (?, ?, ?, 'tokens')",
        (
            (
                "backfill" if i % 3 else "upsert",
                int(NOW_S - YEAR_S + i * step_s),
                int(NOW_S - YEAR_S + i * step_s) + 2,
            )
            for i in range(runs)
        ),
    )
    step_s = YEAR_S / rejections
    conn.executemany(
        "INSERT INTO rejections (asin, domain, price_cents, stage, reason, tokens_spent,"
        " first_rejected_s, rejected_s, run_id) VALUES (?, 1, ?, 'peek', 'no_rank_drops',"
        " 1, ?, ?, ?)",
        (
            (
                f"{i:010d}",
                1000 + i % 5000,
                int(NOW_S - YEAR_S + i * step_s),
                int(NOW_S - YEAR_S + i * step_s),
                1 + (i * runs) // rejections if i % 5 == 0 else None,
            )
            for i in range(rejections)
        ),
    )
    conn.execute("COMMIT")


def writer(path: Path, every_ms: float, stop: threading.Event, waits_ms: list[float]) -> None:
    conn = open_store(path, busy_timeout_s=60)
    try:
        while not stop.is_set():
            started = time.perf_counter()
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(
                "INSERT INTO system_state (key, int_value, updated_s) VALUES ('bench', 1, 0)"
                " ON CONFLICT (key) DO UPDATE SET int_value = int_value + 1"
            )
            conn.execute("COMMIT")
            waits_ms.append((time.perf_counter() - started) * 1000)
            stop.wait(every_ms / 1000)
    finally:
        conn.close()


def measure(path: Path, conn: sqlite3.Connection, every_ms: float, gap_s: float) -> dict[str, Any]:
    """Prune until done, calls `gap_s` apart, while a writer writes."""
    waits: list[float] = []
    stop = threading.Event()
    thread = threading.Thread(target=writer, args=(path, every_ms, stop, waits))
    thread.start()
    calls: list[float] = []
    runs = rejections = 0
    try:
        while True:
            started = time.perf_counter()
            pruned = prune_history(conn, NOW_S, KEEP_S, MEMORY_S)
            calls.append(time.perf_counter() - started)
            runs, rejections = runs + pruned.runs, rejections + pruned.rejections
            if pruned.done:
                break
            time.sleep(gap_s)
        time.sleep(0.1)
    finally:
        stop.set()
        thread.join()
    conn.execute("DELETE FROM system_state WHERE key = 'history_pruned_s'")
    return {
        "pruned": {"runs": runs, "rejections": rejections},
        "calls": len(calls),
        "longest_call_s": round(max(calls), 3),
        "total_s": round(sum(calls), 2),
        "writer_wait_ms": percentiles(waits),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1_300_000)
    parser.add_argument("--rejections", type=int, default=500_000)
    parser.add_argument("--write-every-ms", type=float, default=10.0)
    parser.add_argument("--gap-ms", type=float, default=200.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "deals.db"
        conn = open_store(path, busy_timeout_s=60)
        started = time.perf_counter()
        fill(conn, args.runs, args.rejections)
        fill_s = time.perf_counter() - started
        idle: list[float] = []
        stop = threading.Event()
        thread = threading.Thread(target=writer, args=(path, args.write_every_ms, stop, idle))
        thread.start()
        time.sleep(2)  # the writer's waits with nothing else writing
        stop.set()
        thread.join()
        backlog = measure(path, conn, args.write_every_ms, args.gap_ms / 1000)
        # A day later: one day's worth comes due.
        conn.execute("BEGIN")
        conn.execute("DELETE FROM runs")
        conn.execute("DELETE FROM rejections")
        conn.execute("COMMIT")
        fill(conn, 3_600, 1_000)
        conn.execute(
            "UPDATE runs SET started_s = ?, ended_s = ? ",
            (NOW_S - KEEP_S - 10, NOW_S - KEEP_S - 5),
        )
        conn.execute(
            "UPDATE rejections SET first_rejected_s = ?, rejected_s = ?",
            (NOW_S - KEEP_S - 10, NOW_S - KEEP_S - 10),
        )
        day = measure(path, conn, args.write_every_ms, args.gap_ms / 1000)
        conn.close()
    report: dict[str, Any] = {
        "machine": machine(),
        "rows": {"runs": args.runs, "rejections": args.rejections},
        "fill_s": round(fill_s, 1),
        "batch_rows": BATCH_ROWS,
        "budget_s": PRUNE_BUDGET_S,
        "writer_wait_ms_idle": percentiles(idle),
        "backlog": backlog,
        "day": day,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
