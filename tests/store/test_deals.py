"""The deals table: idempotent upserts, integer prices, the dashboard view and its
indexes, zombie and stale rows."""

from __future__ import annotations

import sqlite3
from dataclasses import replace

import pytest

from keepa_deals.store import (
    DASHBOARD_FIELDS,
    DealRow,
    DealStatus,
    Source,
    get_deal,
    mark_seen,
    set_status,
    stale_deals,
    top_deals,
    transaction,
    upsert_deal,
    zombie_deals,
)
from tests.support.store_rows import NOW_S, accepted_row

DAY_S = 86_400
MONEY_COLUMNS = (
    "buy_price_cents",
    "sell_price_cents",
    "avg90_price_cents",
    "referral_fee_cents",
    "closing_fee_cents",
    "fba_fee_cents",
    "fees_cents",
    "profit_cents",
)


def all_rows(conn: sqlite3.Connection) -> list[tuple[object, ...]]:
    return [tuple(r) for r in conn.execute("SELECT * FROM deals ORDER BY asin, domain")]


def test_replaying_a_batch_leaves_the_same_rows(conn: sqlite3.Connection) -> None:
    batch = [accepted_row(f"{n:010d}") for n in range(20)]
    with transaction(conn):
        for row in batch:
            upsert_deal(conn, row)
    once = all_rows(conn)
    for _ in range(3):
        with transaction(conn):
            for row in reversed(batch):
                upsert_deal(conn, row)
    assert all_rows(conn) == once and len(once) == 20


def test_one_row_per_asin_and_domain(conn: sqlite3.Connection) -> None:
    upsert_deal(conn, accepted_row())
    upsert_deal(conn, accepted_row(domain=3))
    upsert_deal(conn, accepted_row(last_seen_s=NOW_S + 60))
    counts = conn.execute("SELECT domain, COUNT(*) FROM deals GROUP BY domain").fetchall()
    assert [tuple(r) for r in counts] == [(1, 1), (3, 1)]


def test_a_merge_keeps_first_seen_last_seen_and_the_newest_evaluation(
    conn: sqlite3.Connection,
) -> None:
    newer = accepted_row(
        first_seen_s=NOW_S + 100, last_seen_s=NOW_S + 100, last_evaluated_s=NOW_S + 100
    )
    upsert_deal(conn, replace(newer, profit_cents=2_000, source=Source.BACKFILL))
    # A late writer with an older evaluation: its seen times count, its figures do not.
    upsert_deal(conn, accepted_row(first_seen_s=NOW_S - 50, last_seen_s=NOW_S, profit_cents=1))
    row = get_deal(conn, "0123456789", 1)
    assert row is not None
    assert (row.first_seen_s, row.last_seen_s) == (NOW_S - 50, NOW_S + 100)
    assert row.profit_cents == 2_000 and row.last_evaluated_s == NOW_S + 100
    assert row.source is Source.BACKFILL  # the task that found it first


def test_a_sighting_without_evaluation_keeps_the_figures(conn: sqlite3.Connection) -> None:
    upsert_deal(conn, accepted_row())
    seen = DealRow(
        asin="0123456789",
        domain=1,
        status=DealStatus.CANDIDATE,
        source=Source.UPSERT,
        first_seen_s=NOW_S + 60,
        last_seen_s=NOW_S + 60,
        deal_created_s=NOW_S + 30,
    )
    upsert_deal(conn, seen)
    row = get_deal(conn, "0123456789", 1)
    assert row == accepted_row(last_seen_s=NOW_S + 60, deal_created_s=NOW_S + 30)


def test_prices_are_stored_as_integers(conn: sqlite3.Connection) -> None:
    upsert_deal(conn, accepted_row())
    types = conn.execute(
        "SELECT " + ", ".join(f"typeof({c})" for c in MONEY_COLUMNS) + " FROM deals"
    ).fetchone()
    assert set(types) == {"integer"}
    assert conn.execute("SELECT typeof(roi_percent) FROM deals").fetchone()[0] == "real"


@pytest.mark.parametrize("bad", ["$246.26", "246.26", 246.26, True])
def test_a_price_that_is_not_whole_cents_is_refused(conn: sqlite3.Connection, bad: object) -> None:
    """Failure mode "prices as text": "$246.26" in a price column made every profit negative."""
    with pytest.raises(TypeError, match="buy_price_cents must be an int"):
        accepted_row(buy_price_cents=bad)
    # And the table refuses it from any other writer too (STRICT).
    if not isinstance(bad, bool):
        with pytest.raises(sqlite3.IntegrityError):
            conn.execute(
                "INSERT INTO deals (asin, domain, status, source, first_seen_s, last_seen_s,"
                " buy_price_cents) VALUES ('0123456789', 1, 'accepted', 'upsert', 0, 0, ?)",
                (bad,),
            )


