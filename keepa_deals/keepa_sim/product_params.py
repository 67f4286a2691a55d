"""The /product request: its parameters, which items are ASINs or codes, and its price.

Keepa decides a product's price by what it returned (`product_cost`); the parameters
only say what was asked for.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC

from keepa_deals.keepa_sim.selection import DOMAINS
from keepa_deals.keepa_sim.wire import RequestError

MAX_ASINS = 100
_ASIN_CHARS = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ")


@dataclass(frozen=True)
class ProductParams:
    domain: int
    items: tuple[str, ...]
    by_code: bool = False
    stats_days: int | None = None
    stats_range: tuple[int, int] | None = None  # (start, end) unix ms, for a date range
    history: bool = True
    days: int | None = None
    update_hours: int | None = None
    offers: int | None = None
    only_live_offers: bool = False
    rating: bool = False
    buybox: bool = False
    stock: bool = False
    videos: bool = False
    aplus: bool = False


def _opt_int(query: Mapping[str, str], name: str) -> int | None:
    raw = query.get(name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise RequestError(400, f"parameter {name} must be an integer") from None


def parse_product_params(query: Mapping[str, str]) -> ProductParams:
    domain = _opt_int(query, "domain")
    if domain is None:
        raise RequestError(400, "the domain parameter is required")
    if domain not in DOMAINS:
        raise RequestError(405, f"domain {domain} is not a Keepa domain")
    by_code = "asin" not in query and "code" in query
    raw_items = query.get("code" if by_code else "asin", "")
    items = tuple(dict.fromkeys(i.strip().upper() for i in raw_items.split(",") if i.strip()))
    if not items:
        raise RequestError(400, "asin or code parameter is required")
    if len(items) > MAX_ASINS:
        raise RequestError(405, f"{len(items)} products requested: at most {MAX_ASINS}")
    offers = _opt_int(query, "offers")
    if offers is not None and not 20 <= offers <= 100:
        raise RequestError(405, f"offers={offers}: must be within 20..100")
    stats_days, stats_range = parse_stats(query.get("stats"))
    days = _opt_int(query, "days")
    return ProductParams(
        domain=domain,
        items=items,
        by_code=by_code,
        stats_days=stats_days,
        stats_range=stats_range,
        history=query.get("history", "1") != "0",
        days=days if days and days > 0 else None,
        update_hours=_opt_int(query, "update"),
        offers=offers,
        only_live_offers=query.get("only-live-offers") == "1",
        rating=query.get("rating") == "1",
        buybox=query.get("buybox") == "1",
        stock=query.get("stock") == "1",
        videos=query.get("videos") == "1",
        aplus=query.get("aplus") == "1",
    )


def parse_stats(raw: str | None) -> tuple[int | None, tuple[int, int] | None]:
    """`stats`: a day count, or a "start,end" date range (each yyyy-MM-dd or unix ms)."""
    if not raw:
        return None, None
    if raw.isdigit():
        return int(raw) or None, None
    parts = raw.split(",")
    if len(parts) != 2:
        raise RequestError(400, f"stats={raw}: a day count or start,end")
    ends = []
    for part in (p.strip() for p in parts):
        try:
            if part.isdigit():
                ends.append(int(part))
            else:
                day = datetime.datetime.strptime(part, "%Y-%m-%d").replace(tzinfo=UTC)
                ends.append(int(day.timestamp() * 1000))
        except ValueError:
            raise RequestError(400, f"stats={raw}: dates are yyyy-MM-dd or unix ms") from None
    if ends[1] <= ends[0]:
        raise RequestError(400, f"stats={raw}: the range ends before it starts")
    return None, (ends[0], ends[1])


def is_asin(item: str) -> bool:
    """Keepa's shape of an ASIN: ten letters or digits, either B0 and eight more, or an
    ISBN-10 (nine digits and a check digit or X, the check digit right)."""
    if len(item) != 10 or not set(item) <= _ASIN_CHARS:
        return False
    if item.startswith("B0"):
        return True
    if not item[:9].isdigit() or not (item[9].isdigit() or item[9] == "X"):
        return False
    total = sum((10 - i) * int(d) for i, d in enumerate(item[:9]))
    total += 10 if item[9] == "X" else int(item[9])
    return total % 11 == 0


def is_code(item: str) -> bool:
    """A product code (UPC, EAN, ISBN-13): 8 to 14 digits."""
    return item.isdigit() and 8 <= len(item) <= 14


def product_cost(params: ProductParams, offer_pages: int, offers_failed: bool, fresh: bool) -> int:
    """Keepa's /product price for one returned product."""
    if params.offers is not None:
        cost = 1 if offers_failed else 6 * offer_pages + (2 if params.stock else 0)
    else:
        cost = 1 + (2 if params.buybox else 0)
    if params.rating:
        cost += 1
    if params.update_hours == 0 and fresh:
        cost += 1  # a forced refresh of data under an hour old
    return cost
