"""The deals pages: the table (`/`), one deal, My costs, Rejections and the CSV export."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterator
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, HTTPException, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse

from keepa_deals.dashboard.api import ASIN_PATTERN
from keepa_deals.dashboard.costs import COOKIE, MAX_COST_CENTS, MAX_TAX_BPS, InvalidCosts, MyCosts
from keepa_deals.dashboard.db import has_table, reading
from keepa_deals.dashboard.deals import (
    CURSOR_PATTERN,
    EXPORT_MAX_ROWS,
    MAX_PAGE,
    MIN_PAGE,
    SORT_COLUMNS,
    Cursor,
    DealFilters,
    Sort,
    categories,
    deal_detail,
    deals_page,
    iter_deals,
    newest_first_seen_s,
)
from keepa_deals.dashboard.history import price_history
from keepa_deals.dashboard.params import deal_filters, deal_sort, my_costs
from keepa_deals.dashboard.reports import rejection_summary
from keepa_deals.dashboard.security import CSRF_FIELD, csrf_ok, csrf_token
from keepa_deals.dashboard.state import CATEGORIES_EVERY_S, Dashboard, dash

router = APIRouter(include_in_schema=False)
COSTS_COOKIE_S = 365 * 86_400
# Columns shown as sortable headers, in table order, with their labels.
SORTABLE = {
    "buy_price_cents": "Buy",
    "sell_price_cents": "Sell",
    "fees_cents": "Fees",
    "profit_cents": "Profit",
    "roi_percent": "ROI",
    "sales_rank": "Rank",
    "rank_drops_90": "Drops 90d",
    "percent_drop": "% drop",
    "first_seen_s": "First seen",
    "last_seen_s": "Last seen",
    "last_evaluated_s": "Verdict",
}
EXPORT_COLUMNS = (
    "asin",
    "domain",
    "title",
    "category",
    "buy_price_cents",
    "sell_price_cents",
    "fees_cents",
    "cost_cents",
    "profit_cents",
    "roi_percent",
    "sales_rank",
    "rank_drops_90",
    "percent_drop",
    "first_seen",
    "last_seen",
    "last_evaluated",
    "amazon_url",
    "keepa_url",
)


def _query(request: Request, **changes: str | None) -> str:
    """This view's query string with `changes` (None removes a parameter)."""
    items = dict(request.query_params.items())
    for key, value in changes.items():
        if value is None:
            items.pop(key, None)
        else:
            items[key] = value
    return urlencode(items)


def category_list(d: Dashboard) -> list[str]:
    """The category filter's choices. Reading them scans every accepted deal (1.3 s at
    400 000): computed at start-up and refreshed in the background, so no visitor of
    the deals page waits for it, not even every CATEGORIES_EVERY_S."""

    def compute() -> list[str]:
        with reading(d.settings) as conn:
            return categories(conn)

    value, _ = d.snapshot("categories", compute, every_s=CATEGORIES_EVERY_S)
    return list(value)


@router.get("/", response_class=HTMLResponse)
def deals_view(
    request: Request,
    d: Annotated[Dashboard, Depends(dash)],
    filters: Annotated[DealFilters, Depends(deal_filters)],
    sort: Annotated[Sort, Depends(deal_sort)],
    costs: Annotated[MyCosts, Depends(my_costs)],
    cursor: Annotated[str | None, Query(pattern=CURSOR_PATTERN)] = None,
    size: Annotated[int, Query(ge=MIN_PAGE, le=MAX_PAGE)] = 50,
) -> Response:
    after = Cursor.decode(cursor) if cursor else None
    now_s = d.now_s()
    with reading(d.settings) as conn:
        page = deals_page(
            conn, filters.with_costs(costs), sort, costs, limit=size, after=after, now_s=now_s
        )
        mark_s = newest_first_seen_s(conn)
    cats = category_list(d)
    sort_links = {
        column: _query(
            request,
            sort=column,
            order="asc" if sort.column == column and sort.order == "desc" else "desc",
            cursor=None,
        )
        for column in SORTABLE
    }
    count_query = _query(request, cursor=None, sort=None, order=None, size=None)
    return d.templates.TemplateResponse(
        request,
        "deals.html",
        {
            "page": page,
            "filters": filters,
            "sort": sort,
            "costs": costs,
            "size": size,
            "categories": cats,
            "sortable": SORTABLE,
            "sort_columns": SORT_COLUMNS,
            "sort_links": sort_links,
            "next_query": (
                _query(request, cursor=page.next_cursor.encode()) if page.next_cursor else None
            ),
            "first_query": _query(request, cursor=None) if cursor else None,
            "export_query": _query(request, cursor=None, size=None),
            "new_count_url": "/api/deals/new?"
            + (count_query + "&" if count_query else "")
            + urlencode({"since_s": mark_s}),
            "newest_query": _query(request, cursor=None, sort="first_seen_s", order="desc"),
        },
    )


