"""The JSON API: `/api/deals`, one deal, status, rejections and runs.

Money is integer cents, times Unix seconds (`*_s`) with an ISO 8601 twin. Bad
parameters answer 422 naming the parameter (FastAPI's `detail[].loc`), never 500.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from pydantic import BaseModel

from keepa_deals.dashboard.costs import MyCosts
from keepa_deals.dashboard.db import reading
from keepa_deals.dashboard.deals import (
    CURSOR_PATTERN,
    MAX_API_PAGE,
    Cursor,
    DealFilters,
    Sort,
    count_new,
    deal_detail,
    deals_page,
)
from keepa_deals.dashboard.params import deal_filters, deal_sort, my_costs
from keepa_deals.dashboard.reports import rejection_summary, runs
from keepa_deals.dashboard.state import Dashboard, dash
from keepa_deals.service.status import gather

router = APIRouter(prefix="/api", tags=["api"])
ASIN_PATTERN = r"^[A-Z0-9]{10}$"


class Deal(BaseModel):
    asin: str
    domain: int
    title: str
    category: str | None
    root_category_id: int | None
    buy_price_cents: int
    sell_price_cents: int
    avg90_price_cents: int | None
    referral_fee_cents: int | None
    closing_fee_cents: int | None
    fba_fee_cents: int | None
    fees_cents: int
    cost_cents: int
    profit_cents: int
    roi_percent: float
    stored_profit_cents: int
    stored_roi_percent: float
    sales_rank: int
    rank_drops_90: int | None
    percent_drop: int | None
    keepa_last_update_s: int | None
    keepa_last_update: str | None
    first_seen_s: int
    first_seen: str | None
    last_seen_s: int
    last_seen: str | None
    last_evaluated_s: int | None
    last_evaluated: str | None
    verdict_age_s: int | None
    source: str
    amazon_url: str
    keepa_url: str


class DealsPage(BaseModel):
    deals: list[Deal]
    next: str | None


class EarlierVerdict(BaseModel):
    price_cents: int
    stage: str
    reason: str
    detail: str | None
    tokens_spent: int
    times: int
    first_rejected_s: int
    rejected_s: int
    rejected: str | None


class DealDetail(Deal):
    status: str
    status_reason: str | None
    deal_created_s: int | None
    tax_cents: int
    rejections: list[EarlierVerdict]


class NewCount(BaseModel):
    count: int
    since_s: int


class RejectionReason(BaseModel):
    stage: str
    reason: str
    deals: int
    times: int
    tokens: int


class RejectionSummary(BaseModel):
    hours: int
    since_s: int
    since: str | None
    reasons: list[RejectionReason]
    total_deals: int
    total_tokens: int


class RunOut(BaseModel):
    id: int
    task: str
    started_s: int
    started: str | None
    ended_s: int | None
    ended: str | None
    tokens_discovery: int
    tokens_peek: int
    tokens_commit: int
    tokens_total: int
    deals_seen: int
    deals_peeked: int
    deals_committed: int
    deals_accepted: int
    deals_rejected: int
    deals_deferred: int
    deals_failed: int
    stop_reason: str | None
    error: str | None


class Runs(BaseModel):
    runs: list[RunOut]


def next_link(request: Request, cursor: Cursor | None) -> str | None:
    """The path and query of the next page: this request's, with the next cursor."""
    if cursor is None:
        return None
    query = [(k, v) for k, v in request.query_params.multi_items() if k != "cursor"]
    return request.url.path + "?" + urlencode([*query, ("cursor", cursor.encode())])


@router.get("/deals", response_model=DealsPage)
def api_deals(
    request: Request,
    d: Annotated[Dashboard, Depends(dash)],
    filters: Annotated[DealFilters, Depends(deal_filters)],
    sort: Annotated[Sort, Depends(deal_sort)],
    costs: Annotated[MyCosts, Depends(my_costs)],
    cursor: Annotated[
        str | None, Query(pattern=CURSOR_PATTERN, description="From `next` of the previous page")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_API_PAGE)] = 50,
) -> dict[str, Any]:
    after = Cursor.decode(cursor) if cursor else None
    with reading(d.settings) as conn:
        page = deals_page(
            conn, filters.with_costs(costs), sort, costs, limit=limit, after=after, now_s=d.now_s()
        )
    return {"deals": page.deals, "next": next_link(request, page.next_cursor)}


@router.get("/deals/new", response_model=NewCount)
def api_new_deals(
    d: Annotated[Dashboard, Depends(dash)],
    filters: Annotated[DealFilters, Depends(deal_filters)],
    costs: Annotated[MyCosts, Depends(my_costs)],
    since_s: Annotated[int, Query(ge=0, le=2**53)],
) -> dict[str, int]:
    """How many deals matching the filters were first seen after `since_s` (at most
    1000): the deals page polls it for its "N new deals" notice."""
    with reading(d.settings) as conn:
        n = count_new(conn, filters.with_costs(costs), costs, since_s, now_s=d.now_s())
    return {"count": n, "since_s": since_s}


@router.get(
    "/deals/{domain}/{asin}",
    response_model=DealDetail,
    responses={404: {"description": "No such deal on the dashboard"}},
)
def api_deal(
    d: Annotated[Dashboard, Depends(dash)],
    costs: Annotated[MyCosts, Depends(my_costs)],
    domain: Annotated[int, Path(ge=1, le=12)],
    asin: Annotated[str, Path(pattern=ASIN_PATTERN)],
) -> dict[str, Any]:
    with reading(d.settings) as conn:
        found = deal_detail(conn, asin, domain, costs, now_s=d.now_s())
    if found is None:
        raise HTTPException(404, f"no accepted deal {asin} on domain {domain}")
    return found


@router.get("/status")
def api_status(d: Annotated[Dashboard, Depends(dash)]) -> dict[str, Any]:
    """The object `keepa-deals status --json` prints."""
    return gather(d.settings)


@router.get("/rejections/summary", response_model=RejectionSummary)
def api_rejections(
    d: Annotated[Dashboard, Depends(dash)],
    hours: Annotated[int, Query(ge=1, le=24 * 90)] = 24,
) -> dict[str, Any]:
    with reading(d.settings) as conn:
        return rejection_summary(conn, hours, d.now_s())


@router.get("/runs", response_model=Runs)
def api_runs(
    d: Annotated[Dashboard, Depends(dash)],
    task: Annotated[Literal["upsert", "backfill"] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    with reading(d.settings) as conn:
        return {"runs": runs(conn, task, limit)}
