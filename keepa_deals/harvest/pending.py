"""Evaluating `pending`, oldest deal first, cheapest stage first.

Everything both tasks find goes through `pending`, so a deal fetched and not yet
evaluated survives a crash, a stop for tokens and the watermark moving past it
(failure mode: skipping watermark). A deal leaves `pending` only in the transaction that stores its
verdict; each batch's verdicts, its removals and the run's counts commit together.

Per window of pending deals: stage 0 and the known answers (free); commits for deals an
earlier run peeked; then peeks in batches of what the TokenManager admits now (up to
100 products), each followed by the commits of its survivors in small batches. A
survivor is stored as a `candidate` row with its peek, so a run that stops before its
commit does not make the next run pay for the peek again. A product that fails stays
pending with one more failure counted, until QUARANTINE_AFTER_FAILURES sets it aside.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from keepa_deals.evaluation.stages import commit, peek
from keepa_deals.evaluation.verdicts import PeekPassed, Rejected, Stage
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
from keepa_deals.harvest.triage import triage
from keepa_deals.store import (
    DealStatus,
    PendingDeal,
    Source,
    accepted_deal_row,
    candidate_deal_row,
    clear_failures,
    get_deal,
    remove_pending,
    take_pending,
    transaction,
    upsert_deal,
)
from keepa_deals.store.deal_history import compact_history, save_history

WINDOW = 100


@dataclass(frozen=True)
class Survivor:
    deal: PendingDeal
    peek_tokens: int  # what its peek cost, added to its cost if stage 2 rejects it


def process_pending(ctx: HarvestContext, run: Run, cls: str, source: Source | None = None) -> None:
    """Evaluate pending deals (of `source`, or all) until none is left for this run.

    Stops the run (StopRun) when tokens, time or Keepa say so. Each pending deal is
    taken at most once per call: one that fails stays pending for a later run.
    """
    after: tuple[int, str] | None = None
    while True:
        run.check()
        window = take_pending(ctx.conn, WINDOW, ctx.domain, source=source, after=after)
        if not window:
            return
        after = (window[-1].deal_created_s, window[-1].asin)
        found = triage(ctx, run, window)
        _commit_all(ctx, run, cls, [Survivor(d, 0) for d in found.peeked])
        to_peek = found.to_peek
        while to_peek:
            run.check()
            wanted = min(len(to_peek), PRODUCTS_PER_REQUEST)
            n = units_admitted(ctx, cls, PEEK_TOKENS_PER_PRODUCT, wanted)
            batch, to_peek = to_peek[:n], to_peek[n:]
            _commit_all(ctx, run, cls, _peek(ctx, run, cls, batch))


def _commit_all(ctx: HarvestContext, run: Run, cls: str, survivors: list[Survivor]) -> None:
    while survivors:
        run.check()
        wanted = min(len(survivors), ctx.settings.harvest_commit_batch)
        k = units_admitted(ctx, cls, COMMIT_TOKENS_PER_PRODUCT, wanted)
        chunk, survivors = survivors[:k], survivors[k:]
        _commit(ctx, run, cls, chunk)


def _fail_all(ctx: HarvestContext, run: Run, deals: Sequence[PendingDeal], reason: str) -> None:
    quarantined = [d for d in deals if count_failure(ctx, run, d.asin, d.domain, reason)]
    remove_pending(ctx.conn, quarantined)


def _peek(ctx: HarvestContext, run: Run, cls: str, batch: Sequence[PendingDeal]) -> list[Survivor]:
    fetched = fetch_products(
        ctx,
        run,
        cls,
        Stage.PEEK,
        [d.asin for d in batch],
        lambda reason: _fail_all(ctx, run, batch, reason),
    )
    survivors: list[Survivor] = []
    settled: list[PendingDeal] = []
    with transaction(ctx.conn):
        for deal in batch:
            found = fetched.get(deal.asin.upper())
            if found is None:
                if count_failure(ctx, run, deal.asin, deal.domain, MISSING_FROM_REPLY):
                    settled.append(deal)
                continue
            product, tokens = found
            verdict = peek(product, ctx.settings)
            if isinstance(verdict, Rejected):
                record_verdict(
                    ctx,
                    run,
                    deal.asin,
                    deal.domain,
                    verdict,
                    deal=deal.summary,
                    tokens_spent=tokens,
                )
                settled.append(deal)
            else:
                survivors.append(Survivor(deal, tokens))
                _remember_peek(ctx, deal, verdict)
        remove_pending(ctx.conn, settled)
        run.save()
    return survivors


def _remember_peek(ctx: HarvestContext, deal: PendingDeal, peeked: PeekPassed) -> None:
    """A `candidate` row records the peek (see triage.peeked_already). An accepted row
    keeps its figures until the commit replaces them: the dashboard does not lose a
    deal because it came round again, at the price of a second peek if the run stops
    first."""
    row = get_deal(ctx.conn, deal.asin, deal.domain)
    if row is not None and row.status is DealStatus.ACCEPTED:
        return
    candidate = candidate_deal_row(
        peeked, domain=deal.domain, source=deal.source, now_s=ctx.now_s(), deal=deal.summary
    )
    upsert_deal(ctx.conn, candidate)


def _commit(ctx: HarvestContext, run: Run, cls: str, chunk: Sequence[Survivor]) -> None:
    deals = [s.deal for s in chunk]
    fetched = fetch_products(
        ctx,
        run,
        cls,
        Stage.COMMIT,
        [d.asin for d in deals],
        lambda reason: _fail_all(ctx, run, deals, reason),
    )
    now_s = ctx.now_s()
    settled: list[PendingDeal] = []
    with transaction(ctx.conn):
        for survivor in chunk:
            deal = survivor.deal
            found = fetched.get(deal.asin.upper())
            if found is None:
                if count_failure(ctx, run, deal.asin, deal.domain, MISSING_FROM_REPLY):
                    settled.append(deal)
                continue
            product, tokens = found
            verdict = commit(product, ctx.settings)
            if isinstance(verdict, Rejected) and verdict.reason.transient:
                # Keepa could not fetch the offers: nothing was learnt, so try again
                # later rather than remember a verdict.
                if count_failure(ctx, run, deal.asin, deal.domain, str(verdict.reason)):
                    settled.append(deal)
                continue
            if isinstance(verdict, Rejected):
                record_verdict(
                    ctx,
                    run,
                    deal.asin,
                    deal.domain,
                    verdict,
                    deal=deal.summary,
                    tokens_spent=survivor.peek_tokens + tokens,
                )
            else:
                row = accepted_deal_row(
                    verdict, domain=deal.domain, source=deal.source, now_s=now_s, deal=deal.summary
                )
                upsert_deal(ctx.conn, row)
                save_history(
                    ctx.conn, deal.asin, deal.domain, compact_history(product, now_s), now_s
                )
                clear_failures(ctx.conn, deal.asin, deal.domain)
                run.stats.deals_accepted += 1
            settled.append(deal)
        remove_pending(ctx.conn, settled)
        run.save()
