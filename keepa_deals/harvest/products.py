"""Stage 1 and stage 2 product fetches, and what their verdicts write.

A peek (stage 1) asks for `stats` without history or offers: 1 token a product, up to
100 a request. A commit (stage 2) adds the history and `offers=20`, and is only for
products a peek found viable (failure mode "paying to reject": never pay the heavy price only to
reject).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from keepa_deals.evaluation.verdicts import DealSummary, Rejected, Stage
from keepa_deals.harvest.calls import (
    COMMIT_OFFERS,
    COMMIT_TOKENS_PER_PRODUCT,
    PEEK_TOKENS_PER_PRODUCT,
    STATS_DAYS,
    acquire,
    blames_request,
    call_keepa,
    capped_cost,
    charged,
    shares,
    stop_reason_for,
)
from keepa_deals.harvest.context import HarvestContext
from keepa_deals.harvest.run import Run, StopRun
from keepa_deals.keepa.errors import KeepaError
from keepa_deals.keepa.replies import ProductReply
from keepa_deals.store import (
    DealStatus,
    clear_failures,
    record_failure,
    record_rejection,
    rejection_record,
    set_status,
    transaction,
)

MISSING_FROM_REPLY = "missing_from_reply"

# asin -> (product, the tokens its share of the request cost)
Fetched = dict[str, tuple[dict[str, object], int]]


def fetch_products(
    ctx: HarvestContext,
    run: Run,
    cls: str,
    stage: Stage,
    asins: Sequence[str],
    on_failure: Callable[[str], None],
) -> Fetched:
    """One paid /product request for `asins` at `stage` (PEEK or COMMIT).

    A failed request stops the run (StopRun). When the request itself may be to blame,
    `on_failure(reason)` runs first, in a transaction, to count a failure for each of
    its products (quarantine); they are not lost: the caller's items stay where they
    were (pending, or a row to repair).
    """
    unit = COMMIT_TOKENS_PER_PRODUCT if stage is Stage.COMMIT else PEEK_TOKENS_PER_PRODUCT
    grant = acquire(ctx, cls, capped_cost(ctx.tokens, unit * len(asins)))

    def request() -> ProductReply:
        if stage is Stage.COMMIT:
            return ctx.keepa.products(
                asins, stats=STATS_DAYS, history=True, days=STATS_DAYS, offers=COMMIT_OFFERS
            )
        return ctx.keepa.products(asins, stats=STATS_DAYS, history=False)

    try:
        reply = call_keepa(ctx, grant, request)
    except KeepaError as exc:
        run.add_tokens(stage, charged(exc))
        with transaction(ctx.conn):
            if blames_request(exc):
                on_failure(type(exc).__name__)
            run.save()
        raise StopRun(stop_reason_for(exc), str(exc)) from None
    consumed = reply.envelope.tokens_consumed
    run.add_tokens(stage, consumed)
    if stage is Stage.COMMIT:
        run.stats.deals_committed += len(reply.products)
    else:
        run.stats.deals_peeked += len(reply.products)
    # Keepa charges per product returned; the reply does not say which cost what, so
    # the request's cost is split evenly (it is only used to report costs per deal).
    costs = shares(consumed, len(reply.products))
    return {
        str(p["asin"]).upper(): (p, cost) for p, cost in zip(reply.products, costs, strict=True)
    }


def count_failure(ctx: HarvestContext, run: Run, asin: str, domain: int, reason: str) -> bool:
    """One more failure for the ASIN; True when that quarantined it."""
    record = record_failure(
        ctx.conn, asin, domain, reason, ctx.now_s(), ctx.settings.quarantine_after_failures
    )
    run.stats.deals_failed += 1
    return record.quarantined


def record_verdict(
    ctx: HarvestContext,
    run: Run,
    asin: str,
    domain: int,
    rejected: Rejected,
    *,
    deal: DealSummary | None,
    tokens_spent: int,
    status: DealStatus = DealStatus.REJECTED,
) -> None:
    """A rejection: remembered at its price (the deal page's when there is one, so the
    same deal at the same price is not paid for again) and applied to a stored row."""
    now_s = ctx.now_s()
    price = deal.price_cents if deal is not None else rejected.price_cents
    if price is not None:
        record_rejection(
            ctx.conn,
            rejection_record(
                rejected,
                asin=asin,
                domain=domain,
                now_s=now_s,
                deal=deal,
                tokens_spent=tokens_spent,
                run_id=run.id,
            ),
        )
    set_status(ctx.conn, asin, domain, status, str(rejected.reason), now_s)
    clear_failures(ctx.conn, asin, domain)
    run.stats.deals_rejected += 1
