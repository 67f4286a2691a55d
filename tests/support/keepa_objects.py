"""Keepa objects as Keepa sends them (deal records, products, offers), built for the
evaluation tests, with the defaults they are judged against."""

from __future__ import annotations

from typing import Any

from keepa_deals.config import Settings
from keepa_deals.evaluation.verdicts import (
    Rejected,
)

KM = 7_880_000  # a Keepa minute in 2025


S = Settings()  # defaults: 15 % referral, 180c closing, 350c FBA, 399c shipping, 300c, 30 %


def array(**cells: int | None) -> list[int | None]:
    """A 36-wide array indexed by price type, -1 (no data) where not given."""
    out: list[int | None] = [-1] * 36
    for name, value in cells.items():
        out[int(name[1:])] = value
    return out


def deal(
    price: int | None = 1_500, avg90: int | None = 4_000, rank: int | None = 50_000, **extra: Any
) -> dict[str, Any]:
    avg = [array() for _ in range(4)]
    avg[3][2] = -1 if avg90 is None else avg90
    record = {
        "asin": "0123456789",
        "title": "The Quiet Harbour",
        "rootCat": 283155,
        "creationDate": KM,
        "lastUpdate": KM,
        "current": array(p2=-1 if price is None else price, p3=-1 if rank is None else rank),
        "avg": avg,
    }
    record.update(extra)
    return record


def offer(price: int, shipping: int = 399, condition: int = 3, fba: bool = False) -> dict[str, Any]:
    # offerCSV is a history of [time, price, shipping] triples; the last one counts.
    return {
        "offerCSV": [KM - 5_000, price + 777, shipping, KM - 50, price, shipping],
        "condition": condition,
        "isFBA": fba,
    }


def product(
    price: int | None = 1_500,
    avg90: int | None = 4_000,
    rank: int | None = 50_000,
    drops: int | None = 6,
    offers: list[dict[str, Any]] | None = None,
    used_history: list[int] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    stats: dict[str, Any] = {
        "current": array(p2=-1 if price is None else price, p3=-1 if rank is None else rank),
        "avg90": array(p2=-1 if avg90 is None else avg90),
    }
    if drops is not None:
        stats["salesRankDrops90"] = drops
    csv: list[Any] | None = None
    if used_history is not None:
        csv = [None] * 36
        csv[2] = used_history
    p: dict[str, Any] = {
        "asin": "0123456789",
        "title": "The Quiet Harbour",
        "rootCategory": 283155,
        "categoryTree": [
            {"catId": 283155, "name": "Books"},
            {"catId": 17, "name": "Literature & Fiction"},
        ],
        "lastUpdate": KM,
        "csv": csv,
        "stats": stats,
        "offersSuccessful": False,
    }
    if offers is not None:
        p["offers"] = offers
        p["liveOffersOrder"] = list(range(len(offers)))
        p["offersSuccessful"] = True
    p.update(extra)
    return p


def rejected(result: object) -> Rejected:
    assert isinstance(result, Rejected), result
    return result
