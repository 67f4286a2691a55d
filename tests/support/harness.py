"""The harvest harness: the simulator over HTTP on a ManualClock, a real Redis, a temporary
SQLite file, and contexts wired to all three.

Time is virtual: the simulator, the TokenManager and the tasks share one ManualClock,
which moves only when a test advances it or the TokenManager waits its computed time
(ManualClock.sleep advances instead of blocking). Nothing here sleeps.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import redis

from keepa_deals.config import DEFAULT_DEAL_QUERY, Settings
from keepa_deals.harvest import RunSummary
from keepa_deals.harvest.backfiller import backfill_deals
from keepa_deals.harvest.context import HarvestContext
from keepa_deals.harvest.upserter import update_recent_deals
from keepa_deals.infra.clock import ManualClock
from keepa_deals.keepa.client import KeepaClient
from keepa_deals.keepa.keepa_time import unix_s_to_keepa_minutes
from keepa_deals.keepa_sim import KeepaSimulator
from keepa_deals.keepa_sim.deals import WINDOW_MIN
from keepa_deals.store import connect_readonly

KEY = "harvesttestkey0123456789"
START_S = 1_767_225_600.0  # 2026-01-01 00:00 UTC
# Thresholds loose enough that a small catalogue yields accepted deals to look at.
GENEROUS = {"min_profit_cents": 100, "min_roi_percent": 10, "min_percent_drop": 10}


@dataclass
class Harness:
    sim: KeepaSimulator
    clock: ManualClock
    settings: Settings
    redis_url: str
    tmp_path: Path
    owned: ExitStack = field(default_factory=ExitStack)  # closed newest first
    _ctx: HarvestContext | None = None

    def context(self, **changes: Any) -> HarvestContext:
        """A new context (its own connection, client and Redis client): one per thread."""
        settings = replace(self.settings, **changes) if changes else self.settings
        client = redis.Redis.from_url(self.redis_url)
        keepa = KeepaClient(KEY, self.sim.url, max_retries=0)
        self.owned.callback(client.close)
        self.owned.callback(keepa.session.close)
        ctx = HarvestContext.from_settings(settings, clock=self.clock, keepa=keepa, redis=client)
        self.owned.callback(ctx.close)
        return ctx

    @property
    def ctx(self) -> HarvestContext:
        """The test's main context."""
        if self._ctx is None:
            self._ctx = self.context()
        return self._ctx

    @property
    def conn(self) -> sqlite3.Connection:
        return self.ctx.conn

    def upsert(self) -> RunSummary:
        return update_recent_deals(self.ctx)

    def backfill(self) -> RunSummary:
        return backfill_deals(self.ctx)

    def at(self, offset_s: float) -> None:
        """Move the clock to START_S + offset_s, unless runs already waited past it."""
        target = START_S + offset_s
        if self.clock.now() < target:
            self.clock.set(target)

    def make_query(self, changes: dict[str, Any]) -> Path:
        """A deal-query file: the packaged one with `changes`."""
        return write_query(self.tmp_path, changes)

    def reader(self) -> sqlite3.Connection:
        """A dashboard's read-only connection (the main context creates the file)."""
        assert self.ctx is not None
        conn = connect_readonly(self.settings.deals_db_path, busy_timeout_s=5)
        self.owned.callback(conn.close)
        return conn

    def endpoint_tokens(self) -> dict[str, int]:
        endpoints = self.sim.state()["endpoints"]
        return {name: int(endpoints[name]["tokens"]) for name in ("deal", "product")}

    def close(self) -> None:
        self.owned.close()


HarnessFactory = Callable[..., Harness]


def write_query(folder: Path, changes: dict[str, Any]) -> Path:
    selection = {**json.loads(DEFAULT_DEAL_QUERY.read_text()), **changes}
    path = folder / f"query-{len(list(folder.glob('query-*.json')))}.json"
    path.write_text(json.dumps(selection))
    return path


# --- what the database holds ------------------------------------------------------------


def deal_rows(conn: sqlite3.Connection) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in conn.execute("SELECT * FROM deals ORDER BY asin, domain")]


def accounted_asins(conn: sqlite3.Connection) -> dict[str, set[str]]:
    """ASINs by where they ended up: a deal row, a rejection, quarantine or pending."""
    tables = {
        "deals": "SELECT asin FROM deals",
        "rejections": "SELECT asin FROM rejections",
        "quarantine": "SELECT asin FROM quarantine WHERE quarantined_s IS NOT NULL",
        "pending": "SELECT asin FROM pending",
    }
    return {name: {r[0] for r in conn.execute(sql)} for name, sql in tables.items()}


def all_accounted(conn: sqlite3.Connection) -> set[str]:
    found: set[str] = set()
    for asins in accounted_asins(conn).values():
        found |= asins
    return found


def observable(h: Harness, start_s: float, end_s: float, looks_s: Sequence[float]) -> set[str]:
    """ASINs of the deals published in (start_s, end_s] that were on the deal pages at one
    of the times a task read them (`looks_s`). A deal its product's next change replaced
    before anyone looked could not have been found by anything."""
    timeline = h.sim.app.products.timeline
    index = timeline.catalogue.index_by_asin
    looks_km = sorted(unix_s_to_keepa_minutes(t) for t in looks_s)
    found: set[str] = set()
    for asin, minute in h.sim.deals_published(h.ctx.selection, start_s, end_s):
        for look in looks_km:
            if minute <= look < minute + WINDOW_MIN:
                if not timeline.changes(index[asin], minute, look):
                    found.add(asin)
                break
    return found


def run_tokens(conn: sqlite3.Connection) -> dict[str, int]:
    row = conn.execute(
        "SELECT COALESCE(SUM(tokens_discovery), 0), COALESCE(SUM(tokens_peek), 0),"
        " COALESCE(SUM(tokens_commit), 0) FROM runs"
    ).fetchone()
    return {"discovery": int(row[0]), "peek": int(row[1]), "commit": int(row[2])}
