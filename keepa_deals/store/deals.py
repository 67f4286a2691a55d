"""The `deals` table: one row per ASIN and domain, written idempotently.

Columns are `DealRow`'s fields. An upsert merges, it never duplicates: first seen keeps
the earliest time, last seen the latest, and the evaluation fields are replaced only by
an evaluation at least as recent as the stored one, so replaying a batch (after a crash,
or by both tasks) leaves the same row as running it once.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, fields, replace
from enum import StrEnum
from typing import Literal

from keepa_deals.evaluation.verdicts import Accepted, DealSummary, PeekPassed, ProductFacts
from keepa_deals.store.rows import columns, from_row, params, require_int


class DealStatus(StrEnum):
    CANDIDATE = "candidate"  # stored before stage 2 finished: dashboard fields missing
    ACCEPTED = "accepted"  # passed every stage: shown on the dashboard
    REJECTED = "rejected"  # a later evaluation rejected it (reason in status_reason)
    EXPIRED = "expired"  # not seen for too long and not confirmed by a refresh


class Source(StrEnum):
    UPSERT = "upsert"
    BACKFILL = "backfill"


LIVE_STATUSES = (DealStatus.CANDIDATE, DealStatus.ACCEPTED)
# What the dashboard view needs. A live row missing any of them is a zombie (failure mode: paying to
# reject).
DASHBOARD_FIELDS = (
    "title",
    "buy_price_cents",
    "sell_price_cents",
    "fees_cents",
    "profit_cents",
    "roi_percent",
    "sales_rank",
)


@dataclass(frozen=True)
class DealRow:
    asin: str
    domain: int
    status: DealStatus
    source: Source  # the task that first stored the deal; kept on later upserts
    first_seen_s: int
    last_seen_s: int  # last confirmed live: on a deal page or by a refresh
    status_reason: str | None = None
    title: str | None = None
    root_category_id: int | None = None
    category: str | None = None
    buy_price_cents: int | None = None  # landed: price plus shipping
    sell_price_cents: int | None = None
    avg90_price_cents: int | None = None
    referral_fee_cents: int | None = None
    closing_fee_cents: int | None = None
    fba_fee_cents: int | None = None
    fees_cents: int | None = None
    profit_cents: int | None = None
    roi_percent: float | None = None
    sales_rank: int | None = None
    rank_drops_90: int | None = None
    percent_drop: int | None = None
    deal_created_s: int | None = None  # Keepa's creationDate of the latest deal seen
    keepa_last_update_s: int | None = None
    last_evaluated_s: int | None = None  # None: seen, never evaluated

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", DealStatus(self.status))
        object.__setattr__(self, "source", Source(self.source))
        for f in fields(self):
            if f.name.endswith(("_cents", "_s")) or f.name in ("domain", "sales_rank"):
                optional = f.name not in ("domain", "first_seen_s", "last_seen_s")
                require_int("DealRow", f.name, getattr(self, f.name), optional=optional)


@dataclass(frozen=True)
class DashboardDeal:
    """One row of the `dashboard_deals` view (docs/schema.md)."""

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
    profit_cents: int
    roi_percent: float
    sales_rank: int
    rank_drops_90: int | None
    percent_drop: int | None
    keepa_last_update_s: int | None
    first_seen_s: int
    last_seen_s: int
    last_evaluated_s: int | None
    source: str
    amazon_url: str


def accepted_deal_row(
    accepted: Accepted,
    *,
    domain: int,
    source: Source,
    now_s: int,
    deal: DealSummary | None = None,
) -> DealRow:
    """The row for a deal stage 2 accepted. `deal` is its deal-page record when there is
    one (not for a zombie repair or a stale refresh): it supplies the percent drop and
    Keepa's creationDate."""
    e = accepted.economics
    peeked = _peeked_row(accepted.facts, domain=domain, source=source, now_s=now_s, deal=deal)
    return replace(
        peeked,
        status=DealStatus.ACCEPTED,
        buy_price_cents=e.buy_price_cents,
        sell_price_cents=e.sell_price_cents,
        referral_fee_cents=e.fees.referral_fee_cents,
        closing_fee_cents=e.fees.closing_fee_cents,
        fba_fee_cents=e.fees.fba_fee_cents,
        fees_cents=e.fees.fees_cents,
        profit_cents=e.profit_cents,
        roi_percent=e.roi_percent,
    )


def candidate_deal_row(
    peeked: PeekPassed,
    *,
    domain: int,
    source: Source,
    now_s: int,
    deal: DealSummary | None = None,
) -> DealRow:
    """The row for a deal stage 1 found viable, before stage 2 has run: what the peek
    learnt, no economics (so it is not on the dashboard). `last_evaluated_s` is the
    peek's time: a task that stops before stage 2 can tell that this deal was already
    peeked, and pays only for the commit next time."""
    return _peeked_row(peeked.facts, domain=domain, source=source, now_s=now_s, deal=deal)


def _peeked_row(
    facts: ProductFacts, *, domain: int, source: Source, now_s: int, deal: DealSummary | None
) -> DealRow:
    """What a peek learnt of a product, as a candidate row evaluated at `now_s`."""
    return DealRow(
        asin=facts.asin,
        domain=domain,
        status=DealStatus.CANDIDATE,
        source=source,
        first_seen_s=now_s,
        last_seen_s=now_s,
        title=facts.title or (deal.title if deal else None),
        root_category_id=facts.root_category_id,
        category=facts.category,
        avg90_price_cents=facts.avg90_price_cents,
        sales_rank=facts.sales_rank,
        rank_drops_90=facts.rank_drops_90,
        percent_drop=deal.percent_drop if deal else None,
        deal_created_s=deal.created_s if deal else None,
        keepa_last_update_s=facts.last_update_s,
        last_evaluated_s=now_s,
    )


