"""The /product endpoint: Keepa product objects and what each one costs.

A product object is rebuilt from the timeline at the simulated minute of the request,
so two requests a minute apart agree unless the product changed in between. What it
costs is decided by what was returned (Keepa's rule), see `product_cost`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from keepa_deals.keepa_sim.catalogue import ProductProfile
from keepa_deals.keepa_sim.product_parts import (
    History,
    Offer,
    live_offers,
    offers_json,
    static_members,
)
from keepa_deals.keepa_sim.selection import DOMAINS
from keepa_deals.keepa_sim.timeline import NO_DATA_ARRAY, NULL_ARRAY, EventState, Timeline
from keepa_deals.keepa_sim.wire import RawJSON, RawMembers, RequestError

MAX_ASINS = 100
_MAX_CACHED = 20_000


@dataclass(frozen=True)
class ProductParams:
    domain: int
    items: tuple[str, ...]
    by_code: bool = False
    stats_days: int | None = None
    history: bool = True
    days: int | None = None
    update_hours: int | None = None
    offers: int | None = None
    only_live_offers: bool = False
    rating: bool = False
    buybox: bool = False
    stock: bool = False


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
    stats_raw = query.get("stats")
    stats_days: int | None = None
    if stats_raw:
        # A day count, or a "start,end" interval which we read as 90 days.
        stats_days = int(stats_raw) if stats_raw.isdigit() else 90
        stats_days = stats_days or None
    days = _opt_int(query, "days")
    return ProductParams(
        domain=domain,
        items=items,
        by_code=by_code,
        stats_days=stats_days,
        history=query.get("history", "1") != "0",
        days=days if days and days > 0 else None,
        update_hours=_opt_int(query, "update"),
        offers=offers,
        only_live_offers=query.get("only-live-offers") == "1",
        rating=query.get("rating") == "1",
        buybox=query.get("buybox") == "1",
        stock=query.get("stock") == "1",
    )


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


def _pair(point: list[int] | None) -> str:
    return "null" if point is None else f"[{point[0]},{point[1]}]"


class ProductBuilder:
    def __init__(self, timeline: Timeline, history_days: int = 14) -> None:
        self.timeline = timeline
        self.history_days = history_days
        self._histories: dict[tuple[int, int, tuple[int, int] | None], History] = {}
        self._static: dict[tuple[int, int], RawMembers] = {}
        self._averages: dict[tuple[int, int], RawJSON] = {}

    def build(
        self, index: int, now_km: int, params: ProductParams, offers_failed: bool = False
    ) -> tuple[dict[str, Any], int]:
        """The product object (values may be pre-rendered RawJSON) and its cost."""
        tl = self.timeline
        p = tl.catalogue.profile(index)
        history = self._history(index, now_km, params.days)
        state = history.states[-1]
        last_update = tl.last_update(index, now_km)
        fresh = now_km - last_update < 60
        if params.update_hours is not None and (
            params.update_hours == 0 or now_km - last_update >= params.update_hours * 60
        ):
            last_update = now_km
        static = self._static.get((index, params.domain))
        if static is None:
            static = self._remember(
                self._static, (index, params.domain), static_members(p, params.domain)
            )
        product: dict[str, Any] = {
            "_static": static,
            "lastUpdate": last_update,
            "lastPriceChange": state.time_km if state.cycle >= 0 else p.tracking_since_km,
            "lastRatingUpdate": last_update if params.rating else p.tracking_since_km,
            "csv": None,
            "offersSuccessful": False,
        }
        if params.history:
            buybox = params.buybox or params.offers is not None
            product["csv"] = RawJSON(history.csv_text(p, params.rating, buybox))
            if p.rank_base > 0:
                product["salesRanks"] = {str(p.root_cat): RawJSON(history.text(3))}
        offers: list[Offer] = []
        pages = 0
        if params.offers is not None:
            if not offers_failed:
                offers, found = live_offers(p, state, params.offers, params.stock)
                pages = max(1, math.ceil(min(found, params.offers) / 10))
                product["offersSuccessful"] = True
            product["offers"] = RawJSON(offers_json(offers, now_km))
            product["liveOffersOrder"] = sorted(range(len(offers)), key=lambda k: offers[k].landed)
        if params.stats_days is not None:
            product["stats"] = self._stats(p, state, history, now_km, params, offers)
        return product, product_cost(params, pages, offers_failed, fresh)

    def _history(self, index: int, now_km: int, days: int | None) -> History:
        """The product's states since the start of the day `days` (or history_days) ago."""
        tl = self.timeline
        span = min(days or self.history_days, self.history_days)
        start = (now_km - span * 1440) // 1440 * 1440
        key = (index, start, tl.latest(index, now_km))
        found = self._histories.get(key)
        if found is None:
            states = [tl.state_at(index, start)]
            states += [tl.state(index, m, c) for m, c in tl.changes(index, start, now_km)]
            found = self._remember(self._histories, key, History(states, start))
        return found

    def _average(self, index: int, days: int) -> RawJSON:
        found = self._averages.get((index, days))
        if found is None:
            text = NO_DATA_ARRAY.format(*self.timeline.averages(index, days))
            found = self._remember(self._averages, (index, days), RawJSON(text))
        return found

    @staticmethod
    def _remember(cache: dict[Any, Any], key: Any, value: Any) -> Any:
        if len(cache) >= _MAX_CACHED:
            cache.clear()
        cache[key] = value
        return value

    def _stats(
        self,
        p: ProductProfile,
        state: EventState,
        history: History,
        now_km: int,
        params: ProductParams,
        offers: list[Offer],
    ) -> dict[str, Any]:
        index = p.index
        rating = [p.tracking_since_km, p.rating] if p.rating else None
        reviews = [p.tracking_since_km, p.review_count] if p.review_count else None
        lows = [_pair(x) for x in (*history.lows, rating, reviews)]
        highs = [_pair(x) for x in (*history.highs, rating, reviews)]
        drops = p.rank_drops_30
        stats: dict[str, Any] = {
            "current": RawJSON(NO_DATA_ARRAY.format(*state.values(p))),
            "avg": self._average(index, params.stats_days or 90),
            "avg30": self._average(index, 30),
            "avg90": self._average(index, 90),
            "avg180": self._average(index, 180),
            "avg365": self._average(index, 365),
            "min": RawJSON(NULL_ARRAY.format(*lows)),
            "max": RawJSON(NULL_ARRAY.format(*highs)),
            "outOfStockPercentage30": RawJSON(
                NO_DATA_ARRAY.format(*history.out_of_stock(30, now_km), -1, -1, -1, -1)
            ),
            "outOfStockPercentage90": RawJSON(
                NO_DATA_ARRAY.format(*history.out_of_stock(90, now_km), -1, -1, -1, -1)
            ),
            "salesRankDrops30": drops,
            "salesRankDrops90": drops * 3,
            "salesRankDrops180": drops * 6,
            "salesRankDrops365": drops * 12,
            "totalOfferCount": state.count_new + state.count_used,
            "buyBoxPrice": state.new,
            "buyBoxShipping": 0 if state.new > 0 else -1,
            "buyBoxIsAmazon": state.amazon > 0,
            "buyBoxIsFBA": state.amazon > 0,
            "buyBoxIsUsed": False,
        }
        if params.offers is not None:
            stats["lastOffersUpdate"] = now_km
            stats["retrievedOfferCount"] = len(offers)
            stats["offerCountFBA"] = sum(1 for o in offers if o.fba)
            stats["offerCountFBM"] = sum(1 for o in offers if not o.fba)
            used = [o.price for o in offers if o.condition >= 2]
            stats["buyBoxUsedPrice"] = min(used) if used else -1
        return stats
