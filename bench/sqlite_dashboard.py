"""SQLite: latency of the obvious dashboard queries while both tasks write.

    python bench/sqlite_dashboard.py [--deals 50000] [--rejections 200000]
                                     [--seconds 20] [--write-rate R ...] [--dir DIR]
                                     [--seed 1] [--json]

1. Builds a database with the store's own API (`open_store`, `transaction`,
   `upsert_deal`, `record_rejection`, `add_pending`, `start_run`/`finish_run`):
   `--deals` rows in `deals` (40 % accepted, 35 % rejected, 20 % expired, 5 %
   candidate; first seen over the last 365 days), `--rejections` rows in `rejections`
   (over the last 14 days, REJECTION_MEMORY_S), 20 000 finished `runs`, 500 `pending`.
   No ANALYZE, as in production.
2. Phase `idle`: one dashboard (this process, a `connect_readonly` connection) runs the
   queries below round-robin for `--seconds`, nothing writing.
3. Phase `writing`: the same, while two writer processes (`upsert` and `backfill`,
   each with its own `open_store` connection and the production busy timeout, 60 s)
   run the shape of a commit batch in one `transaction()` each: 5 deals of a new page
   into `pending`, take 10 pending deals, upsert 3 deal rows (an existing row
   re-evaluated as accepted, a new accepted row, a new candidate) and reject 7, record
   15 stage-0 rejections, remove the 10 from `pending`, advance the watermark
   (`upsert`) or the backfill cursor (`backfill`), update the run's counters.
   `--write-rate` is transactions/s per writer (paced, open loop); 0 runs them back to
   back. The default runs 1/s (already far above production: a few transactions a
   minute), 10/s and back to back, one phase each.

Latency is one query as the dashboard sees it (execute + fetchall, `perf_counter`), and
one writer transaction from `BEGIN IMMEDIATE` (waiting for the write lock included) to
`COMMIT`. Every `sqlite3.OperationalError` is counted by message; "database is locked"
would be the failure the store's design rules out (failure mode: database is locked); the exit
status is 1 if one occurred. The WAL file's size is sampled after each round of queries (its peak is
reported; each phase starts from a truncated WAL).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import random
import shutil
import sqlite3
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from _shared import machine, percentiles

from keepa_deals.store import (
    DealRow,
    DealStatus,
    PendingDeal,
    RejectionRecord,
    RunStats,
    Source,
    add_pending,
    advance_watermark,
    connect_readonly,
    finish_run,
    open_store,
    record_rejection,
    remove_pending,
    set_int,
    start_run,
    take_pending,
    transaction,
    update_run,
    upsert_deal,
)

DOMAIN = 1
BUSY_TIMEOUT_S = 60.0  # Settings.db_busy_timeout_s
DAY_S = 86_400
STATUSES = (
    (DealStatus.ACCEPTED, 0.40),
    (DealStatus.REJECTED, 0.35),
    (DealStatus.EXPIRED, 0.20),
    (DealStatus.CANDIDATE, 0.05),
)
REASONS = ("profit_too_low", "drop_too_small", "roi_too_low", "no_rank_drops", "price_above_max")
STAGES = ("free", "free", "free", "peek", "commit")
RUNS = 20_000
PENDING = 500
TITLE = "A Used Book With A Realistically Long Title, Second Edition (Paperback) "

# The dashboard's queries (docs/schema.md). `?` parameters are filled per call.
QUERIES: dict[str, str] = {
    "top_profit": (
        "SELECT title, buy_price_cents / 100.0 AS buy, sell_price_cents / 100.0 AS sell,"
        " profit_cents / 100.0 AS profit, roi_percent, sales_rank, amazon_url"
        " FROM dashboard_deals ORDER BY profit_cents DESC LIMIT 50"
    ),
    "top_roi": (
        "SELECT * FROM dashboard_deals WHERE profit_cents >= 500 ORDER BY roi_percent DESC LIMIT 50"
    ),
    "recent": "SELECT * FROM dashboard_deals ORDER BY first_seen_s DESC LIMIT 50",
    # The docs' "found in the last 24 hours" (no LIMIT: grows with the accepted rows).
    "recent_24h": (
        "SELECT * FROM dashboard_deals WHERE first_seen_s >= ? ORDER BY first_seen_s DESC"
    ),
    "counts_by_status": "SELECT status, COUNT(*) FROM deals GROUP BY status",
    "asin_lookup": "SELECT * FROM dashboard_deals WHERE asin = ? AND domain = 1",
    # Not in the list of issue 6; the docs' "why deals are rejected", over the last day.
    "rejections_24h_by_reason": (
        "SELECT stage, reason, COUNT(*), SUM(tokens_spent) FROM rejections"
        " WHERE rejected_s >= ? GROUP BY stage, reason"
    ),
}


def asin(n: int) -> str:
    digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    out = ""
    for _ in range(9):
        n, d = divmod(n, 36)
        out = digits[d] + out
    return "B" + out


def deal_row(rng: random.Random, n: int, status: DealStatus, seen_s: int) -> DealRow:
    """A deal row as the tasks write it: full figures unless still a candidate."""
    base = DealRow(
        asin=asin(n),
        domain=DOMAIN,
        status=status,
        source=Source.UPSERT if rng.random() < 0.6 else Source.BACKFILL,
        first_seen_s=seen_s,
        last_seen_s=seen_s + rng.randrange(0, 3 * DAY_S),
        title=TITLE + str(n),
        root_category_id=283155,
        category=rng.choice(("Textbooks", "Literature & Fiction", "Medical Books")),
        avg90_price_cents=rng.randrange(1_500, 12_000),
        sales_rank=rng.randrange(1_000, 2_000_000),
        rank_drops_90=rng.randrange(1, 60),
        percent_drop=rng.randrange(20, 80),
        deal_created_s=seen_s - rng.randrange(0, 3600),
        keepa_last_update_s=seen_s - rng.randrange(0, 600),
        last_evaluated_s=seen_s,
    )
    if status is DealStatus.CANDIDATE:
        return base
    buy = rng.randrange(400, 6_000)
    sell = buy + rng.randrange(500, 8_000)
    referral = (sell * 1500 + 5000) // 10_000
    fees = referral + 180 + 350
    profit = sell - buy - fees
    return replace(
        base,
        status_reason=None if status is DealStatus.ACCEPTED else "profit_too_low",
        buy_price_cents=buy,
        sell_price_cents=sell,
        referral_fee_cents=referral,
        closing_fee_cents=180,
        fba_fee_cents=350,
        fees_cents=fees,
        profit_cents=profit,
        roi_percent=(profit * 10_000 // buy) / 100,
    )


def rejection(rng: random.Random, n: int, when_s: int, run_id: int | None) -> RejectionRecord:
    stage = rng.choice(STAGES)
    return RejectionRecord(
        asin=asin(n),
        domain=DOMAIN,
        price_cents=rng.randrange(300, 10_000),
        stage=stage,
        reason=rng.choice(REASONS),
        rejected_s=when_s,
        detail="profit 120c < 300c",
        tokens_spent={"free": 0, "peek": 1, "commit": 11}[stage],
        run_id=run_id,
    )


def pending_deal(rng: random.Random, n: int, now_s: int, source: Source) -> PendingDeal:
    created = now_s - rng.randrange(0, 3600)
    record = {"asin": asin(n), "current": [-1, -1, rng.randrange(300, 10_000), 50_000]}
    return PendingDeal(
        asin=asin(n),
        domain=DOMAIN,
        deal_created_s=created,
        keepa_last_update_s=created,
        price_cents=rng.randrange(300, 10_000),
        source=source,
        deal_json=json.dumps(record),
        added_s=now_s,
        updated_s=now_s,
    )


def populate(path: Path, deals: int, rejections: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    now_s = int(time.time())
    started = time.perf_counter()
    conn = open_store(path, busy_timeout_s=BUSY_TIMEOUT_S)
    try:
        run_ids: list[int] = []
        with transaction(conn):
            for i in range(RUNS):
                task = "backfill" if i % 16 else "upsert"
                at = now_s - 30 * DAY_S + i * (30 * DAY_S // RUNS)
                run_id = start_run(conn, task, at)
                stats = RunStats(tokens_discovery=5, deals_seen=rng.randrange(0, 150))
                finish_run(conn, run_id, stats, "done", at + rng.randrange(1, 60))
                run_ids.append(run_id)
        cumulative = 0.0
        bounds: list[tuple[float, DealStatus]] = []
        for status, share in STATUSES:
            cumulative += share
            bounds.append((cumulative, status))
        for start in range(0, deals, 1000):
            with transaction(conn):
                for n in range(start, min(deals, start + 1000)):
                    pick = rng.random()
                    status = next((s for b, s in bounds if pick < b), DealStatus.CANDIDATE)
                    seen_s = now_s - rng.randrange(0, 365 * DAY_S)
                    upsert_deal(conn, deal_row(rng, n, status, seen_s))
        for start in range(0, rejections, 5000):
            with transaction(conn):
                for _ in range(start, min(rejections, start + 5000)):
                    when = now_s - rng.randrange(0, 14 * DAY_S)
                    n = rng.randrange(10_000_000, 20_000_000)
                    record_rejection(conn, rejection(rng, n, when, rng.choice(run_ids)))
        with transaction(conn):
            add_pending(
                conn,
                [pending_deal(rng, 30_000_000 + i, now_s, Source.UPSERT) for i in range(PENDING)],
            )
            advance_watermark(conn, now_s - 60, now_s)
        counts = {
            table: int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
            for table in ("deals", "dashboard_deals", "rejections", "runs", "pending")
        }
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return {
        "rows": counts,
        "file_mb": round(path.stat().st_size / 1e6, 1),
        "build_s": round(time.perf_counter() - started, 1),
    }


# --- the writers ---------------------------------------------------------------------------


def writer(
    path: str,
    task: str,
    deals: int,
    seed: int,
    rate: float,
    seconds: float,
    go: Any,
    out: Any,
) -> None:
    """One task's writes: a commit batch per transaction (see the module doc)."""
    rng = random.Random(seed)
    source = Source.UPSERT if task == "upsert" else Source.BACKFILL
    latencies: list[float] = []
    errors: dict[str, int] = {}
    conn = open_store(path, busy_timeout_s=BUSY_TIMEOUT_S)
    counter = 40_000_000 + (0 if task == "upsert" else 5_000_000)
    stats = RunStats()
    with transaction(conn):
        run_id = start_run(conn, task, int(time.time()))
    out.put({"task": task, "ready": True})
    go.wait()
    began = time.time()
    stop_at = began + seconds
    interval = 1.0 / rate if rate > 0 else 0.0
    next_at = time.time()
    done = 0
    while time.time() < stop_at:
        if interval:
            pause = next_at - time.time()
            if pause > 0:
                time.sleep(pause)
            next_at += interval
        now_s = int(time.time())
        fresh = [pending_deal(rng, counter + i, now_s, source) for i in range(5)]
        counter += 5
        t0 = time.perf_counter()
        try:
            with transaction(conn):
                add_pending(conn, fresh)
                taken = take_pending(conn, 10, DOMAIN, source=source)
                for i, deal in enumerate(taken):
                    own = int(deal.asin[1:], 36)
                    if i == 0:  # an existing row re-evaluated
                        n = rng.randrange(0, deals)
                        upsert_deal(conn, deal_row(rng, n, DealStatus.ACCEPTED, now_s))
                    elif i < 3:  # a new accepted deal, a new candidate
                        status = DealStatus.ACCEPTED if i == 1 else DealStatus.CANDIDATE
                        upsert_deal(conn, deal_row(rng, own, status, now_s))
                    else:
                        record_rejection(conn, rejection(rng, own, now_s, run_id))
                for _ in range(15):
                    n = rng.randrange(10_000_000, 20_000_000)
                    record_rejection(conn, rejection(rng, n, now_s, run_id))
                remove_pending(conn, taken)
                if task == "upsert":
                    advance_watermark(conn, now_s, now_s)
                else:
                    set_int(conn, "backfill_page", done % 67, now_s)
                stats = replace(
                    stats,
                    deals_seen=stats.deals_seen + 5,
                    deals_committed=stats.deals_committed + len(taken),
                    deals_accepted=stats.deals_accepted + min(2, len(taken)),
                    deals_rejected=stats.deals_rejected + 15 + max(0, len(taken) - 3),
                )
                update_run(conn, run_id, stats)
        except sqlite3.OperationalError as exc:
            errors[str(exc)] = errors.get(str(exc), 0) + 1
            continue
        latencies.append((time.perf_counter() - t0) * 1000)
        done += 1
    elapsed = time.time() - began
    conn.close()
    out.put({"task": task, "latencies_ms": latencies, "errors": errors, "elapsed_s": elapsed})


