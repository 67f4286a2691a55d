"""Request parameters shared by the API, the pages and the export: one definition, so
the OpenAPI document, the 422 answers and the HTML forms agree."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query, Request

from keepa_deals.dashboard.costs import COOKIE, MAX_COST_CENTS, MAX_TAX_BPS, MyCosts
from keepa_deals.dashboard.deals import (
    DealFilters,
    Order,
    SeenWithin,
    Sort,
    SortColumn,
)

MAX_TEXT = 200
_BIG = 10**9


def deal_filters(
    q: Annotated[
        str | None, Query(max_length=MAX_TEXT, description="Words in the title, or an ASIN")
    ] = None,
    category: Annotated[str | None, Query(max_length=MAX_TEXT)] = None,
    min_profit_cents: Annotated[int | None, Query(ge=-_BIG, le=_BIG)] = None,
    min_roi_percent: Annotated[float | None, Query(ge=-1e6, le=1e6)] = None,
    max_sales_rank: Annotated[int | None, Query(ge=1, le=_BIG)] = None,
    min_rank_drops_90: Annotated[int | None, Query(ge=0, le=_BIG)] = None,
    min_percent_drop: Annotated[int | None, Query(ge=-1000, le=1000)] = None,
    min_buy_cents: Annotated[int | None, Query(ge=0, le=_BIG)] = None,
    max_buy_cents: Annotated[int | None, Query(ge=0, le=_BIG)] = None,
    seen_within: Annotated[SeenWithin, Query(description="First seen within")] = "any",
    domain: Annotated[int | None, Query(ge=1, le=12, description="Keepa domain id")] = None,
) -> DealFilters:
    return DealFilters(
        q=q,
        category=category,
        min_profit_cents=min_profit_cents,
        min_roi_percent=min_roi_percent,
        max_sales_rank=max_sales_rank,
        min_rank_drops_90=min_rank_drops_90,
        min_percent_drop=min_percent_drop,
        min_buy_cents=min_buy_cents,
        max_buy_cents=max_buy_cents,
        seen_within=seen_within,
        domain=domain,
    )


def deal_sort(
    sort: Annotated[SortColumn, Query(description="Column to sort by")] = "profit_cents",
    order: Annotated[Order, Query()] = "desc",
) -> Sort:
    return Sort(sort, order)


def my_costs(
    request: Request,
    prep_fee_cents: Annotated[int | None, Query(ge=0, le=MAX_COST_CENTS)] = None,
    inbound_shipping_cents: Annotated[int | None, Query(ge=0, le=MAX_COST_CENTS)] = None,
    sales_tax_bps: Annotated[int | None, Query(ge=0, le=MAX_TAX_BPS)] = None,
) -> MyCosts:
    """The browser's saved costs (cookie), each overridden by a query parameter."""
    saved = MyCosts.from_cookie(request.cookies.get(COOKIE))
    return MyCosts(
        prep_fee_cents=saved.prep_fee_cents if prep_fee_cents is None else prep_fee_cents,
        inbound_shipping_cents=(
            saved.inbound_shipping_cents
            if inbound_shipping_cents is None
            else inbound_shipping_cents
        ),
        sales_tax_bps=saved.sales_tax_bps if sales_tax_bps is None else sales_tax_bps,
        min_profit_cents=saved.min_profit_cents,
        min_roi_percent=saved.min_roi_percent,
    )
