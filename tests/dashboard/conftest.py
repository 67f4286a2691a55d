"""Dashboard fixtures: a deals database with known rows, and a TestClient on it.

Five accepted deals (A-E) with distinct values in every sortable column, so each sort
has one right order; a rejected, a candidate and an incomplete accepted row ("zombie")
that the dashboard must never show; rejections and runs at known times.

    deal  profit  roi     buy   sell  fees  rank       drops pdrop first seen   domain
    A     1870    187.0   1000  4000  1130  5000       30    40    NOW-10min    1
    B     2070    82.8    2500  6000  1430  120000     10    25    NOW-2h       1
    C     1095    219.0   500   2500  905   800        -     -     NOW-3d       1
    D     3120    78.0    4000  9000  1880  1500000    2     60    NOW-10d      1
    E     370     46.25   800   2000  830   45000      5     30    NOW-30min    3
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from keepa_deals.config import Settings
from keepa_deals.dashboard.app import create_app
from keepa_deals.dashboard.config import DashboardConfig
from keepa_deals.infra.checks import Check
from keepa_deals.infra.redis_server import RedisServerProcess
from keepa_deals.store import (
    DealRow,
    DealStatus,
    RejectionRecord,
    RunStats,
    Source,
    finish_run,
    open_store,
    record_rejection,
    start_run,
    transaction,
    upsert_deal,
)

NOW_S = 1_800_000_000
PASSWORD = "correct horse battery"
ASIN = {k: f"B00000000{k}" for k in "ABCDEFGH"}


def deal(
    key: str,
    *,
    title: str,
    category: str,
    buy: int,
    sell: int,
    referral: int,
    rank: int,
    drops: int | None,
    pdrop: int | None,
    first_seen_s: int,
    last_seen_s: int,
    evaluated_s: int | None,
    avg90: int | None,
    domain: int = 1,
    status: DealStatus = DealStatus.ACCEPTED,
) -> DealRow:
    fees = referral + 180 + 350
    profit = sell - buy - fees
    return DealRow(
        asin=ASIN[key],
        domain=domain,
        status=status,
        source=Source.UPSERT,
        first_seen_s=first_seen_s,
        last_seen_s=last_seen_s,
        title=title,
        root_category_id=283155,
        category=category,
        buy_price_cents=buy,
        sell_price_cents=sell,
        avg90_price_cents=avg90,
        referral_fee_cents=referral,
        closing_fee_cents=180,
        fba_fee_cents=350,
        fees_cents=fees,
        profit_cents=profit,
        roi_percent=(profit * 10_000 // buy) / 100,
        sales_rank=rank,
        rank_drops_90=drops,
        percent_drop=pdrop,
        deal_created_s=first_seen_s - 60,
        keepa_last_update_s=first_seen_s - 120,
        last_evaluated_s=evaluated_s,
    )


def rows() -> list[DealRow]:
    a = deal(
        "A",
        title="Calculus: Early Transcendentals",
        category="Textbooks",
        buy=1000,
        sell=4000,
        referral=600,
        rank=5000,
        drops=30,
        pdrop=40,
        first_seen_s=NOW_S - 600,
        last_seen_s=NOW_S - 540,
        evaluated_s=NOW_S - 100,
        avg90=5000,
    )
    b = deal(
        "B",
        title="Organic Chemistry",
        category="Textbooks",
        buy=2500,
        sell=6000,
        referral=900,
        rank=120_000,
        drops=10,
        pdrop=25,
        first_seen_s=NOW_S - 7200,
        last_seen_s=NOW_S - 7140,
        evaluated_s=NOW_S - 50,
        avg90=7000,
    )
    c = deal(
        "C",
        title="The Hobbit",
        category="Literature & Fiction",
        buy=500,
        sell=2500,
        referral=375,
        rank=800,
        drops=None,
        pdrop=None,
        first_seen_s=NOW_S - 3 * 86_400,
        last_seen_s=NOW_S - 3 * 86_400 + 60,
        evaluated_s=None,
        avg90=None,
    )
    d = deal(
        "D",
        title="Gray's Anatomy",
        category="Medical Books",
        buy=4000,
        sell=9000,
        referral=1350,
        rank=1_500_000,
        drops=2,
        pdrop=60,
        first_seen_s=NOW_S - 10 * 86_400,
        last_seen_s=NOW_S,
        evaluated_s=NOW_S - 5000,
        avg90=11_000,
    )
    e = deal(
        "E",
        title="Der Process 100% Kafka_",
        category="Literature & Fiction",
        buy=800,
        sell=2000,
        referral=300,
        rank=45_000,
        drops=5,
        pdrop=30,
        first_seen_s=NOW_S - 1800,
        last_seen_s=NOW_S - 1740,
        evaluated_s=NOW_S - 200,
        avg90=3000,
        domain=3,
    )
    hidden = [
        replace(a, asin=ASIN["F"], status=DealStatus.REJECTED, status_reason="profit_too_low"),
        DealRow(
            asin=ASIN["G"],
            domain=1,
            status=DealStatus.CANDIDATE,
            source=Source.BACKFILL,
            first_seen_s=NOW_S - 10,
            last_seen_s=NOW_S - 10,
            title="A candidate",
        ),
        replace(b, asin=ASIN["H"], title=None),  # a zombie: accepted, a field missing
    ]
    return [a, b, c, d, e, *hidden]


def build_db(path: Path) -> None:
    conn = open_store(path, busy_timeout_s=10)
    try:
        with transaction(conn):
            for row in rows():
                upsert_deal(conn, row)
            up = start_run(conn, "upsert", NOW_S - 3 * 3600)
            finish_run(
                conn,
                up,
                RunStats(tokens_discovery=10, tokens_peek=20, tokens_commit=30, deals_accepted=2),
                "done",
                NOW_S - 3 * 3600 + 100,
            )
            back = start_run(conn, "backfill", NOW_S - 1800)
            finish_run(
                conn, back, RunStats(tokens_peek=7, deals_rejected=3), "http_429", NOW_S - 1700
            )
            for asin, price, stage, reason, tokens, when in (
                (ASIN["F"], 900, "commit", "profit_too_low", 11, NOW_S - 3600),
                (ASIN["A"], 1500, "peek", "drop_too_small", 1, NOW_S - 2 * 86_400),
                (ASIN["G"], 700, "free", "rank_above_max", 0, NOW_S - 600),
                (ASIN["G"], 800, "free", "rank_above_max", 0, NOW_S - 300),
            ):
                record_rejection(
                    conn,
                    RejectionRecord(
                        asin=asin,
                        domain=1,
                        price_cents=price,
                        stage=stage,
                        reason=reason,
                        rejected_s=when,
                        detail=f"{reason} detail",
                        tokens_spent=tokens,
                        run_id=back,
                    ),
                )
    finally:
        conn.close()


def ok_checks() -> list[Callable[[Settings], Check]]:
    return [lambda s: Check("redis", "ok", "fine"), lambda s: Check("progress", "ok", "moving")]


ClientFactory = Callable[..., TestClient]


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    path = tmp_path / "deals.db"
    build_db(path)
    return path


@pytest.fixture
def settings(
    db_path: Path, tmp_path: Path, redis_server: RedisServerProcess, prefix: str
) -> Settings:
    query = tmp_path / "deal_query.json"
    query.write_text(
        '{"domainId": 1, "priceTypes": [2], "page": 0, "dateRange": 1}\n', encoding="utf-8"
    )
    return Settings(
        deals_db_path=db_path,
        redis_url=redis_server.url,
        redis_prefix=prefix,
        deal_query_path=query,
    )


@pytest.fixture
def make_client(settings: Settings) -> Iterator[ClientFactory]:
    clients: list[TestClient] = []

    def factory(
        *,
        checks: Sequence[Callable[[Settings], Check]] | None = None,
        settings_changes: dict[str, Any] | None = None,
        **config: Any,
    ) -> TestClient:
        s = replace(settings, **(settings_changes or {}))
        app = create_app(
            DashboardConfig(settings=s, **config),
            clock=lambda: float(NOW_S),
            doctor_checks=ok_checks() if checks is None else checks,
        )
        client = TestClient(app, base_url="http://127.0.0.1")
        clients.append(client)
        return client

    yield factory
    for c in clients:
        c.close()


@pytest.fixture
def client(make_client: ClientFactory) -> TestClient:
    return make_client()
