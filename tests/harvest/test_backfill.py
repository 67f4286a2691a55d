"""The backfiller: it never ends for good (failure mode: a backfill that ends), repairs zombies with
a peek first (failure mode: paying to reject), and refreshes stale deals for a token before they
expire."""

from __future__ import annotations

from typing import Any

import pytest

from keepa_deals.store import (
    BackfillCursor,
    DealStatus,
    count_by_status,
    finish_run,
    get_cursor,
    get_int,
    get_run,
    recent_runs,
    stale_deals,
    start_run,
    transaction,
    zombie_deals,
)
from keepa_deals.store.history import PRUNED_AT
from keepa_deals.store.runs import RunStats
from tests.support.harness import GENEROUS, START_S, HarnessFactory, run_tokens


def test_the_backfill_starts_again_at_page_0_and_never_ends(
    make_harness: HarnessFactory,
) -> None:
    h = make_harness(backfill_pass_pause_s=3600)
    first = h.backfill()
    assert first.stop_reason == "done"
    assert get_cursor(h.conn) == BackfillCursor(page=0, passes=1)  # a short page ended it
    h.at(600)
    paused = h.backfill()
    assert paused.stats.tokens_discovery == 0  # the pass pause, not an end
    h.at(3600)
    again = h.backfill()
    assert again.stats.tokens_discovery > 0 and again.stats.deals_seen > 0
    assert get_cursor(h.conn).passes == 2


def test_an_empty_result_restarts_the_pass_instead_of_stopping(
    make_harness: HarnessFactory,
) -> None:
    # No used book sells between 1 and 2 cents: every page is empty.
    h = make_harness(backfill_pass_pause_s=0, query={"currentRange": [1, 2]})
    for n in range(3):
        h.at(n * 60)
        summary = h.backfill()
        assert summary.stop_reason == "done" and summary.stats.tokens_discovery == 5
    assert get_cursor(h.conn) == BackfillCursor(page=0, passes=3)
    # The same database with a query that matches: the cursor is not stuck.
    ctx = h.context(deal_query_path=h.make_query({}))
    from keepa_deals.harvest.backfiller import backfill_deals

    found = backfill_deals(ctx)
    assert found.stats.deals_seen > 0


def test_zombie_repair_peeks_first_and_commits_only_the_viable(
    make_harness: HarnessFactory,
) -> None:
    h = make_harness(**GENEROUS)
    h.backfill()
    accepted = count_by_status(h.conn)[DealStatus.ACCEPTED]
    assert accepted >= 2
    # Rows that lost their figures, and one for a product that is no deal at all.
    h.conn.execute(
        "UPDATE deals SET sell_price_cents = NULL, profit_cents = NULL, roi_percent = NULL"
        " WHERE status = 'accepted'"
    )
    ordinary = next(
        a
        for a in h.sim.app.products.timeline.catalogue.asins
        if h.conn.execute("SELECT 1 FROM deals WHERE asin = ?", (a,)).fetchone() is None
        and h.conn.execute("SELECT 1 FROM rejections WHERE asin = ?", (a,)).fetchone() is None
    )
    h.conn.execute(
        "INSERT INTO deals (asin, domain, status, source, first_seen_s, last_seen_s)"
        " VALUES (?, 1, 'candidate', 'backfill', ?, ?)",
        (ordinary, int(START_S), int(START_S)),
    )
    zombies = len(zombie_deals(h.conn, 1000))
    assert zombies == accepted + 1
    before = run_tokens(h.conn)
    h.backfill()
    after = run_tokens(h.conn)
    assert zombie_deals(h.conn, 1000) == []
    assert after["peek"] - before["peek"] == zombies  # one peek each
    committed = h.conn.execute("SELECT deals_committed FROM runs ORDER BY id DESC").fetchone()
    assert committed[0] <= accepted  # never for what the peek ruled out
    row = h.conn.execute("SELECT status FROM deals WHERE asin = ?", (ordinary,)).fetchone()
    assert row[0] == "rejected"


