"""The deals a user sees: filters, sorts and keyset pages, as SQL built from validated
values only.

Every query reads `deals` under the `dashboard_deals` view's own condition
(DASHBOARD_WHERE, checked equal to the view's by a test) rather than the view, for one
reason: keyset pagination needs a unique, stable tie-breaker that the sort's index
already holds, and that is the table's rowid (an upsert updates a row in place, so its
rowid never changes). `ORDER BY profit_cents DESC, rowid DESC` then walks the partial
index `deals_accepted_by_profit` and stops after one page: no OFFSET, no sort.

Column names and directions come from the fixed tables below, never from the request;
every value is a bound parameter.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal

from keepa_deals.dashboard.costs import MyCosts

DASHBOARD_WHERE = (
    "status = 'accepted' AND title IS NOT NULL AND buy_price_cents IS NOT NULL"
    " AND sell_price_cents IS NOT NULL AND fees_cents IS NOT NULL"
    " AND profit_cents IS NOT NULL AND roi_percent IS NOT NULL AND sales_rank IS NOT NULL"
)
# Amazon's site per Keepa domain id (the view's amazon_url uses the same table).
AMAZON_HOSTS = {
    1: "com",
    2: "co.uk",
    3: "de",
    4: "fr",
    5: "co.jp",
    6: "ca",
    8: "it",
    9: "es",
    10: "in",
    11: "com.mx",
    12: "com.br",
}
SortColumn = Literal[
    "profit_cents",
    "roi_percent",
    "buy_price_cents",
    "sell_price_cents",
    "fees_cents",
    "avg90_price_cents",
    "sales_rank",
    "rank_drops_90",
    "percent_drop",
    "first_seen_s",
    "last_seen_s",
    "last_evaluated_s",
]
SORT_COLUMNS: tuple[str, ...] = SortColumn.__args__  # type: ignore[attr-defined]
# Columns that may be NULL in the view sort as this value (first ascending, last
# descending), so that a cursor always holds a number.
NULLS_AS = -(2**62)
NULLABLE = frozenset(("avg90_price_cents", "rank_drops_90", "percent_drop", "last_evaluated_s"))
SeenWithin = Literal["1h", "24h", "7d", "any"]
SEEN_WITHIN_S: dict[str, int | None] = {"1h": 3600, "24h": 86_400, "7d": 7 * 86_400, "any": None}
Order = Literal["asc", "desc"]
MIN_PAGE, MAX_PAGE, MAX_API_PAGE = 25, 200, 500
EXPORT_MAX_ROWS = 100_000
_ASIN = re.compile(r"^[A-Za-z0-9]{10}$")
# What Cursor.encode writes: a sort value (int, or float repr) and a rowid, each small
# enough for SQLite's 64-bit integers.
CURSOR_PATTERN = r"^-?[0-9]{1,18}(\.[0-9]{1,20})?(e[-+]?[0-9]{1,2})?~[0-9]{1,18}$"
_CURSOR = re.compile(CURSOR_PATTERN)
_COLUMNS = (
    "rowid AS row_id, asin, domain, title, category, root_category_id, buy_price_cents,"
    " sell_price_cents, avg90_price_cents, referral_fee_cents, closing_fee_cents,"
    " fba_fee_cents, fees_cents, profit_cents AS stored_profit_cents,"
    " roi_percent AS stored_roi_percent, sales_rank, rank_drops_90, percent_drop,"
    " keepa_last_update_s, first_seen_s, last_seen_s, last_evaluated_s, source"
)


class BadParameter(ValueError):
    """A request value the dashboard cannot use; the API answers 422 naming `parameter`."""

    def __init__(self, parameter: str, problem: str) -> None:
        self.parameter = parameter
        self.problem = problem
        super().__init__(f"{parameter}: {problem}")


@dataclass(frozen=True)
class DealFilters:
    q: str | None = None
    category: str | None = None
    min_profit_cents: int | None = None
    min_roi_percent: float | None = None
    max_sales_rank: int | None = None
    min_rank_drops_90: int | None = None
    min_percent_drop: int | None = None
    min_buy_cents: int | None = None
    max_buy_cents: int | None = None
    seen_within: SeenWithin = "any"
    domain: int | None = None

    def with_costs(self, costs: MyCosts) -> DealFilters:
        """The user's own floors (My costs) apply where the request sets none."""
        return replace(
            self,
            min_profit_cents=(
                self.min_profit_cents
                if self.min_profit_cents is not None
                else costs.min_profit_cents
            ),
            min_roi_percent=(
                self.min_roi_percent if self.min_roi_percent is not None else costs.min_roi_percent
            ),
        )


@dataclass(frozen=True)
class Sort:
    column: SortColumn = "profit_cents"
    order: Order = "desc"


