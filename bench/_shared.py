"""Helpers shared by the benchmarks in bench/ (imported as `_shared`: run the scripts
as `python bench/<name>.py`, which puts bench/ on sys.path).

- `machine()`: what the figures were measured on.
- `percentiles()`: p50/p95/p99/max of latencies, nearest rank.
- `run_keepa_deals()`: keepa-deals' harvest for a stretch of simulated time, the way
  bench/harvest_cost.py runs it (the real upserter, backfiller and TokenManager, a real
  redis-server of its own, the simulator over HTTP on a ManualClock they all share;
  the upserter every 15 minutes, the backfiller every minute, default settings).
  Reimplemented here rather than imported so that the benchmarks built on it do not
  depend on harvest_cost.py's internals.
"""

from __future__ import annotations

import math
import os
import platform
import shutil
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

START_S = 1_767_225_600.0  # 2026-01-01 00:00 UTC
UPSERT_EVERY_MIN = 15


def machine() -> dict[str, Any]:
    model = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        load = round(os.getloadavg()[0], 2)
    except OSError:
        load = None
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "platform": platform.platform(),
        "load_1min": load,
    }


def percentiles(values_ms: Sequence[float]) -> dict[str, float | int]:
    """Nearest-rank percentiles of latencies in ms, plus the count and the maximum."""
    if not values_ms:
        return {"n": 0, "p50": 0.0, "p95": 0.0, "p99": 0.0, "max": 0.0}
    ordered = sorted(values_ms)

    def rank(p: float) -> float:
        return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]

    return {
        "n": len(ordered),
        "p50": round(rank(50), 3),
        "p95": round(rank(95), 3),
        "p99": round(rank(99), 3),
        "max": round(ordered[-1], 3),
    }


def settled_state(sim: Any) -> dict[str, Any]:
    """`sim.state()` with every refill due applied to the balances shown.

    The simulator's snapshot reads a key's `tokens_left` before `refill_in_ms()` syncs
    its bucket (keepa_deals/keepa_sim/accounts.py, `Accounts.snapshot`), so the first
    call shows the balance as of the key's last request, without the refills since;
    a second call at the same simulated time shows the synced balance."""
    sim.state()
    state: dict[str, Any] = sim.state()
    return state


def _balance(state: dict[str, Any]) -> int:
    """The (one) key's token balance in a simulator state."""
    return sum(int(k["tokens_left"]) for k in state["keys"].values())


def _sum(conn: sqlite3.Connection, sql: str) -> int:
    return int(conn.execute(sql).fetchone()[0] or 0)


def run_keepa_deals(
    hours: float, rate: int, catalogue: int, seed: int, key: str = "benchkeepadeals0123456789"
) -> dict[str, Any]:
    """keepa-deals for `hours` of simulated time on a fresh database and a full bucket.

    Tokens are what the simulator charged; deals come from the `runs` table."""
    # Imported here: the SQLite benchmark's writer processes need none of this.

    from keepa_deals.config import Settings
    from keepa_deals.harvest.backfiller import backfill_deals
    from keepa_deals.harvest.context import HarvestContext
    from keepa_deals.harvest.upserter import update_recent_deals
    from keepa_deals.infra.clock import ManualClock
    from keepa_deals.infra.redis_client import redis_client
    from keepa_deals.infra.redis_server import RedisServerProcess
    from keepa_deals.keepa.client import KeepaClient
    from keepa_deals.keepa_sim import KeepaSimulator

    server = RedisServerProcess().start()
    clock = ManualClock(START_S)
    sim = KeepaSimulator(seed=seed, refill_rate=rate, clock=clock, catalogue_size=catalogue)
    sim.start()
    client = redis_client(server.url)
    keepa = KeepaClient(key, sim.url, max_retries=0)
    folder = Path(tempfile.mkdtemp(prefix="bench-keepa-deals-"))
    settings = Settings(
        redis_url=server.url,
        redis_prefix=f"bench{uuid.uuid4().hex[:8]}:",
        deals_db_path=folder / "deals.db",
        plan_rate=min(rate, 5),
    )
    ctx = HarvestContext.from_settings(settings, clock=clock, keepa=keepa, redis=client)
    end_s = START_S + hours * 3600
    wall_start = time.perf_counter()
    try:
        for minute in range(int(hours * 60)):
            target = START_S + minute * 60
            if clock.now() < target:
                clock.set(target)
            if clock.now() >= end_s:
                break
            tasks = [update_recent_deals] if minute % UPSERT_EVERY_MIN == 0 else []
            for task in [*tasks, backfill_deals]:
                task(ctx)
        wall_s = time.perf_counter() - wall_start
        if clock.now() < end_s:  # the refills of the last minute count, as for the baseline
            clock.set(end_s)
        conn = ctx.conn
        state = settled_state(sim)
        accepted = _sum(conn, "SELECT SUM(deals_accepted) FROM runs")
        rejected = _sum(conn, "SELECT SUM(deals_rejected) FROM runs")
        by_stage = {
            str(stage): int(n)
            for stage, n in conn.execute(
                "SELECT stage, SUM(times) FROM rejections GROUP BY stage"
            ).fetchall()
        }
        return {
            "system": "keepa-deals",
            "simulated_h": round((clock.now() - START_S) / 3600, 3),
            "wall_s": round(wall_s, 1),
            "tokens_spent": int(state["totals"]["tokens_charged"]),
            "tokens_by_endpoint": {
                "deal": int(state["endpoints"]["deal"]["tokens"]),
                "product": int(state["endpoints"]["product"]["tokens"]),
            },
            "tokens_lost_to_cap": int(state["totals"]["tokens_lost_to_cap"]),
            "http_429": int(state["totals"]["rejected_429"]),
            "calls": {name: int(e["calls"]) for name, e in state["endpoints"].items()},
            "deals_published": int(state["deals"]["published_default_selection"]),
            "balance_at_end": _balance(state),
            "deals_evaluated": accepted + rejected,
            "deals_accepted": accepted,
            "deals_rejected": rejected,
            "rejected_by_stage": by_stage,
            "dashboard_rows": _sum(conn, "SELECT COUNT(*) FROM dashboard_deals"),
            "pending_at_end": _sum(conn, "SELECT COUNT(*) FROM pending"),
            "products_committed": _sum(conn, "SELECT SUM(deals_committed) FROM runs"),
        }
    finally:
        ctx.close()
        keepa.session.close()
        client.close()
        sim.stop()
        server.close()
        shutil.rmtree(folder, ignore_errors=True)