def test_stale_deals_get_a_one_token_refresh_before_they_expire(
    make_harness: HarnessFactory,
) -> None:
    h = make_harness(stale_after_s=3600, backfill_pass_pause_s=86_400, **GENEROUS)
    h.backfill()
    live = count_by_status(h.conn)[DealStatus.ACCEPTED]
    assert live > 0
    h.at(2 * 3600)  # nothing read a deal page since
    stale = len(stale_deals(h.conn, int(h.clock.now()), 3600, 1000))
    assert stale == live
    before = run_tokens(h.conn)
    h.backfill()
    after = run_tokens(h.conn)
    assert after["peek"] - before["peek"] == stale and after["commit"] == before["commit"]
    assert stale_deals(h.conn, int(h.clock.now()), 3600, 1000) == []
    counts = count_by_status(h.conn)
    assert counts[DealStatus.ACCEPTED] + counts[DealStatus.EXPIRED] == live


def test_an_operator_restart_starts_a_fresh_pass_at_once_not_after_the_pause(
    make_harness: HarnessFactory,
) -> None:
    from keepa_deals.harvest.backfiller import restart_pass

    h = make_harness(backfill_pass_pause_s=3600)
    h.backfill()
    assert get_cursor(h.conn) == BackfillCursor(page=0, passes=1)  # a pass ended
    h.at(600)
    assert h.backfill().stats.tokens_discovery == 0  # inside the pause
    before, after = restart_pass(h.conn, int(h.clock.now()))
    assert (before, after) == (BackfillCursor(0, 1), BackfillCursor(0, 1))
    h.at(660)
    restarted = h.backfill()  # 2940 s before the pause would have ended
    # The whole pass: a full page 0, then the short page 1 that ends it (5 tokens each).
    assert restarted.stats.tokens_discovery == 10 and restarted.stats.deals_seen > 150
    assert get_cursor(h.conn) == BackfillCursor(page=0, passes=2)  # that pass ended too
    h.at(720)
    assert h.backfill().stats.tokens_discovery == 0  # and the pause applies to it again


def test_a_restart_during_a_page_read_is_not_overwritten_by_that_page(
    make_harness: HarnessFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    from keepa_deals.harvest import backfiller
    from keepa_deals.harvest.discovery import PageReader
    from keepa_deals.store import set_cursor

    h = make_harness(backfill_pass_pause_s=3600)
    set_cursor(h.conn, BackfillCursor(page=3, passes=1), int(h.clock.now()))
    operator = h.context().conn  # the CLI's own connection
    original = PageReader.read

    def read_then_restart(self: PageReader, page: int, *args: Any) -> Any:
        records = original(self, page, *args)
        backfiller.restart_pass(operator, int(h.clock.now()))
        return records

    monkeypatch.setattr(PageReader, "read", read_then_restart)
    h.backfill()  # page 3 is past the end: it would have counted a pass and paused
    assert get_cursor(h.conn) == BackfillCursor(page=0, passes=1)  # the operator's cursor
    monkeypatch.setattr(PageReader, "read", original)
    h.at(60)
    again = h.backfill()  # the requested pass, pages 0 and 1, well inside the pause
    assert again.stats.tokens_discovery == 10 and again.stats.deals_seen > 150
    assert get_cursor(h.conn) == BackfillCursor(page=0, passes=2)


def test_the_backfiller_prunes_old_history_once_a_day(make_harness: HarnessFactory) -> None:
    """HISTORY_KEEP_S: runs past it go at the backfiller's first run of the day, before
    any token is spent, and not again until a day has passed."""
    h = make_harness(history_keep_s=2 * 86_400)
    with transaction(h.conn):
        three_days_ago_s = int(START_S) - 3 * 86_400
        old = start_run(h.conn, "upsert", three_days_ago_s)
        finish_run(h.conn, old, RunStats(), "done", three_days_ago_s)
    h.backfill()
    assert get_run(h.conn, old) is None
    pruned_at = get_int(h.conn, PRUNED_AT)
    assert pruned_at is not None and pruned_at >= START_S
    h.backfill()
    assert get_int(h.conn, PRUNED_AT) == pruned_at  # once a day
    assert len(recent_runs(h.conn, task="backfill")) == 2  # today's runs stay
