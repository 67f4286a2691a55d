"""Reading deal pages (5 tokens each) and putting what is new in `pending`.

Keepa's pages are only loosely sorted (neighbours swap), so callers sort each page
themselves. A 429 is an error that stops the run, never an empty page (failure mode: an error read
as the end): the client raises `NotEnoughTokens` and `PageReader` turns it into a stop.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from keepa_deals.harvest.calls import (
    DEAL_PAGE_TOKENS,
    acquire,
    capped_cost,
    charged,
    stop_reason_for,
    units_admitted,
)
from keepa_deals.harvest.context import HarvestContext
from keepa_deals.harvest.run import Run, StopRun
from keepa_deals.harvest.triage import known_outcome
from keepa_deals.infra.closing import Closing
from keepa_deals.keepa.envelope import TokenEnvelope
from keepa_deals.keepa.errors import KeepaError, KeepaTimeout, MalformedResponse
from keepa_deals.store import PendingDeal, Source, add_pending, mark_seen
from keepa_deals.tokens import Grant

DealRecord = dict[str, Any]


def deal_order_key(record: Mapping[str, Any]) -> tuple[int, str]:
    """(creation time, asin): the order both tasks sort pages and walk `pending` in."""
    created = record.get("creationDate")
    return (created if isinstance(created, int) else 0, str(record["asin"]))


def newest_first(records: Iterable[DealRecord]) -> list[DealRecord]:
    return sorted(records, key=deal_order_key, reverse=True)


def as_pending(
    ctx: HarvestContext, records: Iterable[Mapping[str, Any]], source: Source, now_s: int
) -> list[PendingDeal]:
    domain = ctx.domain
    return [PendingDeal.from_deal(r, domain=domain, source=source, now_s=now_s) for r in records]


def stage_deals(
    ctx: HarvestContext,
    run: Run,
    deals: Sequence[PendingDeal],
    now_s: int,
    also_seen: Sequence[PendingDeal] = (),
) -> int:
    """Inside the caller's transaction: put in `pending` the deals whose answer is not
    known yet, and confirm every stored row on the pages (`also_seen` too) as seen: it
    is a live deal, so stale rescue need not pay to check it. Returns how many went to
    `pending`."""
    fresh: list[PendingDeal] = []
    for deal in also_seen:
        mark_seen(ctx.conn, deal.asin, deal.domain, now_s, deal.deal_created_s)
    for deal in deals:
        mark_seen(ctx.conn, deal.asin, deal.domain, now_s, deal.deal_created_s)
        if known_outcome(ctx, deal, now_s) is None:
            fresh.append(deal)
    add_pending(ctx.conn, fresh)
    run.added.update((d.asin, d.domain) for d in fresh)
    return len(fresh)


class PageReader(Closing):
    """Deal pages under grants of up to `pages_per_grant` pages each.

    One grant per page would make every page after the first wait for the class's
    threshold again (a page takes the balance below it), so a multi-page read could
    never finish within the inline wait and a growing gap would stall the upserter
    for good (failure mode: stalled watermark). A grant that covers several pages is admitted once;
    it is settled with the last page's envelope and the summed `tokensConsumed`, so unused
    pages cost nothing.
    """

    def __init__(self, ctx: HarvestContext, run: Run, cls: str, pages_per_grant: int = 1) -> None:
        self.ctx = ctx
        self.run = run
        self.cls = cls
        self.pages_per_grant = max(1, pages_per_grant)
        self._grant: Grant | None = None
        self._pages_left = 0
        self._consumed = 0
        self._last: TokenEnvelope | None = None

    def read(self, page: int, sort_type: int | None = None) -> list[DealRecord]:
        """Page `page` of the deal query (re-sorted by Keepa with `sort_type` if given)."""
        if self._grant is None or self._pages_left == 0:
            self.settle()
            pages = units_admitted(self.ctx, self.cls, DEAL_PAGE_TOKENS, self.pages_per_grant)
            cost = capped_cost(self.ctx.tokens, pages * DEAL_PAGE_TOKENS)
            self._grant = acquire(self.ctx, self.cls, cost)
            self._pages_left = max(1, cost // DEAL_PAGE_TOKENS)
        selection = {**self.ctx.selection, "page": page}
        if sort_type is not None:
            selection["sortType"] = sort_type
        try:
            reply = self.ctx.keepa.deals(selection)
        except KeepaError as exc:
            self.run.add_tokens(None, charged(exc))
            self._release_failed(exc)
            raise StopRun(stop_reason_for(exc), str(exc)) from None
        self._pages_left -= 1
        self._consumed += reply.envelope.tokens_consumed
        self._last = reply.envelope
        self.run.add_tokens(None, reply.envelope.tokens_consumed)
        return reply.deals

    def settle(self) -> None:
        """Close the open grant with what its pages cost (nothing read: cancelled)."""
        grant, self._grant = self._grant, None
        if grant is None:
            return
        if self._last is None:
            self.ctx.tokens.cancel(grant)
        else:
            self.ctx.tokens.settle(grant, replace(self._last, tokens_consumed=self._consumed))
        self._consumed, self._last, self._pages_left = 0, None, 0

    def _release_failed(self, exc: KeepaError) -> None:
        grant, self._grant = self._grant, None
        assert grant is not None
        if exc.envelope is not None:
            # Keepa's answer (a 429 included) carries the newest balance.
            envelope = replace(exc.envelope, tokens_consumed=self._consumed + charged(exc))
            self.ctx.tokens.settle(grant, envelope)
        elif isinstance(exc, KeepaTimeout | MalformedResponse):
            pass  # may have been charged: left to the grant TTL (see calls.release_failed)
        elif self._last is not None:
            self.ctx.tokens.settle(grant, replace(self._last, tokens_consumed=self._consumed))
        else:
            self.ctx.tokens.cancel(grant)
        self._consumed, self._last, self._pages_left = 0, None, 0

    # `with` ends by settling the open grant.
    close = settle
