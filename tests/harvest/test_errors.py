"""Keepa failing under a run: a 429 is never "no more deals" (failure mode: an error read as the
end), nothing stays stuck after a timeout, a crash or a lost lock (failure mode: stuck locks), and
an ASIN that keeps failing is quarantined instead of retried forever."""

from __future__ import annotations

import sqlite3

import pytest

from keepa_deals.store import (
    BackfillCursor,
    connect,
    count_pending,
    get_cursor,
    get_run,
    list_quarantined,
    set_cursor,
)
from tests.support.harness import (
    START_S,
    HarnessFactory,
    accounted_asins,
    all_accounted,
    observable,
)

NO_VARIATION_FILTER = {"singleVariation": False}
# Every deal passes stage 0 (no fees, no thresholds), so the first run's deals reach
# /product whatever the simulator's prices: these tests are about the faults there.
EVERY_DEAL_PEEKED = {
    "min_profit_cents": 0,
    "min_roi_percent": 0,
    "min_percent_drop": 0,
    "buy_shipping_cents": 0,
    "referral_fee_percent": 0.0,
    "closing_fee_cents": 0,
    "fba_fee_cents": 0,
}


def test_a_429_on_the_deal_page_is_not_the_end_of_the_deals(
    make_harness: HarnessFactory,
) -> None:
    h = make_harness(query=NO_VARIATION_FILTER)
    h.sim.set_faults({"storm_429": 1, "endpoints": ["deal"]})
    stopped = h.upsert()
    assert stopped.stop_reason == "http_429"
    assert stopped.watermark_s is None and stopped.stats.deals_seen == 0
    assert (
        h.ctx.tokens.status().as_dict()["grants_in_flight"] == 0
    )  # settled with the 429's numbers
    h.sim.clear_faults()
    resumed = h.upsert()
    assert resumed.stop_reason == "done" and resumed.watermark_s is not None
    assert not observable(h, START_S - 3600, START_S, [START_S]) - all_accounted(h.conn)


def test_a_429_on_a_backfill_page_moves_the_cursor_neither_way(
    make_harness: HarnessFactory,
) -> None:
    h = make_harness(catalogue_size=30_000)
    set_cursor(h.conn, BackfillCursor(page=2, passes=0), int(START_S))
    h.sim.set_faults({"storm_429": 1, "endpoints": ["deal"]})
    stopped = h.backfill()
    assert stopped.stop_reason == "http_429"
    assert get_cursor(h.conn) == BackfillCursor(page=2, passes=0)  # not reset, not skipped
    h.sim.clear_faults()
    resumed = h.backfill()
    assert resumed.stats.deals_seen >= 150 and get_cursor(h.conn) != BackfillCursor(2, 0)


def test_a_429_while_evaluating_leaves_the_deals_pending(
    make_harness: HarnessFactory,
) -> None:
    h = make_harness(**EVERY_DEAL_PEEKED)
    h.sim.set_faults({"storm_429": 1, "endpoints": ["product"]})
    stopped = h.upsert()
    assert stopped.stop_reason == "http_429" and stopped.stats.deals_peeked == 0
    left = count_pending(h.conn)
    assert left > 0 and list_quarantined(h.conn) == []  # no product's fault
    assert h.conn.execute("SELECT COUNT(*) FROM quarantine").fetchone()[0] == 0
    h.sim.clear_faults()
    assert h.upsert().stop_reason == "done" and count_pending(h.conn) == 0


def test_a_timed_out_call_blocks_nothing_for_good(make_harness: HarnessFactory) -> None:
    h = make_harness(**EVERY_DEAL_PEEKED)
    h.sim.set_faults({"timeout_after_charge": 1, "timeout_mode": "drop", "endpoints": ["product"]})
    stopped = h.upsert()
    assert stopped.stop_reason == "keepa_timeout"
    # Keepa charged it and we cannot know how much: the grant stays counted.
    assert h.ctx.tokens.status().as_dict()["grants_in_flight"] == 1
    assert count_pending(h.conn) > 0
    h.sim.clear_faults()
    h.at(h.settings.grant_ttl_s + 120)
    resumed = h.upsert()
    assert resumed.stop_reason == "done" and count_pending(h.conn) == 0
    assert h.ctx.tokens.status().as_dict()["grants_in_flight"] == 0


