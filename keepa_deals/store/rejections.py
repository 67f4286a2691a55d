"""Rejections: what was ruled out, why, at which price. The same ASIN at the same price
is not paid for twice.

The key is (asin, domain, price_cents) where the price is the one known *before*
paying: the deal page's buy price. When that price changes, the deal is worth another
look; while it does not, `has_rejection_at_price` says the answer is already known.
Recording the same rejection again updates the row (`times`, `tokens_spent` add up).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass

from keepa_deals.evaluation.verdicts import DealSummary, Rejected
from keepa_deals.store.rows import from_row, require_int

STAGES = ("free", "peek", "commit")


@dataclass(frozen=True)
class RejectionRecord:
    asin: str
    domain: int
    price_cents: int  # the deal page's buy price when the deal was evaluated
    stage: str  # free | peek | commit (evaluate.Stage values)
    reason: str  # an evaluate.Reason value
    rejected_s: int
    detail: str | None = None
    tokens_spent: int = 0  # what evaluating it cost, for the cost reports
    run_id: int | None = None

    def __post_init__(self) -> None:
        # evaluate.Stage / evaluate.Reason members are stored as their plain values.
        object.__setattr__(self, "stage", str(self.stage))
        object.__setattr__(self, "reason", str(self.reason))
        for name in ("domain", "price_cents", "rejected_s", "tokens_spent"):
            require_int("RejectionRecord", name, getattr(self, name), optional=False)
        if self.stage not in STAGES:
            raise ValueError(f"RejectionRecord.stage must be one of {STAGES}: {self.stage!r}")


@dataclass(frozen=True)
class Rejection:
    """A stored rejection."""

    asin: str
    domain: int
    price_cents: int
    stage: str
    reason: str
    detail: str | None
    tokens_spent: int  # in total, over every time it was rejected at this price
    times: int
    first_rejected_s: int
    rejected_s: int  # the latest time
    run_id: int | None


def rejection_record(
    rejected: Rejected,
    *,
    asin: str,
    domain: int,
    now_s: int,
    deal: DealSummary | None = None,
    tokens_spent: int = 0,
    run_id: int | None = None,
) -> RejectionRecord:
    """The record of an evaluation verdict. The price key is the deal page's price when
    there is a deal record, else the price the stage read (a zombie repair or a stale
    refresh), so a later deal page at that price finds it."""
    if rejected.reason.transient:
        raise ValueError(f"{rejected.reason} is not a verdict: count it as a failure instead")
    price = deal.price_cents if deal is not None else rejected.price_cents
    if price is None:
        raise ValueError(f"{asin}: no price to remember the rejection by ({rejected.reason})")
    return RejectionRecord(
        asin=asin,
        domain=domain,
        price_cents=price,
        stage=rejected.stage,
        reason=rejected.reason,
        rejected_s=now_s,
        detail=rejected.detail,
        tokens_spent=tokens_spent,
        run_id=run_id,
    )


def record_rejection(conn: sqlite3.Connection, rejection: RejectionRecord) -> None:
    r = rejection
    conn.execute(
        "INSERT INTO rejections (asin, domain, price_cents, stage, reason, detail,"
        " tokens_spent, times, first_rejected_s, rejected_s, run_id)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?)"
        " ON CONFLICT (asin, domain, price_cents) DO UPDATE SET"
        " stage = excluded.stage, reason = excluded.reason, detail = excluded.detail,"
        " tokens_spent = rejections.tokens_spent + excluded.tokens_spent,"
        " times = rejections.times + 1,"
        " first_rejected_s = MIN(rejections.first_rejected_s, excluded.rejected_s),"
        " rejected_s = MAX(rejections.rejected_s, excluded.rejected_s),"
        " run_id = excluded.run_id",
        (
            r.asin,
            r.domain,
            r.price_cents,
            r.stage,
            r.reason,
            r.detail,
            r.tokens_spent,
            r.rejected_s,
            r.rejected_s,
            r.run_id,
        ),
    )


def find_rejection(
    conn: sqlite3.Connection, asin: str, domain: int, price_cents: int
) -> Rejection | None:
    row = conn.execute(
        "SELECT * FROM rejections WHERE asin = ? AND domain = ? AND price_cents = ?",
        (asin, domain, price_cents),
    ).fetchone()
    return None if row is None else from_row(Rejection, row)


def has_rejection_at_price(
    conn: sqlite3.Connection,
    asin: str,
    domain: int,
    price_cents: int,
    newer_than_s: int | None = None,
) -> bool:
    """True: this ASIN was rejected at this very price (after `newer_than_s`, if given),
    so evaluating it again would pay for a known answer."""
    found = find_rejection(conn, asin, domain, price_cents)
    return found is not None and (newer_than_s is None or found.rejected_s > newer_than_s)


def rejected_at_prices(
    conn: sqlite3.Connection,
    domain: int,
    asin_prices: Iterable[tuple[str, int]],
    newer_than_s: int | None = None,
) -> set[str]:
    """The ASINs among (asin, price) pairs (a deal page) already rejected at that price."""
    return {
        asin
        for asin, price in asin_prices
        if has_rejection_at_price(conn, asin, domain, price, newer_than_s)
    }