# --- the dashboard ---------------------------------------------------------------------------


def dashboard(path: Path, seconds: float, seed: int, deals: int) -> dict[str, Any]:
    rng = random.Random(seed)
    conn = connect_readonly(path, busy_timeout_s=BUSY_TIMEOUT_S)
    samples: dict[str, list[float]] = {name: [] for name in QUERIES}
    rows: dict[str, list[int]] = {name: [] for name in QUERIES}
    errors: dict[str, int] = {}
    wal = Path(str(path) + "-wal")
    wal_peak = 0

    def params(name: str) -> tuple[Any, ...]:
        if name in ("recent_24h", "rejections_24h_by_reason"):
            return (int(time.time()) - DAY_S,)
        if name == "asin_lookup":
            return (asin(rng.randrange(0, deals)),)
        return ()

    stop_at = time.perf_counter() + seconds
    try:
        while time.perf_counter() < stop_at:
            for name, sql in QUERIES.items():
                args = params(name)
                t0 = time.perf_counter()
                try:
                    found = conn.execute(sql, args).fetchall()
                except sqlite3.OperationalError as exc:
                    errors[str(exc)] = errors.get(str(exc), 0) + 1
                    continue
                samples[name].append((time.perf_counter() - t0) * 1000)
                rows[name].append(len(found))
            with contextlib.suppress(FileNotFoundError):
                wal_peak = max(wal_peak, wal.stat().st_size)
    finally:
        conn.close()
    return {
        "queries": {
            name: {
                **percentiles(samples[name]),
                "rows_avg": round(sum(rows[name]) / len(rows[name]), 1) if rows[name] else 0,
            }
            for name in QUERIES
        },
        "errors": errors,
        "wal_peak_mb": round(wal_peak / 1e6, 1),
    }


