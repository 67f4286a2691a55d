"""`/metrics`: the harvest's state in Prometheus text format, computed at scrape time
from what status reads (Redis for tokens, the database for runs and deals): nothing is
counted in this process, so any number of dashboards report the same figures."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import Response
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from keepa_deals.config import Settings
from keepa_deals.dashboard.db import DatabaseMissing, reading
from keepa_deals.dashboard.state import Dashboard, dash
from keepa_deals.infra.redis_client import DIAGNOSTICS, redis_client
from keepa_deals.service.status import lock_status, token_status

router = APIRouter()
P = "keepa_deals_"


def _gauge(name: str, doc: str, value: float | None) -> Iterator[Metric]:
    if value is not None:
        yield GaugeMetricFamily(P + name, doc, value=float(value))


class HarvestCollector(Collector):
    def __init__(self, d: Dashboard) -> None:
        self.d = d

    def collect(self) -> Iterator[Metric]:
        import redis  # noqa: PLC0415 - the client only when scraped

        settings = self.d.settings
        client = redis_client(settings.redis_url, DIAGNOSTICS)
        try:
            tokens = token_status(settings, client)
            locks = lock_status(settings, client)
            redis_up = 1.0
        except redis.RedisError:
            tokens, locks, redis_up = {"state": "error"}, {}, 0.0
        finally:
            client.close()
        yield GaugeMetricFamily(P + "redis_up", "1 when Redis answered this scrape", redis_up)
        yield from self._tokens(tokens)
        held = GaugeMetricFamily(
            P + "lock_held", "1 while the task's lock is held", labels=["task"]
        )
        for task, holder in locks.items():
            held.add_metric([task], 1.0 if holder else 0.0)
        yield held
        families, age_s = self.d.snapshot("metrics", self.read_database)
        yield from families
        yield GaugeMetricFamily(
            P + "database_read_age_seconds",
            "Age of the database figures (read in the background)",
            age_s,
        )

    def read_database(self) -> list[Metric]:
        """The database's figures: GROUP BYs over every deal and rejection, too slow for
        a scrape at a million rows, so read in the background (Dashboard.snapshot)."""
        try:
            with reading(self.d.settings) as conn:
                return list(self._database(conn, self.d.settings))
        except (DatabaseMissing, sqlite3.Error):
            return [GaugeMetricFamily(P + "database_up", "1 when the database was readable", 0.0)]

    def _tokens(self, st: dict[str, Any]) -> Iterator[Metric]:
        if st.get("state") != "ok":
            return
        yield from _gauge("tokens_balance", "The TokenManager's balance estimate", st["balance"])
        yield from _gauge(
            "tokens_keepa_balance", "The balance Keepa last reported", st["server_balance"]
        )
        yield from _gauge("tokens_capacity", "The bucket's capacity", st["capacity"])
        yield from _gauge("tokens_rate_per_min", "Refill rate, tokens a minute", st["rate_per_min"])
        yield from _gauge("tokens_floor", "The deficit floor", st["floor"])
        yield from _gauge(
            "recharge_active", "1 while recharging", 1.0 if st["recharge"]["active"] else 0.0
        )
        granted = CounterMetricFamily(
            P + "tokens_granted", "Tokens granted by class since the state began", labels=["cls"]
        )
        waiting = GaugeMetricFamily(
            P + "class_waiting", "1 while a class waits, by its reason", labels=["cls", "reason"]
        )
        wait_s = GaugeMetricFamily(
            P + "class_wait_seconds", "A waiting class's computed wait", labels=["cls", "reason"]
        )
        for name, c in st["classes"].items():
            granted.add_metric([name], float(c["tokens_granted_total"]))
            reason = str(c["reason"] or "none")
            waiting.add_metric([name, reason], 1.0 if c["waiting"] else 0.0)
            if c["waiting"] and c["wait_s"] is not None:
                wait_s.add_metric([name, reason], float(c["wait_s"]))
        yield granted
        yield waiting
        yield wait_s

    def _database(self, conn: sqlite3.Connection, settings: Settings) -> Iterator[Metric]:
        yield GaugeMetricFamily(P + "database_up", "1 when the database was readable", 1.0)
        runs = CounterMetricFamily(
            P + "runs", "Runs recorded, by task and stop reason", labels=["task", "stop_reason"]
        )
        stage_tokens = CounterMetricFamily(
            P + "tokens_spent", "Tokens Keepa charged, by task and stage", labels=["task", "stage"]
        )
        for r in conn.execute(
            "SELECT task, COALESCE(stop_reason, 'running'), COUNT(*), SUM(tokens_discovery),"
            " SUM(tokens_peek), SUM(tokens_commit) FROM runs GROUP BY 1, 2 ORDER BY 1, 2"
        ).fetchall():
            runs.add_metric([r[0], r[1]], float(r[2]))
        for r in conn.execute(
            "SELECT task, SUM(tokens_discovery), SUM(tokens_peek), SUM(tokens_commit) FROM runs"
            " GROUP BY task ORDER BY task"
        ).fetchall():
            for stage, value in zip(("discovery", "peek", "commit"), r[1:], strict=True):
                stage_tokens.add_metric([r[0], stage], float(value or 0))
        yield runs
        yield stage_tokens
        deals = GaugeMetricFamily(P + "deals", "Rows in deals, by status", labels=["status"])
        for status, n in conn.execute(
            "SELECT status, COUNT(*) FROM deals GROUP BY status ORDER BY status"
        ).fetchall():
            deals.add_metric([status], float(n))
        yield deals
        rejected = GaugeMetricFamily(
            P + "rejections", "Rejections remembered, by stage", labels=["stage"]
        )
        for stage, n in conn.execute(
            "SELECT stage, COUNT(*) FROM rejections GROUP BY stage ORDER BY stage"
        ).fetchall():
            rejected.add_metric([stage], float(n))
        yield rejected
        pending = conn.execute("SELECT COUNT(*) FROM pending").fetchone()[0]
        yield GaugeMetricFamily(P + "pending", "Deals fetched, not yet evaluated", float(pending))
        http_429 = conn.execute("SELECT COUNT(*) FROM runs WHERE stop_reason = 'http_429'")
        yield CounterMetricFamily(
            P + "http_429_stops", "Runs stopped by Keepa's 429", float(http_429.fetchone()[0])
        )
        row = conn.execute(
            "SELECT int_value FROM system_state WHERE key = 'watermark_s'"
        ).fetchone()
        if row is not None:
            age = max(0.0, self.d.now_s() - int(row[0]))
            yield GaugeMetricFamily(
                P + "watermark_age_seconds", "Age of the newest deal accounted for", age
            )


@router.get("/metrics", include_in_schema=False)
def metrics(d: Annotated[Dashboard, Depends(dash)]) -> Response:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(HarvestCollector(d))
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
