"""The free part of evaluating a deal: answers already known, and stage 0.

Before a token is spent on a deal, three answers may already be in the database:

- its ASIN is quarantined (it kept failing);
- it was evaluated at or after this deal appeared (`last_evaluated_s >=` the deal's
  creation time, and a verdict, not a `candidate`): a replayed batch, or the same deal
  seen by both tasks;
- it was rejected at this very price within REJECTION_MEMORY_S.

Both tasks ask `known_outcome` when they put a deal in `pending` and again when they
take it out, so a deal seen twice (a tie on the watermark, a page read again) is never
paid for twice. Then stage 0 rejects, for free, what the deal page already rules out.

A `candidate` row evaluated since the deal appeared was peeked and found viable by a run
that stopped before stage 2: that deal goes straight to stage 2. Without this, a run
that spends its tokens on peeks would re-peek the same survivors run after run and
never get to commit them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from keepa_deals.evaluation.stages import screen_deal
from keepa_deals.harvest.context import HarvestContext
from keepa_deals.harvest.products import record_verdict
from keepa_deals.harvest.run import Run
from keepa_deals.store import (
    DealRow,
    DealStatus,
    PendingDeal,
    get_deal,
    has_rejection_at_price,
    is_quarantined,
    remove_pending,
    transaction,
)


def rejection_cutoff_s(ctx: HarvestContext, now_s: int) -> int | None:
    """Rejections made after this count as known (None: every rejection, forever)."""
    memory_s = ctx.settings.rejection_memory_s
    return None if memory_s == 0 else now_s - memory_s


def known_outcome(ctx: HarvestContext, deal: PendingDeal, now_s: int) -> str | None:
    """Why evaluating `deal` would pay for an answer already known, or None."""
    conn = ctx.conn
    if is_quarantined(conn, deal.asin, deal.domain):
        return "quarantined"
    row = get_deal(conn, deal.asin, deal.domain)
    if row is not None and row.status is not DealStatus.CANDIDATE and _evaluated_since(row, deal):
        return "evaluated"
    if deal.price_cents is not None and has_rejection_at_price(
        conn, deal.asin, deal.domain, deal.price_cents, rejection_cutoff_s(ctx, now_s)
    ):
        return "rejected_at_price"
    return None


def _evaluated_since(row: DealRow, deal: PendingDeal) -> bool:
    return row.last_evaluated_s is not None and row.last_evaluated_s >= deal.deal_created_s


def peeked_already(ctx: HarvestContext, deal: PendingDeal) -> bool:
    """A run that stopped before stage 2 peeked this very deal and found it viable."""
    row = get_deal(ctx.conn, deal.asin, deal.domain)
    return row is not None and row.status is DealStatus.CANDIDATE and _evaluated_since(row, deal)


@dataclass
class Triage:
    """The deals still pending after the free checks, by what they need next."""

    peeked: list[PendingDeal] = field(default_factory=list)  # stage 2
    to_peek: list[PendingDeal] = field(default_factory=list)  # stage 1


def triage(ctx: HarvestContext, run: Run, window: Sequence[PendingDeal]) -> Triage:
    """Settle what is free to settle, in one transaction. The deals left stay in
    `pending` until their verdict is stored."""
    now_s = ctx.now_s()
    out = Triage()
    settled: list[PendingDeal] = []
    with transaction(ctx.conn):
        for deal in window:
            if known_outcome(ctx, deal, now_s) is not None:
                settled.append(deal)
                continue
            if peeked_already(ctx, deal):
                out.peeked.append(deal)
                continue
            summary = deal.summary
            rejected = screen_deal(summary, ctx.settings)
            if rejected is None:
                out.to_peek.append(deal)
                continue
            record_verdict(ctx, run, deal.asin, deal.domain, rejected, deal=summary, tokens_spent=0)
            settled.append(deal)
        remove_pending(ctx.conn, settled)
        run.save()
    return out