def plans(path: Path) -> dict[str, list[str]]:
    conn = connect_readonly(path)
    try:
        return {
            name: [
                str(r[3])
                for r in conn.execute("EXPLAIN QUERY PLAN " + sql, (0,) * sql.count("?")).fetchall()
            ]
            for name, sql in QUERIES.items()
        }
    finally:
        conn.close()


def run_phase(
    path: Path, seconds: float, write_rate: float | None, seed: int, deals: int
) -> dict[str, Any]:
    """The dashboard for `seconds`; with `write_rate` not None, both writers too."""
    conn = open_store(path)  # each phase starts from an empty WAL
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    if write_rate is None:
        return {**dashboard(path, seconds, seed, deals), "writers": None}
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    go = ctx.Event()
    procs = [
        ctx.Process(
            target=writer,
            args=(str(path), task, deals, seed + i, write_rate, seconds, go, out),
        )
        for i, task in enumerate(("upsert", "backfill"))
    ]
    for p in procs:
        p.start()
    for _ in procs:  # both writers connected, their run rows written
        out.get(timeout=120)
    go.set()
    read = dashboard(path, seconds, seed, deals)
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    writers: dict[str, Any] = {}
    for r in results:
        lat: list[float] = r["latencies_ms"]
        writers[r["task"]] = {
            **percentiles(lat),
            "tx_per_s": round(len(lat) / r["elapsed_s"], 1),
            "errors": r["errors"],
        }
    all_lat = [x for r in results for x in r["latencies_ms"]]
    writers["both"] = {
        **percentiles(all_lat),
        "tx_per_s": round(sum(len(r["latencies_ms"]) / r["elapsed_s"] for r in results), 1),
        "errors": {k: v for r in results for k, v in r["errors"].items()},
    }
    return {**read, "writers": writers}