@dataclass(frozen=True)
class Cursor:
    """Where the next page starts: the last row's sort value and rowid."""

    value: int | float
    row_id: int

    def encode(self) -> str:
        return f"{self.value!r}~{self.row_id}"

    @classmethod
    def decode(cls, raw: str) -> Cursor:
        if not _CURSOR.match(raw):
            raise BadParameter("cursor", "is not a cursor this dashboard made")
        value, _, row_id = raw.partition("~")
        try:
            number: int | float = float(value) if "." in value or "e" in value else int(value)
            return cls(number, int(row_id))
        except ValueError:
            raise BadParameter("cursor", "is not a cursor this dashboard made") from None


@dataclass(frozen=True)
class Page:
    deals: list[dict[str, Any]]
    next_cursor: Cursor | None


def iso(when_s: int | None) -> str | None:
    return None if when_s is None else datetime.fromtimestamp(when_s, UTC).isoformat()


def _sort_expr(column: str, profit: str, roi: str) -> str:
    if column not in SORT_COLUMNS:  # typed as a Literal; checked again before it meets SQL
        raise BadParameter("sort", f"must be one of {', '.join(SORT_COLUMNS)}")
    if column == "profit_cents":
        return profit
    if column == "roi_percent":
        return roi
    return f"COALESCE({column}, {NULLS_AS})" if column in NULLABLE else column


def _where(
    filters: DealFilters, profit: str, roi: str, now_s: float
) -> tuple[list[str], dict[str, Any]]:
    where = [DASHBOARD_WHERE]
    args: dict[str, Any] = {}
    if filters.q:
        args["like"] = "%" + re.sub(r"([\\%_])", r"\\\1", filters.q) + "%"
        if _ASIN.match(filters.q):
            args["asin"] = filters.q.upper()
            where.append("(asin = :asin OR title LIKE :like ESCAPE '\\')")
        else:
            where.append("title LIKE :like ESCAPE '\\'")
    # A unary + keeps a filtered column from being picked as the query's index: without
    # ANALYZE the planner prefers a range on a filter's index and then sorts every row
    # in it (400 ms for a buy-price range at 400 000 accepted deals), where walking the
    # sort's own index stops after one page.
    simple = (
        (filters.category, "category = :category", "category"),
        (filters.min_profit_cents, f"+{profit} >= :min_profit", "min_profit"),
        (filters.min_roi_percent, f"+{roi} >= :min_roi", "min_roi"),
        (filters.max_sales_rank, "+sales_rank <= :max_rank", "max_rank"),
        (filters.min_rank_drops_90, "+rank_drops_90 >= :min_drops", "min_drops"),
        (filters.min_percent_drop, "+percent_drop >= :min_pdrop", "min_pdrop"),
        (filters.min_buy_cents, "+buy_price_cents >= :min_buy", "min_buy"),
        (filters.max_buy_cents, "+buy_price_cents <= :max_buy", "max_buy"),
        (filters.domain, "domain = :domain", "domain"),
    )
    for value, clause, name in simple:
        if value is not None:
            where.append(clause)
            args[name] = value
    within_s = SEEN_WITHIN_S[filters.seen_within]
    if within_s is not None:
        where.append("first_seen_s >= :seen_since")
        args["seen_since"] = int(now_s) - within_s
    return where, args


def _shape(row: sqlite3.Row, costs: MyCosts, now_s: float) -> dict[str, Any]:
    out = dict(row)
    out.pop("sort_key", None)
    out.pop("row_id", None)
    host = AMAZON_HOSTS.get(out["domain"], "com")
    out["amazon_url"] = f"https://www.amazon.{host}/dp/{out['asin']}"
    out["keepa_url"] = f"https://keepa.com/#!product/{out['domain']}-{out['asin']}"
    out["cost_cents"] = costs.cost_cents(out["buy_price_cents"])
    out["profit_cents"] = costs.profit_cents(
        out["sell_price_cents"], out["fees_cents"], out["buy_price_cents"]
    )
    out["roi_percent"] = (
        costs.roi_percent(out["profit_cents"], out["buy_price_cents"])
        if costs.adds_costs
        else out["stored_roi_percent"]
    )
    evaluated = out["last_evaluated_s"]
    out["verdict_age_s"] = None if evaluated is None else max(0, int(now_s) - evaluated)
    for name in ("first_seen_s", "last_seen_s", "last_evaluated_s", "keepa_last_update_s"):
        out[name.removesuffix("_s")] = iso(out[name])
    return out