def test_statuses_and_sources_are_checked(conn: sqlite3.Connection) -> None:
    with pytest.raises(ValueError, match="'shown'"):
        accepted_row(status="shown")
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute(
            "INSERT INTO deals (asin, domain, status, source, first_seen_s, last_seen_s)"
            " VALUES ('0123456789', 1, 'shown', 'upsert', 0, 0)"
        )


def test_the_dashboard_shows_accepted_complete_rows_best_first(conn: sqlite3.Connection) -> None:
    upsert_deal(conn, accepted_row("000000000A", profit_cents=500, roi_percent=90.0))
    upsert_deal(conn, accepted_row("000000000B", profit_cents=900, roi_percent=20.0))
    upsert_deal(conn, accepted_row("000000000C", first_seen_s=NOW_S - DAY_S, domain=3))
    upsert_deal(conn, accepted_row("000000000D", status=DealStatus.REJECTED))
    upsert_deal(conn, accepted_row("000000000E", status=DealStatus.EXPIRED))
    assert [d.asin for d in top_deals(conn, "profit")] == ["000000000C", "000000000B", "000000000A"]
    assert [d.asin for d in top_deals(conn, "roi")] == ["000000000A", "000000000C", "000000000B"]
    assert [d.asin for d in top_deals(conn, "recent", limit=2)] == ["000000000A", "000000000B"]
    urls = {d.asin: d.amazon_url for d in top_deals(conn)}
    assert urls["000000000A"] == "https://www.amazon.com/dp/000000000A"
    assert urls["000000000C"] == "https://www.amazon.de/dp/000000000C"


@pytest.mark.parametrize(
    ("order_by", "index"),
    [
        ("profit_cents DESC", "deals_accepted_by_profit"),
        ("roi_percent DESC", "deals_accepted_by_roi"),
        ("first_seen_s DESC", "deals_accepted_by_first_seen"),
    ],
)
def test_dashboard_orderings_use_an_index(
    conn: sqlite3.Connection, order_by: str, index: str
) -> None:
    plan = conn.execute(
        f"EXPLAIN QUERY PLAN SELECT * FROM dashboard_deals ORDER BY {order_by} LIMIT 50"
    ).fetchall()
    details = " ".join(str(r[3]) for r in plan)
    assert index in details and "TEMP B-TREE" not in details


@pytest.mark.parametrize("field", DASHBOARD_FIELDS)
def test_a_row_missing_a_dashboard_field_is_a_zombie_not_a_deal(
    conn: sqlite3.Connection, field: str
) -> None:
    upsert_deal(conn, accepted_row("000000000A"))
    upsert_deal(conn, accepted_row("000000000B", **{field: None}))
    assert [d.asin for d in top_deals(conn)] == ["000000000A"]
    assert [z.asin for z in zombie_deals(conn, limit=10)] == ["000000000B"]


def test_zombies_are_live_rows_most_recently_seen_first(conn: sqlite3.Connection) -> None:
    upsert_deal(conn, accepted_row("000000000A", status=DealStatus.CANDIDATE, profit_cents=None))
    upsert_deal(
        conn,
        accepted_row("000000000B", status=DealStatus.CANDIDATE, title=None, last_seen_s=NOW_S + 60),
    )
    upsert_deal(conn, accepted_row("000000000C", status=DealStatus.REJECTED, title=None))
    assert [z.asin for z in zombie_deals(conn, limit=10)] == ["000000000B", "000000000A"]
    assert [z.asin for z in zombie_deals(conn, limit=1)] == ["000000000B"]
    assert zombie_deals(conn, limit=10, domain=3) == []


def test_stale_rows_are_live_rows_not_seen_for_long(conn: sqlite3.Connection) -> None:
    upsert_deal(conn, accepted_row("000000000A", last_seen_s=NOW_S))
    upsert_deal(
        conn,
        accepted_row("000000000B", first_seen_s=NOW_S - 3 * DAY_S, last_seen_s=NOW_S - 2 * DAY_S),
    )
    upsert_deal(
        conn,
        accepted_row("000000000C", first_seen_s=NOW_S - 3 * DAY_S, last_seen_s=NOW_S - 3 * DAY_S),
    )
    upsert_deal(
        conn,
        accepted_row(
            "000000000D",
            first_seen_s=NOW_S - 3 * DAY_S,
            last_seen_s=NOW_S - 3 * DAY_S,
            status=DealStatus.EXPIRED,
        ),
    )
    now = NOW_S + 60
    assert [d.asin for d in stale_deals(conn, now, DAY_S, 10)] == ["000000000C", "000000000B"]
    # A refresh that confirms the deal rescues it; one that does not expires it.
    assert mark_seen(conn, "000000000C", 1, now)
    assert set_status(conn, "000000000B", 1, DealStatus.EXPIRED, "not seen for 2 days", now)
    assert stale_deals(conn, now, DAY_S, 10) == []
    assert not mark_seen(conn, "9999999999", 1, now)