_COLUMNS = columns(DealRow)
_NEVER_UPDATED = ("asin", "domain", "source")
_DESCRIPTIVE = ("title", "root_category_id", "category")
_SEEN = ("first_seen_s", "last_seen_s", "deal_created_s")
_NEWER = (
    "excluded.last_evaluated_s IS NOT NULL AND (deals.last_evaluated_s IS NULL"
    " OR excluded.last_evaluated_s >= deals.last_evaluated_s)"
)


def _assignment(column: str) -> str:
    if column in _DESCRIPTIVE:
        return f"{column} = COALESCE(excluded.{column}, deals.{column})"
    if column == "first_seen_s":
        return "first_seen_s = MIN(deals.first_seen_s, excluded.first_seen_s)"
    if column in _SEEN:
        # Scalar MAX() is NULL when either side is: coalesce both ways first.
        a, b = f"deals.{column}", f"excluded.{column}"
        return f"{column} = MAX(COALESCE({a}, {b}), COALESCE({b}, {a}))"
    return f"{column} = CASE WHEN {_NEWER} THEN excluded.{column} ELSE deals.{column} END"


_UPSERT = (
    f"INSERT INTO deals ({', '.join(_COLUMNS)}) "  # noqa: S608 - names are DealRow's fields
    f"VALUES ({', '.join(':' + c for c in _COLUMNS)}) "
    "ON CONFLICT (asin, domain) DO UPDATE SET "
    + ", ".join(_assignment(c) for c in _COLUMNS if c not in _NEVER_UPDATED)
)


def upsert_deal(conn: sqlite3.Connection, deal: DealRow) -> None:
    """Insert or merge one deal (see the module doc). Idempotent."""
    conn.execute(_UPSERT, params(deal))


def get_deal(conn: sqlite3.Connection, asin: str, domain: int) -> DealRow | None:
    row = conn.execute(
        "SELECT * FROM deals WHERE asin = ? AND domain = ?", (asin, domain)
    ).fetchone()
    return None if row is None else from_row(DealRow, row)


def mark_seen(
    conn: sqlite3.Connection,
    asin: str,
    domain: int,
    seen_s: int,
    deal_created_s: int | None = None,
) -> bool:
    """The deal is live (on a deal page, or confirmed by a refresh). False: no such row."""
    cur = conn.execute(
        "UPDATE deals SET last_seen_s = MAX(last_seen_s, :seen),"
        " deal_created_s = MAX(COALESCE(deal_created_s, :created), COALESCE(:created,"
        " deal_created_s)) WHERE asin = :asin AND domain = :domain",
        {"seen": seen_s, "created": deal_created_s, "asin": asin, "domain": domain},
    )
    return cur.rowcount == 1


def set_status(
    conn: sqlite3.Connection,
    asin: str,
    domain: int,
    status: DealStatus,
    reason: str | None,
    now_s: int,
) -> bool:
    """Re-evaluation verdict without new figures (a rejection, an expiry)."""
    cur = conn.execute(
        "UPDATE deals SET status = ?, status_reason = ?,"
        " last_evaluated_s = MAX(COALESCE(last_evaluated_s, ?), ?)"
        " WHERE asin = ? AND domain = ?",
        (DealStatus(status).value, reason, now_s, now_s, asin, domain),
    )
    return cur.rowcount == 1


def _live() -> str:
    return "status IN (" + ", ".join(f"'{s.value}'" for s in LIVE_STATUSES) + ")"


def zombie_deals(conn: sqlite3.Connection, limit: int, domain: int | None = None) -> list[DealRow]:
    """Live rows missing a dashboard field, most recently seen first (likeliest still
    a deal, so worth a peek to repair)."""
    missing = " OR ".join(f"{f} IS NULL" for f in DASHBOARD_FIELDS)
    rows = conn.execute(
        f"SELECT * FROM deals WHERE {_live()} AND ({missing})"  # noqa: S608 - constants
        " AND (:domain IS NULL OR domain = :domain) ORDER BY last_seen_s DESC LIMIT :limit",
        {"domain": domain, "limit": limit},
    ).fetchall()
    return [from_row(DealRow, r) for r in rows]


def stale_deals(
    conn: sqlite3.Connection, now_s: int, stale_after_s: int, limit: int
) -> list[DealRow]:
    """Live rows not confirmed for `stale_after_s` seconds, longest unseen first."""
    rows = conn.execute(
        f"SELECT * FROM deals WHERE {_live()} AND last_seen_s <= ?"  # noqa: S608 - constants
        " ORDER BY last_seen_s, asin LIMIT ?",
        (now_s - stale_after_s, limit),
    ).fetchall()
    return [from_row(DealRow, r) for r in rows]


_ORDER = {
    "profit": "profit_cents DESC",
    "roi": "roi_percent DESC",
    "recent": "first_seen_s DESC",
}


def top_deals(
    conn: sqlite3.Connection,
    order: Literal["profit", "roi", "recent"] = "profit",
    limit: int = 50,
) -> list[DashboardDeal]:
    """What a dashboard shows, from the `dashboard_deals` view."""
    rows = conn.execute(
        f"SELECT * FROM dashboard_deals ORDER BY {_ORDER[order]}, asin LIMIT ?",  # noqa: S608
        (limit,),
    ).fetchall()
    return [from_row(DashboardDeal, r) for r in rows]


def count_by_status(conn: sqlite3.Connection) -> dict[DealStatus, int]:
    rows = conn.execute("SELECT status, COUNT(*) FROM deals GROUP BY status").fetchall()
    counts = dict.fromkeys(DealStatus, 0)
    counts.update({DealStatus(r[0]): int(r[1]) for r in rows})
    return counts