def test_a_crash_mid_batch_leaves_no_database_lock(
    make_harness: HarnessFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = make_harness(**EVERY_DEAL_PEEKED)

    def crash(*args: object, **kwargs: object) -> None:
        raise RuntimeError("worker killed mid-batch")

    monkeypatch.setattr("keepa_deals.harvest.pending.remove_pending", crash)
    with pytest.raises(RuntimeError, match="mid-batch"):
        h.upsert()
    other = connect(h.settings.deals_db_path, busy_timeout_s=0.01)
    try:
        other.execute("BEGIN IMMEDIATE")  # the write lock is free at once
        other.execute("ROLLBACK")
    finally:
        other.close()
    crashed = get_run(h.conn, 1)
    assert crashed is not None and crashed.stop_reason == "error" and crashed.ended_s
    assert crashed.error is not None and "mid-batch" in crashed.error
    monkeypatch.undo()
    assert h.upsert().stop_reason == "done" and count_pending(h.conn) == 0


def test_a_run_that_loses_its_lock_stops_between_batches(
    make_harness: HarnessFactory,
) -> None:
    h = make_harness(catalogue_size=30_000, refill_rate=100)
    watcher = h.reader()
    # The lock is lost once the backfiller has stored two pages.
    h.ctx.stop = lambda: get_cursor(watcher).page >= 2
    stopped = h.backfill()
    assert stopped.stop_reason == "stopped" and stopped.stats.tokens_total > 0
    assert get_cursor(h.conn) == BackfillCursor(page=2, passes=0)  # its progress is kept
    h.ctx.stop = None
    resumed = h.backfill()
    assert resumed.stop_reason == "done" and get_cursor(h.conn).passes == 1


def test_an_asin_that_keeps_failing_is_quarantined_not_retried_forever(
    make_harness: HarnessFactory,
) -> None:
    h = make_harness(**EVERY_DEAL_PEEKED)
    h.sim.set_faults({"drop_products_rate": 1.0})  # Keepa never returns the products
    limit = h.settings.quarantine_after_failures
    for _ in range(limit):
        summary = h.upsert()
        assert summary.stats.deals_failed > 0
    quarantined = {f.asin for f in list_quarantined(h.conn, limit=1000)}
    assert quarantined and count_pending(h.conn) == 0
    assert all(f.reason == "missing_from_reply" for f in list_quarantined(h.conn))
    spent = h.endpoint_tokens()["product"]
    again = h.upsert()  # the same deals on the page: known, not paid for
    assert again.stats.deals_failed == 0 and h.endpoint_tokens()["product"] == spent
    assert quarantined <= accounted_asins(h.conn)["quarantine"]


def test_a_server_error_counts_a_failure_and_keeps_the_deals(make_harness: HarnessFactory) -> None:
    h = make_harness(**EVERY_DEAL_PEEKED)
    h.sim.set_faults({"error_5xx_next": 1, "endpoints": ["product"]})
    stopped = h.upsert()
    assert stopped.stop_reason == "keepa_error" and stopped.stats.deals_failed > 0
    attempts = h.conn.execute("SELECT MAX(attempts) FROM quarantine").fetchone()[0]
    assert attempts == 1 and count_pending(h.conn) > 0
    h.sim.clear_faults()
    assert h.upsert().stop_reason == "done"
    # A success clears the count: the failure was the request's, not forever the ASIN's.
    left = h.conn.execute("SELECT COUNT(*) FROM quarantine").fetchone()[0]
    assert left == 0 and isinstance(h.conn, sqlite3.Connection)
