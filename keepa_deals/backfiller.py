"""The backfiller: everything the upserter does not get to, under class `backfill`.

    summary = backfill_deals(ctx)

In order, each until it is done or the run must stop:

1. `pending`, oldest first (its own deals, then the upserter's leftovers);
2. zombie repair: live rows missing a dashboard field get a peek, and a commit only if
   still viable (story 14);
3. stale rescue: live rows not seen for STALE_AFTER_S get a 1-token refresh before
   anything would drop them;
4. new pages of the deal query from the saved cursor: each page's unknown deals go to
   `pending` in the transaction that saves the next page, then `pending` is evaluated.
   A page that is not full ends the pass: the cursor goes back to page 0 and the next
   pass starts BACKFILL_PASS_PAUSE_S later. The backfill never ends for good (story 22).

A crash resumes where it stopped: the cursor only moves with the page it stands for,
and a failed page (a 429 included, story 17) moves it neither forward nor back to 0.
"""

from __future__ import annotations

from keepa_deals.context import HarvestContext
from keepa_deals.harvest.discovery import PageReader, as_pending, stage_deals
from keepa_deals.harvest.pending import process_pending
from keepa_deals.harvest.repair import repair_zombies, rescue_stale
from keepa_deals.harvest.run import Run, RunSummary, StopReason, run_task
from keepa_deals.keepa_api import DEAL_PAGE_SIZE
from keepa_deals.store import BackfillCursor, Source, get_cursor, set_cursor, transaction
from keepa_deals.store.state import BACKFILL_PAGE, updated_at

TASK = "backfill"


def backfill_deals(ctx: HarvestContext | None = None) -> RunSummary:
    """One backfiller run; returns its summary (also written to `runs`)."""
    return run_task(ctx, TASK, _backfill)


def _backfill(ctx: HarvestContext, run: Run) -> StopReason:
    # Its own deals first: the upserter starts with its own, so the two tasks rarely
    # evaluate the same pending deal at the same time.
    process_pending(ctx, run, TASK, source=Source.BACKFILL)
    process_pending(ctx, run, TASK, source=Source.UPSERT)
    repair_zombies(ctx, run, TASK)
    rescue_stale(ctx, run, TASK)
    while True:
        run.check()
        cursor = get_cursor(ctx.conn)
        if not pass_due(ctx, cursor):
            return StopReason.DONE
        cursor = read_page(ctx, run, cursor)
        process_pending(ctx, run, TASK, source=Source.BACKFILL)
        if cursor.page == 0:
            return StopReason.DONE  # a pass ended; the next starts after the pause


def pass_due(ctx: HarvestContext, cursor: BackfillCursor) -> bool:
    """False while a finished pass waits out BACKFILL_PASS_PAUSE_S: re-reading every
    page costs 5 tokens each and mostly finds what the upserter already has."""
    if cursor.page > 0 or cursor.passes == 0:
        return True
    restarted_s = updated_at(ctx.conn, BACKFILL_PAGE)
    return restarted_s is None or ctx.now_s() - restarted_s >= ctx.settings.backfill_pass_pause_s


def read_page(ctx: HarvestContext, run: Run, cursor: BackfillCursor) -> BackfillCursor:
    """Fetch the cursor's page; store its new deals and the next cursor together."""
    with PageReader(ctx, run, TASK) as reader:
        records = reader.read(cursor.page)
    now_s = ctx.now_s()
    # A short page is the end of the results (a 429 never gets here: it raised).
    after = cursor.next_page() if len(records) >= DEAL_PAGE_SIZE else cursor.restart()
    with transaction(ctx.conn):
        stage_deals(ctx, run, as_pending(ctx, records, Source.BACKFILL, now_s), now_s)
        run.stats.deals_seen += len(records)
        set_cursor(ctx.conn, after, now_s)
        run.save()
    return after
