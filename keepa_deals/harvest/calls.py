"""Paid Keepa calls under the TokenManager: size, acquire, call, settle.

- Batch sizes follow what the TokenManager admits now, so they follow the refill rate
  Keepa reports (failure mode: a refill rate fixed in code); an estimate is never above capacity
  minus the floor, the most any request can ever be admitted for (failure mode: unreachable wait).
- The run never sleeps for tokens itself: `acquire` waits the computed time within
  HARVEST_INLINE_WAIT_S or says no, and the run stops (failure modes: fixed sleeps, polling while
  waiting, sleeping on a lock).
- Every grant is settled with Keepa's `tokensConsumed`. A timed-out or garbled answer
  may have been charged, so its grant is left to the TokenManager's grant TTL rather
  than settled as free; a call that never reached Keepa is cancelled.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from keepa_deals.harvest.context import HarvestContext
from keepa_deals.harvest.run import StopReason, StopRun, requested_stop
from keepa_deals.keepa.errors import (
    BadRequest,
    InvalidKey,
    KeepaConnectionError,
    KeepaError,
    KeepaTimeout,
    MalformedResponse,
    NotEnoughTokens,
    PaymentRequired,
    ServerError,
)
from keepa_deals.keepa.replies import KeepaReply
from keepa_deals.tokens import Grant, TokenManager
from keepa_deals.tokens.errors import AcquireStopped, TokensUnavailable
from keepa_deals.tokens.status import TokenSnapshot

DEAL_PAGE_TOKENS = 5
PEEK_TOKENS_PER_PRODUCT = 1  # stats, no history, no offers
COMMIT_OFFERS = 20
# offers=20 costs 6 tokens per page of 10 offers found: at most 2 pages. A failed offer
# fetch costs 1. The estimate is the most it can cost; Keepa's tokensConsumed settles it.
COMMIT_TOKENS_PER_PRODUCT = 12
STATS_DAYS = 90
PRODUCTS_PER_REQUEST = 100

R = TypeVar("R", bound=KeepaReply)


def cost_ceiling(tokens: TokenManager) -> int | None:
    """Capacity minus the floor: no request above it can ever be admitted (None: the
    state is not known yet; the first acquire syncs it)."""
    snap = tokens.status()
    if not isinstance(snap, TokenSnapshot):
        return None
    return snap.capacity - snap.floor


def units_admitted(ctx: HarvestContext, cls: str, unit_cost: int, wanted: int) -> int:
    """How many units of `unit_cost` tokens to ask for now, between 1 and `wanted`: what
    the TokenManager would admit at once, or 1 when it would admit nothing yet (then
    `acquire` waits its computed time or stops the run)."""
    ceiling = cost_ceiling(ctx.tokens)
    most = wanted if ceiling is None else max(1, min(wanted, ceiling // unit_cost))
    admitted = ctx.tokens.admissible_cost(cls, most * unit_cost) // unit_cost
    return max(1, min(most, admitted))


def capped_cost(tokens: TokenManager, estimate: int) -> int:
    ceiling = cost_ceiling(tokens)
    return estimate if ceiling is None else max(1, min(estimate, ceiling))


def acquire(ctx: HarvestContext, cls: str, cost: int) -> Grant:
    try:
        return ctx.tokens.acquire(
            cls,
            cost,
            max_wait_s=ctx.settings.harvest_inline_wait_s,
            stop=lambda: requested_stop(ctx) is not None,
        )
    except TokensUnavailable as exc:
        raise StopRun(StopReason.TOKENS, str(exc)) from None
    except AcquireStopped as exc:
        raise requested_stop(ctx) or StopRun(StopReason.STOPPED, str(exc)) from None


def call_keepa(ctx: HarvestContext, grant: Grant, call: Callable[[], R]) -> R:
    """Make the granted call and settle the grant with what Keepa charged. A KeepaError
    is raised again once the grant is dealt with (see `release_failed`)."""
    try:
        reply = call()
    except KeepaError as exc:
        release_failed(ctx.tokens, grant, exc)
        raise
    ctx.tokens.settle(grant, reply.envelope)
    return reply


def release_failed(tokens: TokenManager, grant: Grant, exc: KeepaError) -> None:
    if exc.envelope is not None:
        # Keepa answered: its numbers are the truth (a 429 included, failure mode "an error read as
        # the end").
        tokens.settle(grant, exc.envelope)
    elif isinstance(exc, KeepaTimeout | MalformedResponse):
        # Keepa may have charged it and we cannot know how much: leave the grant in
        # flight; the TokenManager drops it after TOKEN_GRANT_TTL_S, once Keepa's own
        # balance must include it.
        return
    else:
        tokens.cancel(grant)  # never reached Keepa, or refused uncharged


def charged(exc: KeepaError) -> int:
    """Tokens Keepa says a failed request cost (0 when it did not say)."""
    return exc.envelope.tokens_consumed if exc.envelope is not None else 0


def stop_reason_for(exc: KeepaError) -> StopReason:
    if isinstance(exc, NotEnoughTokens):
        return StopReason.HTTP_429
    if isinstance(exc, KeepaTimeout):
        return StopReason.KEEPA_TIMEOUT
    if isinstance(exc, KeepaConnectionError):
        return StopReason.KEEPA_UNREACHABLE
    if isinstance(exc, InvalidKey | PaymentRequired):
        return StopReason.KEEPA_KEY
    return StopReason.KEEPA_ERROR


def blames_request(exc: KeepaError) -> bool:
    """True when the request itself may be why it failed, so its ASINs count a failure
    towards quarantine: an ASIN that breaks every request must not block the queue
    forever. A 429, a refused key or an unreachable Keepa is no product's fault."""
    if isinstance(exc, InvalidKey | PaymentRequired):
        return False
    return isinstance(exc, ServerError | MalformedResponse | KeepaTimeout | BadRequest)


def shares(total: int, parts: int) -> list[int]:
    """`total` tokens split over `parts` products, summing exactly to `total`."""
    if parts <= 0:
        return []
    base, extra = divmod(max(0, total), parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]
