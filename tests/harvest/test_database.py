"""The harvest's writes against the database's contract: integer cents (failure mode: prices as
text), an old or drifted schema (failure mode: schema drift), and readers and writers side by side
(failure mode: database is locked)."""

from __future__ import annotations

import threading

import pytest

from keepa_deals.harvest.backfiller import backfill_deals
from keepa_deals.harvest.context import HarvestContext
from keepa_deals.harvest.upserter import update_recent_deals
from keepa_deals.store import (
    MIGRATIONS,
    SchemaDrift,
    connect,
    get_deal,
    migrate,
    top_deals,
)
from tests.support.harness import GENEROUS, START_S, HarnessFactory, run_tokens


def test_prices_are_integer_cents_and_profits_add_up(
    make_harness: HarnessFactory,
) -> None:
    h = make_harness(**GENEROUS)
    h.backfill()
    shown = top_deals(h.conn, limit=1000)
    assert shown
    for deal in shown:
        assert deal.profit_cents >= h.settings.min_profit_cents > 0
        assert deal.profit_cents == deal.sell_price_cents - deal.buy_price_cents - deal.fees_cents
    types = h.conn.execute(
        "SELECT DISTINCT typeof(buy_price_cents), typeof(sell_price_cents),"
        " typeof(fees_cents), typeof(profit_cents) FROM deals WHERE status = 'accepted'"
    ).fetchall()
    assert [tuple(t) for t in types] == [("integer",) * 4]
    for table in ("rejections", "pending"):
        kinds = h.conn.execute(f"SELECT DISTINCT typeof(price_cents) FROM {table}").fetchall()
        assert {k[0] for k in kinds} <= {"integer", "null"}


def test_an_old_database_is_upgraded_before_the_harvest_writes(
    make_harness: HarnessFactory,
) -> None:
    h = make_harness(**GENEROUS)
    old = connect(h.settings.deals_db_path)
    migrate(old, MIGRATIONS[:1])
    old.execute(
        "INSERT INTO deals (asin, domain, status, source, title, buy_price_cents,"
        " sell_price_cents, fees_cents, profit_cents, roi_percent, sales_rank,"
        " first_seen_s, last_seen_s, last_evaluated_s)"
        " VALUES ('0OLDBOOK01', 1, 'accepted', 'upsert', 'Old Book', 1000, 3000, 800,"
        " 1200, 120.0, 5000, ?, ?, ?)",
        (int(START_S),) * 3,
    )
    old.close()
    h.backfill()
    assert get_deal(h.conn, "0OLDBOOK01", 1) is not None  # kept, in place
    assert len(top_deals(h.conn, limit=1000)) > 1  # the view of version 2 exists


def test_a_drifted_database_stops_the_run_before_a_token_is_spent(
    make_harness: HarnessFactory,
) -> None:
    h = make_harness()
    drifted = connect(h.settings.deals_db_path)
    migrate(drifted)
    drifted.execute("DROP VIEW dashboard_deals")
    drifted.execute("DROP INDEX deals_accepted_by_percent_drop")  # SQLite refuses otherwise
    drifted.execute("ALTER TABLE deals DROP COLUMN percent_drop")
    drifted.close()
    with pytest.raises(SchemaDrift, match="percent_drop"):
        HarvestContext.from_settings(h.settings, clock=h.clock)
    assert h.sim.state()["totals"]["calls"] == 0


def test_a_dashboard_holding_a_long_read_breaks_no_write(
    make_harness: HarnessFactory,
) -> None:
    h = make_harness(**GENEROUS)
    dashboard = h.reader()
    dashboard.execute("BEGIN")  # a read transaction held across every run below
    before = dashboard.execute("SELECT COUNT(*) FROM dashboard_deals").fetchone()[0]
    summaries = []
    for minute in range(0, 120, 5):
        h.at(minute * 60)
        summaries += [h.upsert(), h.backfill()]
    assert all(s.stop_reason != "error" for s in summaries)
    written = h.conn.execute("SELECT COUNT(*) FROM dashboard_deals").fetchone()[0]
    assert written > before
    # The reader kept its snapshot the whole time, and sees the writes once it ends.
    assert dashboard.execute("SELECT COUNT(*) FROM dashboard_deals").fetchone()[0] == before
    dashboard.execute("COMMIT")
    assert dashboard.execute("SELECT COUNT(*) FROM dashboard_deals").fetchone()[0] == written


def test_both_tasks_writing_at_once_wait_for_each_other(
    make_harness: HarnessFactory,
) -> None:
    h = make_harness(deal_rate=2.0, **GENEROUS)
    errors: list[BaseException] = []

    def task(run: object, rounds: int) -> None:
        ctx = h.context()  # a connection per thread
        try:
            for _ in range(rounds):
                summary = run(ctx)  # type: ignore[operator]
                assert summary.stop_reason != "error"
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
        finally:
            ctx.close()

    for minute in range(0, 60, 15):
        h.at(minute * 60)
        threads = [
            threading.Thread(target=task, args=(update_recent_deals, 2)),
            threading.Thread(target=task, args=(backfill_deals, 3)),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors, errors
    charged = h.endpoint_tokens()
    tokens = run_tokens(h.conn)
    assert (tokens["discovery"], tokens["peek"] + tokens["commit"]) == (
        charged["deal"],
        charged["product"],
    )