@router.get("/deal/{domain}/{asin}", response_class=HTMLResponse)
def deal_view(
    request: Request,
    d: Annotated[Dashboard, Depends(dash)],
    costs: Annotated[MyCosts, Depends(my_costs)],
    domain: Annotated[int, Path(ge=1, le=12)],
    asin: Annotated[str, Path(pattern=ASIN_PATTERN)],
) -> Response:
    now_s = d.now_s()
    with reading(d.settings) as conn:
        deal = deal_detail(conn, asin, domain, costs, now_s=now_s)
        if deal is None:
            raise HTTPException(404, f"no accepted deal {asin} on domain {domain}")
        history = (
            price_history(conn, asin, domain, now_s=now_s)
            if has_table(conn, "deal_history")
            else None
        )
    return d.templates.TemplateResponse(
        request, "deal.html", {"deal": deal, "costs": costs, "history": history}
    )


@router.get("/costs", response_class=HTMLResponse)
def costs_view(
    request: Request,
    d: Annotated[Dashboard, Depends(dash)],
    saved: Annotated[bool, Query()] = False,
) -> Response:
    costs = MyCosts.from_cookie(request.cookies.get(COOKIE))
    return d.templates.TemplateResponse(
        request,
        "costs.html",
        {
            "costs": costs,
            "csrf": csrf_token(d.config, request),
            "csrf_field": CSRF_FIELD,
            "saved": saved,
            "error": None,
            "max_cost": MAX_COST_CENTS,
            "max_tax": MAX_TAX_BPS,
        },
    )


@router.post("/costs", response_class=HTMLResponse)
def costs_save(
    request: Request,
    d: Annotated[Dashboard, Depends(dash)],
    csrf: Annotated[str, Form()] = "",
    prep_fee_cents: Annotated[str, Form()] = "0",
    inbound_shipping_cents: Annotated[str, Form()] = "0",
    sales_tax_bps: Annotated[str, Form()] = "0",
    min_profit_cents: Annotated[str, Form()] = "",
    min_roi_percent: Annotated[str, Form()] = "",
) -> Response:
    if not csrf_ok(d.config, request, csrf):
        raise HTTPException(403, "the form expired or came from another site: reload it")
    try:
        costs = MyCosts(
            prep_fee_cents=_form_int("prep_fee_cents", prep_fee_cents),
            inbound_shipping_cents=_form_int("inbound_shipping_cents", inbound_shipping_cents),
            sales_tax_bps=_form_int("sales_tax_bps", sales_tax_bps),
            min_profit_cents=(
                _form_int("min_profit_cents", min_profit_cents) if min_profit_cents else None
            ),
            min_roi_percent=(
                _form_float("min_roi_percent", min_roi_percent) if min_roi_percent else None
            ),
        )
    except InvalidCosts as exc:
        return d.templates.TemplateResponse(
            request,
            "costs.html",
            {
                "costs": MyCosts.from_cookie(request.cookies.get(COOKIE)),
                "csrf": csrf_token(d.config, request),
                "csrf_field": CSRF_FIELD,
                "saved": False,
                "error": str(exc),
                "max_cost": MAX_COST_CENTS,
                "max_tax": MAX_TAX_BPS,
            },
            422,
        )
    response = RedirectResponse("/costs?saved=true", status_code=303)
    response.set_cookie(
        COOKIE, costs.to_cookie(), max_age=COSTS_COOKIE_S, httponly=True, samesite="strict"
    )
    return response


def _form_int(name: str, raw: str) -> int:
    try:
        return int(raw.strip() or "0")
    except ValueError:
        raise InvalidCosts(name, f"must be a whole number, got {raw[:20]!r}") from None


def _form_float(name: str, raw: str) -> float:
    try:
        value = float(raw.strip())
    except ValueError:
        raise InvalidCosts(name, f"must be a number, got {raw[:20]!r}") from None
    if math.isnan(value) or math.isinf(value):
        raise InvalidCosts(name, "must be a number")
    return value


@router.get("/rejections", response_class=HTMLResponse)
def rejections_view(request: Request, d: Annotated[Dashboard, Depends(dash)]) -> Response:
    now_s = d.now_s()
    with reading(d.settings) as conn:
        day = rejection_summary(conn, 24, now_s)
        week = rejection_summary(conn, 7 * 24, now_s)
    return d.templates.TemplateResponse(request, "rejections.html", {"day": day, "week": week})


@router.get("/export.csv")
def export_csv(
    d: Annotated[Dashboard, Depends(dash)],
    filters: Annotated[DealFilters, Depends(deal_filters)],
    sort: Annotated[Sort, Depends(deal_sort)],
    costs: Annotated[MyCosts, Depends(my_costs)],
) -> StreamingResponse:
    """The filtered view as CSV, streamed in keyset chunks (up to EXPORT_MAX_ROWS)."""
    now_s = d.now_s()
    settings = d.settings
    effective = filters.with_costs(costs)

    def rows() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, EXPORT_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        with reading(settings) as conn:
            for n, deal in enumerate(
                iter_deals(conn, effective, sort, costs, now_s=now_s, max_rows=EXPORT_MAX_ROWS)
            ):
                writer.writerow(_csv_safe(deal))
                if n % 500 == 499:
                    yield buffer.getvalue()
                    buffer.seek(0)
                    buffer.truncate()
        yield buffer.getvalue()

    return StreamingResponse(
        rows(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="deals.csv"'},
    )


def _csv_safe(deal: dict[str, Any]) -> dict[str, Any]:
    """Titles come from Keepa: a leading = + - @ would run as a formula in a spreadsheet."""
    out = dict(deal)
    for key in ("title", "category"):
        value = out.get(key)
        if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
            out[key] = "'" + value
    return out
