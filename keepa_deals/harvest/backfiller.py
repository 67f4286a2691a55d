"""The backfiller: everything the upserter does not get to, under class `backfill`.

    summary = backfill_deals(ctx)

First, once a day and free of tokens, history past HISTORY_KEEP_S is pruned
(store/history.py). Then in order, each until it is done or the run must stop:

1. `pending`, oldest first (its own deals, then the upserter's leftovers);
2. zombie repair: live rows missing a dashboard field get a peek, and a commit only if
   still viable (failure mode: paying to reject);
3. stale rescue: live rows not seen for STALE_AFTER_S get a 1-token refresh before
   anything would drop them;
4. new pages of the deal query from the saved cursor: each page's unknown deals go to
   `pending` in the transaction that saves the next page, then `pending` is evaluated.
   A page that is not full ends the pass: the cursor goes back to page 0 and the next
   pass starts BACKFILL_PASS_PAUSE_S later. The backfill never ends for good (failure mode: a
   backfill that ends). An operator's `keepa-deals backfill --restart` (`restart_pass`) starts a
   fresh pass at the next run, without the pause.

A crash resumes where it stopped: the cursor only moves with the page it stands for,
and a failed page (a 429 included, failure mode "an error read as the end") moves it neither forward
nor back to 0.
"""

from __future__ import annotations

import logging
import sqlite3

from keepa_deals.harvest.context import HarvestContext
from keepa_deals.harvest.discovery import PageReader, as_pending, stage_deals
from keepa_deals.harvest.pending import process_pending
from keepa_deals.harvest.repair import repair_zombies, rescue_stale
from keepa_deals.harvest.run import Run, RunSummary, StopReason, run_task
from keepa_deals.keepa.client import DEAL_PAGE_SIZE
from keepa_deals.store import (
    BackfillCursor,
    Source,
    get_cursor,
    get_int,
    set_cursor,
    set_int,
    transaction,
)
from keepa_deals.store.history import prune_due, prune_history
from keepa_deals.store.state import BACKFILL_PAGE, updated_at

log = logging.getLogger(__name__)

TASK = "backfill"
# `system_state` key: when (unix s) an operator asked for a fresh pass. While it is set,
# a cursor on page 0 is due at once: page 0 alone cannot tell "a pass just ended, pause"
# from "start over now". The first page the requested pass reads clears it.
RESTART_REQUESTED = "backfill_restart_requested_s"


def backfill_deals(ctx: HarvestContext | None = None) -> RunSummary:
    """One backfiller run; returns its summary (also written to `runs`)."""
    return run_task(ctx, TASK, _backfill)


def _backfill(ctx: HarvestContext, run: Run) -> StopReason:
    _prune_old_history(ctx)
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


def _prune_old_history(ctx: HarvestContext) -> None:
    """Once a day, free of tokens: runs and rejections past HISTORY_KEEP_S go
    (store/history.py says what stays)."""
    now = ctx.now_s()
    if not prune_due(ctx.conn, now):
        return
    pruned = prune_history(
        ctx.conn, now, ctx.settings.history_keep_s, ctx.settings.rejection_memory_s
    )
    if pruned.runs or pruned.rejections:
        log.info(
            "backfill: pruned %d runs and %d rejections past HISTORY_KEEP_S=%d%s",
            pruned.runs,
            pruned.rejections,
            ctx.settings.history_keep_s,
            "" if pruned.done else "; more at the next run",
        )


def restart_pass(conn: sqlite3.Connection, now_s: int) -> tuple[BackfillCursor, BackfillCursor]:
    """An operator's restart: the cursor goes to page 0 and the next run reads it at
    once, whatever the pass pause. Returns the cursor before and after.

    The pass count stays: it counts passes that reached the end of the results, and the
    abandoned one did not.
    """
    with transaction(conn):
        before = get_cursor(conn)
        after = BackfillCursor(0, before.passes)
        set_cursor(conn, after, now_s)
        set_int(conn, RESTART_REQUESTED, now_s, now_s)
    return before, after


def pass_due(ctx: HarvestContext, cursor: BackfillCursor) -> bool:
    """False while a finished pass waits out BACKFILL_PASS_PAUSE_S: re-reading every
    page costs 5 tokens each and mostly finds what the upserter already has. An
    operator's restart is due at once."""
    if cursor.page > 0 or cursor.passes == 0:
        return True
    if get_int(ctx.conn, RESTART_REQUESTED) is not None:
        return True
    restarted_s = updated_at(ctx.conn, BACKFILL_PAGE)
    return restarted_s is None or ctx.now_s() - restarted_s >= ctx.settings.backfill_pass_pause_s


def read_page(ctx: HarvestContext, run: Run, cursor: BackfillCursor) -> BackfillCursor:
    """Fetch the cursor's page; store its new deals and the next cursor together.
    Returns the cursor now stored."""
    with PageReader(ctx, run, TASK) as reader:
        records = reader.read(cursor.page)
    now_s = ctx.now_s()
    # A short page is the end of the results (a 429 never gets here: it raised).
    after = cursor.next_page() if len(records) >= DEAL_PAGE_SIZE else cursor.restart()
    with transaction(ctx.conn):
        stage_deals(ctx, run, as_pending(ctx, records, Source.BACKFILL, now_s), now_s)
        run.stats.deals_seen += len(records)
        stored = get_cursor(ctx.conn)
        if stored == cursor:
            set_cursor(ctx.conn, after, now_s)
            # A page of the requested pass has been read: from now on the pause applies.
            ctx.conn.execute("DELETE FROM system_state WHERE key = ?", (RESTART_REQUESTED,))
        else:
            # An operator restarted the backfill while this page was read: its deals are
            # still good, but the cursor stays where the operator put it, request and all.
            after = stored
        run.save()
    return after
