"""The upserter's watermark: it ratchets forward while evaluation lags (failure mode: stalled
watermark), never past a deal that was not fetched (failure mode: skipping watermark), in the right
epoch (failure mode: wrong epoch), inclusive at ties, and monotonic across repeated and concurrent
runs."""

from __future__ import annotations

import threading

from keepa_deals.harvest.upserter import update_recent_deals
from keepa_deals.keepa.keepa_time import keepa_minutes_to_unix_s
from keepa_deals.store import advance_watermark, get_watermark, transaction
from tests.support.harness import (
    START_S,
    HarnessFactory,
    accounted_asins,
    all_accounted,
    observable,
)

# Everything passes stage 0, so every deal needs tokens: evaluation cannot keep up.
HUNGRY = {
    "min_profit_cents": 0,
    "min_roi_percent": 0,
    "min_percent_drop": 0,
    "buy_shipping_cents": 0,
    "referral_fee_percent": 0.0,
    "closing_fee_cents": 0,
    "fba_fee_cents": 0,
}
NO_VARIATION_FILTER = {"singleVariation": False}  # so pages match sim.deals_published


def test_watermark_advances_every_run_while_evaluation_lags(
    make_harness: HarnessFactory,
) -> None:
    h = make_harness(deal_rate=4.0, query=NO_VARIATION_FILTER, **HUNGRY)
    previous: int | None = None
    advanced_while_lagging = 0
    looks: list[float] = []
    for n in range(8):
        h.at(n * 900)
        looked_at = h.clock.now()
        summary = h.upsert()
        mark = summary.watermark_s
        assert mark is not None and mark <= h.ctx.now_s()
        if summary.stats.tokens_discovery:
            # Discovery reads from the top down to the watermark (a page or two, never
            # a stale page 0 forever) and moves it, whatever evaluation manages.
            assert summary.stats.tokens_discovery <= 10
            assert previous is None or mark > previous
            looks.append(looked_at)
            if summary.stop_reason == "tokens" and summary.stats.deals_deferred:
                advanced_while_lagging += 1
        else:
            # The run's own evaluation left the balance below the threshold: discovery
            # waits for the next run, the watermark stays (nothing was read past it).
            assert mark == previous
        previous = mark
    assert advanced_while_lagging >= 4
    assert accounted_asins(h.conn)["pending"]  # the backlog waits; nothing is dropped
    assert not observable(h, START_S - 3600, looks[-1], looks) - all_accounted(h.conn)


def test_deals_the_watermark_passed_wait_in_pending(
    make_harness: HarnessFactory,
) -> None:
    h = make_harness(initial_tokens=40, query=NO_VARIATION_FILTER, **HUNGRY)
    first = h.upsert()
    assert first.stop_reason == "tokens" and first.stats.deals_deferred > 0
    assert first.watermark_s is not None
    pending = h.conn.execute("SELECT MAX(deal_created_s) FROM pending").fetchone()[0]
    assert pending <= first.watermark_s  # passed by the watermark, and still here
    looks = [START_S]
    for n in range(1, 12):  # tokens refill; later runs work the backlog off
        h.at(n * 900)
        looks.append(h.clock.now())
        assert h.upsert().stats.tokens_discovery > 0
    assert not observable(h, START_S - 3600, looks[-1], looks) - all_accounted(h.conn)


def test_discovery_cut_short_keeps_the_watermark(make_harness: HarnessFactory) -> None:
    # Tokens for two pages only, a five-hour gap behind the watermark (~5 pages).
    h = make_harness(
        catalogue_size=30_000,
        initial_tokens=10,
        deficit_floor=0,
        threshold_upsert=1,
        recharge_low=1,
        harvest_inline_wait_s=0,
        query=NO_VARIATION_FILTER,
    )
    gap_start_s = int(START_S) - 5 * 3600
    with transaction(h.conn):
        advance_watermark(h.conn, gap_start_s, gap_start_s)
    cut = h.upsert()
    assert cut.stop_reason == "tokens" and cut.stats.tokens_discovery == 10
    assert cut.watermark_s == gap_start_s  # the unread pages lie behind it
    assert len(accounted_asins(h.conn)["pending"]) == 300  # what it read is kept
    h.at(600)
    done = h.upsert()
    assert done.watermark_s is not None and done.watermark_s > gap_start_s
    looks = [START_S + 600]  # the first run's partial read does not count as a look
    assert not observable(h, gap_start_s, START_S + 600, looks) - all_accounted(h.conn)