def measure(
    deals: int,
    rejections: int,
    seconds: float,
    rates: list[float],
    seed: int,
    folder: Path | None,
) -> dict[str, Any]:
    base = Path(tempfile.mkdtemp(prefix="bench-sqlite-", dir=folder))
    path = base / "deals.db"
    try:
        built = populate(path, deals, rejections, seed)
        report: dict[str, Any] = {
            "database": {**built, "dir": str(base)},
            "plans": plans(path),
            "phases": {},
        }
        report["phases"]["idle"] = run_phase(path, seconds, None, seed, deals)
        for rate in rates:
            label = f"writing {rate:g}/s per writer" if rate > 0 else "writing back to back"
            report["phases"][label] = run_phase(path, seconds, rate, seed, deals)
        locked = sum(
            n
            for phase in report["phases"].values()
            for errs in [phase["errors"]] + [w["errors"] for w in (phase["writers"] or {}).values()]
            for msg, n in errs.items()
            if "locked" in msg or "busy" in msg
        )
        report["database_is_locked_errors"] = locked
        return report
    finally:
        shutil.rmtree(base, ignore_errors=True)


def render(report: dict[str, Any]) -> str:
    db = report["database"]
    lines = [
        f"database: {db['rows']}, {db['file_mb']} MB, built in {db['build_s']} s",
        "",
        "| phase | query | p50 ms | p95 ms | p99 ms | max ms | runs | rows |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for label, phase in report["phases"].items():
        for name, q in phase["queries"].items():
            lines.append(
                f"| {label} | {name} | {q['p50']} | {q['p95']} | {q['p99']} | {q['max']} "
                f"| {q['n']} | {q['rows_avg']} |"
            )
    lines += [
        "",
        "| phase | writer | tx/s | p50 ms | p95 ms | p99 ms | max ms | errors |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for label, phase in report["phases"].items():
        for task, w in (phase["writers"] or {}).items():
            lines.append(
                f"| {label} | {task} | {w['tx_per_s']} | {w['p50']} | {w['p95']} | {w['p99']} "
                f"| {w['max']} | {w['errors'] or 'none'} |"
            )
    lines.append("")
    for label, phase in report["phases"].items():
        writes = (phase["writers"] or {}).get("both", {}).get("n", 0)
        lines.append(
            f"{label}: dashboard errors {phase['errors'] or 'none'}; WAL file peak "
            f"{phase['wal_peak_mb']} MB after {writes} writer transactions"
        )
    lines.append(f"'database is locked' (or busy) errors: {report['database_is_locked_errors']}")
    lines.append("query plans:")
    lines += [f"  {name}: {' / '.join(p)}" for name, p in report["plans"].items()]
    lines.append(f"machine: {report['machine']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--deals", type=int, default=50_000)
    parser.add_argument("--rejections", type=int, default=200_000)
    parser.add_argument("--seconds", type=float, default=20.0, help="per phase")
    parser.add_argument(
        "--write-rate",
        type=float,
        action="append",
        help="transactions/s per writer; 0 = back to back; repeatable (default: 1, 10, 0)",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--dir", type=Path, default=None, help="where to build the database")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    rates: list[float] = args.write_rate or [1.0, 10.0, 0.0]
    report = measure(args.deals, args.rejections, args.seconds, rates, args.seed, args.dir)
    report["machine"] = machine()
    print(json.dumps(report, indent=2) if args.json else render(report))
    return 1 if report["database_is_locked_errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
