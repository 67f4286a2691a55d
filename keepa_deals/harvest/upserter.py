"""The upserter: new deals since the watermark, then `pending`, under class `upsert`.

    summary = update_recent_deals(ctx)

1. Discovery: page the deal query newest first (5 tokens a page), sort each page
   (Keepa's order is loose), keep deals created at or after the watermark, and stop at
   a page that is not full or holds two deals strictly older than the watermark.
2. In ONE transaction: the new deals go to `pending` and the watermark ratchets to
   the newest deal seen. It moves even though evaluation is far from done, since the
   deals it passes are safe in `pending` (failure mode: stalled watermark); it never moves past a
   deal that was not fetched (failure mode: skipping watermark). Discovery cut short (tokens, a 429,
   an error) keeps what it fetched but leaves the watermark where it was: the unread pages lie
   behind it.
3. Evaluation: `pending` oldest first (this task's deals first) until tokens, time or
   work run out.

The watermark is inclusive: a deal created exactly on it is read again next run and
found already pending or evaluated, so it is neither lost nor paid for twice.
"""

from __future__ import annotations

from keepa_deals.harvest.context import HarvestContext
from keepa_deals.harvest.discovery import PageReader, as_pending, newest_first, stage_deals
from keepa_deals.harvest.pending import process_pending
from keepa_deals.harvest.run import Run, RunSummary, StopReason, StopRun, run_task
from keepa_deals.keepa.client import DEAL_PAGE_SIZE
from keepa_deals.store import PendingDeal, Source, advance_watermark, get_watermark, transaction

TASK = "upsert"
NEWEST_FIRST = 1  # sortType: deal age
# Keepa serves at most 10 000 results of a query: 67 pages of 150.
MAX_PAGES = 67
# Pages one grant covers (see PageReader). Kept small so a grant's calls finish well
# within TOKEN_GRANT_TTL_S even at the read timeout.
PAGES_PER_GRANT = 4
# A deal older than the watermark may have swapped places with a newer neighbour; two
# of them on a page mean every later deal is older (neighbours move one place at most).
OLDER_DEALS_TO_STOP = 2


def update_recent_deals(ctx: HarvestContext | None = None) -> RunSummary:
    """One upserter run; returns its summary (also written to `runs`)."""
    return run_task(ctx, TASK, _upsert)


def _upsert(ctx: HarvestContext, run: Run) -> StopReason:
    discover_recent(ctx, run)
    # Its own deals first, then the backfiller's: each deal at most once a run.
    process_pending(ctx, run, TASK, source=Source.UPSERT)
    process_pending(ctx, run, TASK, source=Source.BACKFILL)
    return StopReason.DONE


def discover_recent(ctx: HarvestContext, run: Run) -> None:
    """Read the deals since the watermark into `pending` and advance the watermark.
    Cut short (StopRun), it stores what it fetched and leaves the watermark alone."""
    now_s = ctx.now_s()
    watermark_s = get_watermark(ctx.conn)
    # First run: only the last UPSERT_FIRST_LOOKBACK_S; older deals are the backfiller's.
    first_s = now_s - ctx.settings.upsert_first_lookback_s
    floor_s = watermark_s if watermark_s is not None else first_s
    found: dict[tuple[str, int], PendingDeal] = {}
    older_seen: list[PendingDeal] = []  # live deals behind the watermark: only marked seen
    newest_s: int | None = None
    try:
        with PageReader(ctx, run, TASK, PAGES_PER_GRANT) as reader:
            for page in range(MAX_PAGES):
                run.check()
                records = newest_first(reader.read(page, sort_type=NEWEST_FIRST))
                deals = as_pending(ctx, records, Source.UPSERT, now_s)
                older = 0
                for deal in deals:
                    created_s = deal.deal_created_s
                    newest_s = created_s if newest_s is None else max(newest_s, created_s)
                    if deal.deal_created_s < floor_s:
                        older += 1
                        older_seen.append(deal)
                        continue
                    key = (deal.asin, deal.domain)
                    if key not in found or found[key].deal_created_s < deal.deal_created_s:
                        found[key] = deal
                if len(records) < DEAL_PAGE_SIZE or older >= OLDER_DEALS_TO_STOP:
                    break
    except StopRun:
        _store(ctx, run, list(found.values()), older_seen, None, now_s)
        raise
    # Never a watermark in the future (failure mode: wrong epoch): a clock ahead of ours, or a bad
    # conversion, must not make every later deal look old.
    mark_s = None if newest_s is None else min(newest_s, now_s)
    _store(ctx, run, list(found.values()), older_seen, mark_s, now_s)


def _store(
    ctx: HarvestContext,
    run: Run,
    found: list[PendingDeal],
    older_seen: list[PendingDeal],
    watermark_s: int | None,
    now_s: int,
) -> None:
    with transaction(ctx.conn):
        stage_deals(ctx, run, found, now_s, also_seen=older_seen)
        run.stats.deals_seen += len(found)
        if watermark_s is not None:
            advance_watermark(ctx.conn, watermark_s, now_s)
        run.save()