def test_loosely_sorted_pages_lose_nothing(make_harness: HarnessFactory) -> None:
    # Half of all neighbours swapped, across page boundaries too.
    h = make_harness(catalogue_size=30_000, sort_jitter=0.5, query=NO_VARIATION_FILTER)
    gap_start_s = int(START_S) - 4 * 3600
    with transaction(h.conn):
        advance_watermark(h.conn, gap_start_s, gap_start_s)
    assert h.upsert().stats.tokens_discovery >= 20  # several pages
    assert not observable(h, gap_start_s, START_S, [START_S]) - all_accounted(h.conn)


def test_a_deal_exactly_on_the_watermark_is_neither_lost_nor_paid_twice(
    make_harness: HarnessFactory,
) -> None:
    h = make_harness(query=NO_VARIATION_FILTER, **HUNGRY)
    published = h.sim.deals_published(h.ctx.selection, START_S - 3 * 3600, START_S)
    minute = max(m for _, m in published[: len(published) // 2])
    on_mark = {a for a, m in published if m == minute}
    mark_s = int(keepa_minutes_to_unix_s(minute))
    with transaction(h.conn):
        advance_watermark(h.conn, mark_s, mark_s)
    first = h.upsert()
    assert first.stop_reason == "done"
    assert on_mark <= all_accounted(h.conn)  # not lost
    again = h.upsert()  # the same deals, the watermark tie included, read again
    assert again.stats.deals_seen >= len(on_mark)
    assert (again.stats.tokens_peek, again.stats.tokens_commit) == (0, 0)
    assert again.stats.deals_rejected == again.stats.deals_accepted == 0
    times = h.conn.execute("SELECT MAX(times) FROM rejections").fetchone()[0]
    assert times == 1


def test_deal_times_are_read_in_keepa_s_2011_epoch(make_harness: HarnessFactory) -> None:
    h = make_harness(query=NO_VARIATION_FILTER)
    summary = h.upsert()
    newest = max(m for _, m in h.sim.deals_published(h.ctx.selection, START_S - 3600, START_S))
    assert summary.watermark_s == keepa_minutes_to_unix_s(newest)
    assert START_S - 3600 <= summary.watermark_s <= START_S  # fresh, and not in the future
    created = h.conn.execute(
        "SELECT MIN(deal_created_s), MAX(deal_created_s) FROM ("
        " SELECT deal_created_s FROM pending UNION ALL"
        " SELECT deal_created_s FROM deals WHERE deal_created_s IS NOT NULL)"
    ).fetchone()
    if created[0] is not None:
        assert START_S - 3600 <= created[0] <= created[1] <= START_S


def test_the_watermark_is_monotonic_across_repeated_runs_with_faults(
    make_harness: HarnessFactory,
) -> None:
    h = make_harness(deal_rate=2.0)
    seen: list[int | None] = []
    for n in range(10):
        h.at(n * 900)
        if n % 3 == 1:
            h.sim.set_faults({"storm_429": 1})  # the deal page of this run fails
        summary = h.upsert()
        h.sim.clear_faults()
        seen.append(summary.watermark_s)
        assert get_watermark(h.conn) == summary.watermark_s
    marks = [m for m in seen if m is not None]
    assert marks == sorted(marks) and len(set(marks)) > 3


def test_the_watermark_is_monotonic_across_concurrent_runs(make_harness: HarnessFactory) -> None:
    h = make_harness(deal_rate=2.0)
    workers = 4
    seen: list[list[int]] = [[] for _ in range(workers)]
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        ctx = h.context()  # SQLite connections belong to the thread that opened them
        try:
            for _ in range(2):
                summary = update_recent_deals(ctx)
                assert summary.watermark_s is not None
                seen[i].append(summary.watermark_s)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
        finally:
            ctx.close()

    for round_ in range(3):
        h.at(round_ * 900)
        threads = [threading.Thread(target=worker, args=(i,)) for i in range(workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
    for marks in seen:
        assert marks == sorted(marks)
    assert get_watermark(h.conn) == max(max(m) for m in seen)