def test_a_rejected_row_leaves_the_dashboard(conn: sqlite3.Connection) -> None:
    upsert_deal(conn, accepted_row())
    assert set_status(conn, "0123456789", 1, DealStatus.REJECTED, "profit_too_low", NOW_S + 5)
    row = get_deal(conn, "0123456789", 1)
    assert row is not None and row.status is DealStatus.REJECTED
    assert (row.status_reason, row.last_evaluated_s) == ("profit_too_low", NOW_S + 5)
    assert top_deals(conn) == []


def test_the_stale_query_uses_its_index(conn: sqlite3.Connection) -> None:
    from keepa_deals.store import deals

    plan = conn.execute(
        "EXPLAIN QUERY PLAN SELECT * FROM deals WHERE "
        + deals._live()
        + " AND last_seen_s <= 0 ORDER BY last_seen_s"
    ).fetchall()
    assert "deals_live_by_last_seen" in " ".join(str(r[3]) for r in plan)


def test_an_accepted_evaluation_becomes_a_dashboard_row(conn: sqlite3.Connection) -> None:
    from keepa_deals.config import Settings
    from keepa_deals.evaluation.stages import commit, parse_deal
    from keepa_deals.evaluation.verdicts import Accepted
    from keepa_deals.store import accepted_deal_row

    km = 7_880_000
    used = [-1] * 36
    used[2], used[3] = 1_500, 50_000
    avg90 = [-1] * 36
    avg90[2] = 4_000
    offer = {"offerCSV": [km, 1_500, 0], "condition": 3, "isFBA": True}
    product = {
        "asin": "0123456789",
        "title": "The Quiet Harbour",
        "rootCategory": 283155,
        "categoryTree": [{"catId": 17, "name": "Literature & Fiction"}],
        "lastUpdate": km,
        "stats": {"current": used, "avg90": avg90, "salesRankDrops90": 6},
        "offers": [offer],
        "offersSuccessful": True,
    }
    accepted = commit(product, Settings())
    assert isinstance(accepted, Accepted)
    avg = [[-1] * 36 for _ in range(4)]
    avg[3][2] = 4_000
    deal = parse_deal({"asin": "0123456789", "creationDate": km - 5, "current": used, "avg": avg})
    row = accepted_deal_row(accepted, domain=1, source=Source.UPSERT, now_s=NOW_S, deal=deal)
    upsert_deal(conn, row)
    [shown] = top_deals(conn)
    figures = (shown.buy_price_cents, shown.sell_price_cents, shown.fees_cents)
    assert figures == (1_500, 4_000, 1_130)
    assert (shown.profit_cents, shown.roi_percent, shown.percent_drop) == (1_370, 91.33, 62)
    assert shown.keepa_last_update_s == (km + 21_564_000) * 60
    stored = get_deal(conn, "0123456789", 1)
    assert stored is not None and stored.deal_created_s == (km - 5 + 21_564_000) * 60


def test_a_peeked_deal_is_a_candidate_until_its_commit(conn: sqlite3.Connection) -> None:
    from keepa_deals.config import Settings
    from keepa_deals.evaluation.stages import parse_deal, peek
    from keepa_deals.evaluation.verdicts import PeekPassed
    from keepa_deals.store import candidate_deal_row, zombie_deals

    km = 7_880_000
    current = [-1] * 36
    current[2], current[3] = 1_500, 50_000
    avg90 = [-1] * 36
    avg90[2] = 6_000
    product = {
        "asin": "0123456789",
        "title": "The Quiet Harbour",
        "rootCategory": 283155,
        "lastUpdate": km,
        "stats": {"current": current, "avg90": avg90, "salesRankDrops90": 6},
    }
    peeked = peek(product, Settings())
    assert isinstance(peeked, PeekPassed)
    deal = parse_deal({"asin": "0123456789", "creationDate": km - 5, "current": current})
    row = candidate_deal_row(peeked, domain=1, source=Source.BACKFILL, now_s=NOW_S, deal=deal)
    upsert_deal(conn, row)
    stored = get_deal(conn, "0123456789", 1)
    assert stored is not None and stored.status is DealStatus.CANDIDATE
    assert (stored.last_evaluated_s, stored.sales_rank, stored.rank_drops_90) == (NOW_S, 50_000, 6)
    assert stored.deal_created_s == (km - 5 + 21_564_000) * 60
    assert stored.buy_price_cents is None and top_deals(conn) == []
    assert [z.asin for z in zombie_deals(conn, 10)] == ["0123456789"]
