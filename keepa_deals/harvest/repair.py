"""Stored rows that need a second look: zombies and stale deals.

- A zombie is a live row missing a field the dashboard needs. It gets a peek first and
  the heavy commit only if it is still viable (failure mode: paying to reject); the commit's figures
  complete the row, a rejection takes it off the dashboard.
- A stale row was not seen on a deal page for STALE_AFTER_S. A 1-token peek decides:
  still viable, it counts as seen; otherwise it expires with the reason.

Each is tried once per run; a product Keepa does not return counts a failure, and a
quarantined one expires (reason `quarantined`) instead of being retried forever.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from keepa_deals.evaluation.stages import commit, peek
from keepa_deals.evaluation.verdicts import Rejected, Stage
from keepa_deals.harvest.calls import (
    COMMIT_TOKENS_PER_PRODUCT,
    PEEK_TOKENS_PER_PRODUCT,
    PRODUCTS_PER_REQUEST,
    units_admitted,
)
from keepa_deals.harvest.context import HarvestContext
from keepa_deals.harvest.products import (
    MISSING_FROM_REPLY,
    count_failure,
    fetch_products,
    record_verdict,
)
from keepa_deals.harvest.run import Run
from keepa_deals.store import (
    DASHBOARD_FIELDS,
    DealRow,
    DealStatus,
    accepted_deal_row,
    clear_failures,
    get_deal,
    is_pending,
    is_quarantined,
    mark_seen,
    set_status,
    stale_deals,
    transaction,
    upsert_deal,
    zombie_deals,
)
from keepa_deals.store.deal_history import compact_history, save_history

QUARANTINED = "quarantined"
INCOMPLETE = "incomplete_product"
Finder = Callable[[int], list[DealRow]]


def repair_zombies(ctx: HarvestContext, run: Run, cls: str) -> None:
    def find(limit: int) -> list[DealRow]:
        return zombie_deals(ctx.conn, limit, domain=ctx.domain)

    for batch in _batches(ctx, run, cls, find):
        survivors = _peek_rows(ctx, run, cls, batch, stale=False)
        while survivors:
            run.check()
            wanted = min(len(survivors), ctx.settings.harvest_commit_batch)
            k = units_admitted(ctx, cls, COMMIT_TOKENS_PER_PRODUCT, wanted)
            chunk, survivors = survivors[:k], survivors[k:]
            _commit_rows(ctx, run, cls, chunk)


def rescue_stale(ctx: HarvestContext, run: Run, cls: str) -> None:
    def find(limit: int) -> list[DealRow]:
        rows = stale_deals(ctx.conn, ctx.now_s(), ctx.settings.stale_after_s, limit)
        return [r for r in rows if r.domain == ctx.domain]

    for batch in _batches(ctx, run, cls, find):
        _peek_rows(ctx, run, cls, batch, stale=True)


def _batches(ctx: HarvestContext, run: Run, cls: str, find: Finder) -> Iterator[list[DealRow]]:
    """Peek-sized batches of the rows `find` returns, each row once per run: one that
    failed is still returned by `find`, and is skipped rather than paid for again.
    Rows whose deal is pending are left to the pending path (a peeked `candidate`
    awaits its commit there); quarantined ones expire without a call."""
    tried: set[str] = set()
    while True:
        run.check()
        rows = [r for r in find(PRODUCTS_PER_REQUEST + len(tried)) if r.asin not in tried]
        if not rows:
            return
        tried.update(r.asin for r in rows if is_pending(ctx.conn, r.asin, r.domain))
        quarantined = [r for r in rows if is_quarantined(ctx.conn, r.asin, r.domain)]
        if quarantined:
            with transaction(ctx.conn):
                for row in quarantined:
                    set_status(
                        ctx.conn, row.asin, row.domain, DealStatus.EXPIRED, QUARANTINED, ctx.now_s()
                    )
            tried.update(r.asin for r in quarantined)
        rows = [r for r in rows if r.asin not in tried]
        if not rows:
            continue
        wanted = min(len(rows), PRODUCTS_PER_REQUEST)
        n = units_admitted(ctx, cls, PEEK_TOKENS_PER_PRODUCT, wanted)
        batch = rows[:n]
        tried.update(r.asin for r in batch)
        yield batch


def _fail_rows(ctx: HarvestContext, run: Run, rows: Sequence[DealRow], reason: str) -> None:
    for row in rows:
        if count_failure(ctx, run, row.asin, row.domain, reason):
            set_status(ctx.conn, row.asin, row.domain, DealStatus.EXPIRED, QUARANTINED, ctx.now_s())


def _peek_rows(
    ctx: HarvestContext, run: Run, cls: str, batch: Sequence[DealRow], *, stale: bool
) -> list[tuple[DealRow, int]]:
    fetched = fetch_products(
        ctx,
        run,
        cls,
        Stage.PEEK,
        [r.asin for r in batch],
        lambda reason: _fail_rows(ctx, run, batch, reason),
    )
    survivors: list[tuple[DealRow, int]] = []
    now_s = ctx.now_s()
    with transaction(ctx.conn):
        for row in batch:
            found = fetched.get(row.asin.upper())
            if found is None:
                _fail_rows(ctx, run, [row], MISSING_FROM_REPLY)
                continue
            product, tokens = found
            verdict = peek(product, ctx.settings)
            if isinstance(verdict, Rejected):
                status = DealStatus.EXPIRED if stale else DealStatus.REJECTED
                record_verdict(
                    ctx,
                    run,
                    row.asin,
                    row.domain,
                    verdict,
                    deal=None,
                    tokens_spent=tokens,
                    status=status,
                )
            elif stale:
                mark_seen(ctx.conn, row.asin, row.domain, now_s)
                clear_failures(ctx.conn, row.asin, row.domain)
            else:
                survivors.append((row, tokens))
        run.save()
    return survivors


def _commit_rows(
    ctx: HarvestContext, run: Run, cls: str, chunk: Sequence[tuple[DealRow, int]]
) -> None:
    rows = [row for row, _ in chunk]
    fetched = fetch_products(
        ctx,
        run,
        cls,
        Stage.COMMIT,
        [r.asin for r in rows],
        lambda reason: _fail_rows(ctx, run, rows, reason),
    )
    now_s = ctx.now_s()
    with transaction(ctx.conn):
        for row, peek_tokens in chunk:
            found = fetched.get(row.asin.upper())
            if found is None:
                _fail_rows(ctx, run, [row], MISSING_FROM_REPLY)
                continue
            product, tokens = found
            verdict = commit(product, ctx.settings)
            if isinstance(verdict, Rejected) and verdict.reason.transient:
                _fail_rows(ctx, run, [row], str(verdict.reason))
            elif isinstance(verdict, Rejected):
                record_verdict(
                    ctx,
                    run,
                    row.asin,
                    row.domain,
                    verdict,
                    deal=None,
                    tokens_spent=peek_tokens + tokens,
                )
            else:
                repaired = accepted_deal_row(
                    verdict, domain=row.domain, source=row.source, now_s=now_s
                )
                upsert_deal(ctx.conn, repaired)
                save_history(ctx.conn, row.asin, row.domain, compact_history(product, now_s), now_s)
                run.stats.deals_accepted += 1
                if _incomplete(ctx, repaired):
                    # Keepa itself lacks the field (a title, say): paying again each run
                    # would not help, so it counts towards quarantine, then expiry.
                    _fail_rows(ctx, run, [row], INCOMPLETE)
                else:
                    clear_failures(ctx.conn, row.asin, row.domain)
        run.save()


def _incomplete(ctx: HarvestContext, row: DealRow) -> bool:
    stored = get_deal(ctx.conn, row.asin, row.domain)
    return stored is None or any(getattr(stored, f) is None for f in DASHBOARD_FIELDS)
