"""`pending`: deals fetched but not yet evaluated, so the watermark can move past them
without losing them (failure mode: skipping watermark).

One row per ASIN and domain: adding a deal again keeps the newer record. Taking does
not delete: a crash between taking and storing the verdict must not lose the deal, so
the caller removes what it took in the transaction that stores the verdicts. Removal
is conditional on the record taken, so a newer record that arrived meanwhile survives.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from keepa_deals.evaluation.stages import parse_deal
from keepa_deals.evaluation.verdicts import DealSummary
from keepa_deals.store.deals import Source
from keepa_deals.store.rows import columns, from_row, params, require_int


@dataclass(frozen=True)
class PendingDeal:
    asin: str
    domain: int
    deal_created_s: int  # Keepa's creationDate, converted
    keepa_last_update_s: int
    price_cents: int | None  # the deal page's buy price (None: none shown)
    source: Source
    deal_json: str  # the /deal `dr` record, so evaluation needs no second fetch
    added_s: int  # first put in pending
    updated_s: int  # last replaced by a newer record

    def __post_init__(self) -> None:
        object.__setattr__(self, "source", Source(self.source))
        for name in ("domain", "deal_created_s", "keepa_last_update_s", "added_s", "updated_s"):
            require_int("PendingDeal", name, getattr(self, name), optional=False)
        require_int("PendingDeal", "price_cents", self.price_cents)

    @property
    def deal(self) -> dict[str, Any]:
        """The /deal record as Keepa sent it."""
        parsed: dict[str, Any] = json.loads(self.deal_json)
        return parsed

    @property
    def summary(self) -> DealSummary:
        """The record as stage 0 reads it."""
        return parse_deal(self.deal)

    @classmethod
    def from_deal(
        cls, record: Mapping[str, Any], *, domain: int, source: Source, now_s: int
    ) -> PendingDeal:
        """From a /deal `dr` record, its Keepa minutes converted here (failure mode: wrong
        epoch)."""
        summary = parse_deal(record)
        return cls(
            asin=summary.asin,
            domain=domain,
            deal_created_s=summary.created_s,
            keepa_last_update_s=summary.last_update_s,
            price_cents=summary.price_cents,
            source=source,
            deal_json=json.dumps(record, separators=(",", ":")),
            added_s=now_s,
            updated_s=now_s,
        )


_COLUMNS = columns(PendingDeal)
_ADD = (
    f"INSERT INTO pending ({', '.join(_COLUMNS)}) "  # noqa: S608 - PendingDeal's fields
    f"VALUES ({', '.join(':' + c for c in _COLUMNS)}) "
    "ON CONFLICT (asin, domain) DO UPDATE SET "
    + ", ".join(
        f"{c} = CASE WHEN excluded.deal_created_s >= pending.deal_created_s"
        f" THEN excluded.{c} ELSE pending.{c} END"
        for c in _COLUMNS
        if c not in ("asin", "domain", "added_s", "source")
    )
    + ", added_s = MIN(pending.added_s, excluded.added_s)"
)


def add_pending(conn: sqlite3.Connection, deals: Iterable[PendingDeal]) -> int:
    """Add deals (a repeat keeps the newer record: no duplicates). Returns how many were
    given."""
    rows = [params(d) for d in deals]
    conn.executemany(_ADD, rows)
    return len(rows)


def take_pending(
    conn: sqlite3.Connection,
    limit: int,
    domain: int | None = None,
    *,
    source: Source | None = None,
    after: tuple[int, str] | None = None,
) -> list[PendingDeal]:
    """Up to `limit` pending deals, oldest deal first. They stay pending until
    `remove_pending`.

    `source` keeps only the deals one task found. `after` is the (deal_created_s, asin)
    of the last deal a caller already took: the walk goes on from there, so a deal that
    failed and stays pending is not taken again by the same walk."""
    created, asin = after if after is not None else (None, None)
    rows = conn.execute(
        "SELECT * FROM pending WHERE (:domain IS NULL OR domain = :domain)"
        " AND (:source IS NULL OR source = :source)"
        " AND (:created IS NULL OR (deal_created_s, asin) > (:created, :asin))"
        " ORDER BY deal_created_s, asin LIMIT :limit",
        {
            "domain": domain,
            "source": None if source is None else Source(source).value,
            "created": created,
            "asin": asin,
            "limit": limit,
        },
    ).fetchall()
    return [from_row(PendingDeal, r) for r in rows]


def remove_pending(conn: sqlite3.Connection, taken: Iterable[PendingDeal]) -> int:
    """Remove deals that were taken and dealt with, unless a newer record replaced one
    in the meantime. Returns how many rows went."""
    removed = 0
    for deal in taken:
        removed += conn.execute(
            "DELETE FROM pending WHERE asin = ? AND domain = ? AND deal_created_s <= ?",
            (deal.asin, deal.domain, deal.deal_created_s),
        ).rowcount
    return removed


def is_pending(conn: sqlite3.Connection, asin: str, domain: int) -> bool:
    row = conn.execute(
        "SELECT 1 FROM pending WHERE asin = ? AND domain = ?", (asin, domain)
    ).fetchone()
    return row is not None


def count_pending(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT COUNT(*) FROM pending").fetchone()[0])