def _select(
    filters: DealFilters, sort: Sort, costs: MyCosts, now_s: float, after: Cursor | None
) -> tuple[str, dict[str, Any]]:
    profit, roi, cost_args = costs.sql()
    args: dict[str, Any] = dict(cost_args)
    key = _sort_expr(sort.column, profit, roi)
    where, filter_args = _where(filters, profit, roi, now_s)
    args.update(filter_args)
    direction = "DESC" if sort.order == "desc" else "ASC"
    if after is not None:
        op = "<" if sort.order == "desc" else ">"
        # Spelled out rather than as a row value `(key, rowid) < (...)`: the planner
        # turns `key <= :after_key` into a range on the sort's index, expression
        # indexes included, so a deep page seeks instead of scanning from the top.
        where.append(f"{key} {op}= :after_key AND ({key} {op} :after_key OR rowid {op} :after_row)")
        args["after_key"], args["after_row"] = after.value, after.row_id
    # "First seen within" is the one filter known to be selective (a week is 2 % of a
    # year's deals): read that window through its index and sort it, rather than walk
    # the sort's index through every older deal looking for recent ones (all filters
    # together took 3-6 s so at 400 000 accepted deals).
    source = (
        "deals INDEXED BY deals_accepted_by_first_seen" if filters.seen_within != "any" else "deals"
    )
    sql = (
        f"SELECT {_COLUMNS}, {key} AS sort_key FROM {source} WHERE {' AND '.join(where)}"  # noqa: S608
        f" ORDER BY sort_key {direction}, rowid {direction} LIMIT :limit"
    )
    return sql, args


def deals_page(
    conn: sqlite3.Connection,
    filters: DealFilters,
    sort: Sort,
    costs: MyCosts,
    *,
    limit: int,
    after: Cursor | None = None,
    now_s: float,
) -> Page:
    """One page of deals, and the cursor of the next (None on the last page)."""
    sql, args = _select(filters, sort, costs, now_s, after)
    args["limit"] = limit + 1  # one more: is there a next page?
    rows = conn.execute(sql, args).fetchall()
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = Cursor(rows[-1]["sort_key"], rows[-1]["row_id"]) if more and rows else None
    return Page([_shape(r, costs, now_s) for r in rows], next_cursor)


def iter_deals(
    conn: sqlite3.Connection,
    filters: DealFilters,
    sort: Sort,
    costs: MyCosts,
    *,
    now_s: float,
    max_rows: int = EXPORT_MAX_ROWS,
    chunk: int = 1000,
) -> Iterator[dict[str, Any]]:
    """Every matching deal (up to max_rows) in keyset chunks: the export streams them
    without holding one read transaction, or the result, for the whole download."""
    after: Cursor | None = None
    sent = 0
    while sent < max_rows:
        page = deals_page(
            conn, filters, sort, costs, limit=min(chunk, max_rows - sent), after=after, now_s=now_s
        )
        yield from page.deals
        sent += len(page.deals)
        if page.next_cursor is None:
            return
        after = page.next_cursor


def newest_first_seen_s(conn: sqlite3.Connection) -> int:
    """The mark a page remembers: deals first seen after it are new to that page."""
    row = conn.execute(f"SELECT MAX(first_seen_s) FROM deals WHERE {DASHBOARD_WHERE}").fetchone()  # noqa: S608
    return int(row[0] or 0)


def count_new(
    conn: sqlite3.Connection, filters: DealFilters, costs: MyCosts, since_s: int, *, now_s: float
) -> int:
    """Deals matching the filters first seen after `since_s` (at most 1000 counted)."""
    profit, roi, cost_args = costs.sql()
    args: dict[str, Any] = dict(cost_args)
    where, filter_args = _where(filters, profit, roi, now_s)
    args.update(filter_args)
    where.append("first_seen_s > :new_since")
    args["new_since"] = since_s
    sql = f"SELECT COUNT(*) FROM (SELECT 1 FROM deals WHERE {' AND '.join(where)} LIMIT 1000)"  # noqa: S608
    return int(conn.execute(sql, args).fetchone()[0])


def categories(conn: sqlite3.Connection) -> list[str]:
    rows = conn.execute(
        f"SELECT DISTINCT category FROM deals WHERE {DASHBOARD_WHERE} AND category IS NOT NULL"  # noqa: S608
        " ORDER BY category LIMIT 500"
    ).fetchall()
    return [str(r[0]) for r in rows]


def deal_detail(
    conn: sqlite3.Connection, asin: str, domain: int, costs: MyCosts, *, now_s: float
) -> dict[str, Any] | None:
    """A deal as the view shows it, with its status and the ASIN's earlier verdicts."""
    row = conn.execute(
        f"SELECT {_COLUMNS}, status, status_reason, deal_created_s FROM deals"  # noqa: S608
        f" WHERE asin = ? AND domain = ? AND {DASHBOARD_WHERE}",
        (asin, domain),
    ).fetchone()
    if row is None:
        return None
    out = _shape(row, costs, now_s)
    out["tax_cents"] = costs.tax_cents(out["buy_price_cents"])
    out["rejections"] = [
        {**dict(r), "rejected": iso(r["rejected_s"])}
        for r in conn.execute(
            "SELECT price_cents, stage, reason, detail, tokens_spent, times, first_rejected_s,"
            " rejected_s FROM rejections WHERE asin = ? AND domain = ?"
            " ORDER BY rejected_s DESC LIMIT 50",
            (asin, domain),
        ).fetchall()
    ]
    return out
