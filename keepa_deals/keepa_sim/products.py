"""The /product endpoint: Keepa product objects and what each one costs.

A product object is rebuilt from the timeline at the simulated minute of the request,
so two requests a minute apart agree unless the product changed in between. What it
costs is decided by what was returned (Keepa's rule), see `product_cost`.
"""

from __future__ import annotations

import math
from typing import Any

from keepa_deals.keepa.keepa_time import unix_s_to_keepa_minutes
from keepa_deals.keepa_sim.buybox import (
    buybox_history,
    buybox_seller,
    used_buybox_history,
    used_buybox_seller,
)
from keepa_deals.keepa_sim.catalogue import ProductProfile
from keepa_deals.keepa_sim.hashing import fmix, unit
from keepa_deals.keepa_sim.history import (
    DERIVED,
    ProductHistory,
    Window,
    derived,
    spread,
    spread_points,
)
from keepa_deals.keepa_sim.product_params import (
    ProductParams,
    product_cost,
)
from keepa_deals.keepa_sim.product_parts import (
    Offer,
    aplus_json,
    live_offers,
    offers_json,
    static_members,
    untracked_members,
    videos_json,
)
from keepa_deals.keepa_sim.timeline import EventState, Timeline
from keepa_deals.keepa_sim.wire import RawJSON, RawMembers

_MAX_CACHED = 20_000
_MAX_HISTORIES = 128  # whole histories kept (each a few hundred states)
_DAY_MIN = 1440


class ProductBuilder:
    def __init__(self, timeline: Timeline) -> None:
        self.timeline = timeline
        self._histories: dict[tuple[int, tuple[int, int] | None], ProductHistory] = {}
        self._static: dict[tuple[int, int], RawMembers] = {}

    def history(self, index: int, now_km: int) -> ProductHistory:
        """The product's whole history up to `now_km` (built once per change)."""
        tl = self.timeline
        latest = tl.latest(index, now_km)
        key = (index, latest)
        found = self._histories.get(key)
        if found is None:
            p = tl.catalogue.profile(index)
            since = p.tracking_since_km
            until = latest[0] if latest else since
            states = [tl.state_at(index, since)]
            states += [tl.state(index, m, c) for m, c in tl.changes(index, since, until)]
            found = ProductHistory(p, states)
            if len(self._histories) >= _MAX_HISTORIES:
                self._histories.pop(next(iter(self._histories)))
            self._histories[key] = found
        return found

    def untracked(self, asin: str, params: ProductParams) -> dict[str, Any]:
        """A well-formed ASIN nobody tracks: a product object without data."""
        product: dict[str, Any] = {"_static": untracked_members(asin, params.domain)}
        if params.stats_days is not None or params.stats_range is not None:
            product["stats"] = None
        if params.offers is not None:
            product["offers"] = None
            product["offersSuccessful"] = False
        return product

    def build(
        self, index: int, now_km: int, params: ProductParams, offers_failed: bool = False
    ) -> tuple[dict[str, Any], int]:
        """The product object (values may be pre-rendered RawJSON) and its cost."""
        tl = self.timeline
        p = tl.catalogue.profile(index)
        history = self.history(index, now_km)
        state = history.states[-1]
        last_update = tl.last_update(index, now_km)
        fresh = now_km - last_update < 60
        if params.update_hours is not None and (
            params.update_hours == 0 or now_km - last_update >= params.update_hours * 60
        ):
            last_update = now_km
        static = self._static.get((index, params.domain))
        if static is None:
            if len(self._static) >= _MAX_CACHED:
                self._static.clear()
            static = self._static[(index, params.domain)] = static_members(p, params.domain)
        with_offers = params.offers is not None
        start_km = 0
        if params.days:
            start_km = (now_km - params.days * _DAY_MIN) // _DAY_MIN * _DAY_MIN
        first = history.first_index(start_km)
        product: dict[str, Any] = {
            "_static": static,
            "lastUpdate": last_update,
            "lastPriceChange": state.time_km if state.cycle != -1 else p.tracking_since_km,
            "lastRatingUpdate": last_update if params.rating else p.tracking_since_km,
            "lastSoldUpdate": last_update if p.monthly_sold else None,
            "lastStockUpdate": now_km if params.stock and with_offers else 0,
            "csv": None,
            "reviews": None,
        }
        if params.history:
            product["csv"] = RawJSON(
                history.csv_text(
                    start_km,
                    rating=params.rating,
                    buybox=params.buybox,
                    offers=with_offers,
                    now_km=now_km,
                )
            )
            product["salesRanks"] = (
                {str(p.root_cat): RawJSON(history.series_text(first, 3))}
                if p.rank_base > 0
                else None
            )
        if params.rating and p.review_count:
            since = history.times[first]
            product["reviews"] = {
                "lastUpdate": last_update,
                "ratingCount": [since, max(1, p.review_count // 2), last_update, p.review_count],
                "reviewCount": [
                    since,
                    max(1, p.review_count // 3),
                    last_update,
                    p.review_count // 2,
                ],
            }
        if params.videos:
            product["videos"] = RawJSON(videos_json(p))
        if params.aplus:
            product["aPlus"] = RawJSON(aplus_json(p))
        offers: list[Offer] = []
        pages = 0
        if with_offers or params.buybox:
            product["buyBoxUsedHistory"] = used_buybox_history(p, history.states[first:])
        if with_offers:
            assert params.offers is not None
            product["offersSuccessful"] = False
            if not offers_failed:
                offers, found = live_offers(p, state, params.offers, params.stock)
                pages = max(1, math.ceil(min(found, params.offers) / 10))
                product["offersSuccessful"] = True
            product["offers"] = RawJSON(offers_json(offers, now_km))
            product["liveOffersOrder"] = sorted(range(len(offers)), key=lambda k: offers[k].landed)
            product["buyBoxSellerIdHistory"] = buybox_history(p, history.states[first:])
            product["buyBoxEligibleOfferCounts"] = eligible_counts(offers)
            product["isRedirectASIN"] = False
            product["isSNS"] = unit(fmix(p.key ^ 0x5A5), 0) < 0.2
            product["frequentlyBoughtTogether"] = self._bought_together(index)
        if params.stats_days is not None or params.stats_range is not None:
            product["stats"] = self._stats(p, state, history, now_km, params, offers)
        return product, product_cost(params, pages, offers_failed, fresh)

    def _bought_together(self, index: int) -> list[str] | None:
        catalogue = self.timeline.catalogue
        h = fmix(catalogue.keys[index] ^ 0xFB7)
        if unit(h, 0) < 0.3 or catalogue.size < 3:
            return None
        picks = {(index + 1 + (h >> 16) % (catalogue.size - 1)) % catalogue.size}
        if unit(h, 32) < 0.5:
            picks.add((index + 1 + (h >> 40) % (catalogue.size - 1)) % catalogue.size)
        return [catalogue.asins[i] for i in sorted(picks)]

    def _stats(
        self,
        p: ProductProfile,
        state: EventState,
        history: ProductHistory,
        now_km: int,
        params: ProductParams,
        offers: list[Offer],
    ) -> dict[str, Any]:
        if params.stats_range is not None:
            start_ms, end_ms = params.stats_range
            interval = history.window(
                unix_s_to_keepa_minutes(start_ms / 1000), unix_s_to_keepa_minutes(end_ms / 1000)
            )
        else:
            interval = history.window(now_km - (params.stats_days or 90) * _DAY_MIN, now_km)
        windows = {d: history.window(now_km - d * _DAY_MIN, now_km) for d in (30, 90, 180, 365)}
        rating = p.rating if p.rating else -1
        reviews = p.review_count if p.review_count else -1

        def values(row: tuple[int, ...]) -> list[int]:
            out = spread(row, -1)
            out[16], out[17] = rating, reviews
            return out

        def points(row: tuple[tuple[int, int] | None, ...]) -> list[list[int] | None]:
            out = spread_points(row)
            if p.rating:
                out[16] = [p.tracking_since_km, p.rating]
            if p.review_count:
                out[17] = [p.tracking_since_km, p.review_count]
            return out

        def shares(window: Window) -> list[int]:
            out = [-1] * len(values(window.avg))
            for column, (price_type, _) in enumerate(BASE_TYPES):
                out[price_type] = window.oos_pct[column]
            for price_type, (column, _, _) in DERIVED.items():
                out[price_type] = window.oos_pct[column]
            return out

        current = values(tuple(state[f] for _, f in BASE_TYPES))
        low_all = points(history.all_low)
        low_90 = points(windows[90].low)
        drops = p.rank_drops_30
        used_bb = derived(32, state.used)
        used_seller = used_buybox_seller(p, state)
        stats: dict[str, Any] = {
            "current": current,
            "avg": values(interval.avg),
            "avg30": values(windows[30].avg),
            "avg90": values(windows[90].avg),
            "avg180": values(windows[180].avg),
            "avg365": values(windows[365].avg),
            "atIntervalStart": values(interval.at_start),
            "min": low_all,
            "max": points(history.all_high),
            "minInInterval": points(interval.low),
            "maxInInterval": points(interval.high),
            "isLowest": _is_lowest(current, low_all),
            "isLowest90": _is_lowest(current, low_90),
            "outOfStockPercentageInInterval": shares(interval),
            "outOfStockPercentage30": shares(windows[30]),
            "outOfStockPercentage90": shares(windows[90]),
            "outOfStockCountAmazon30": _went_out(history, now_km - 30 * _DAY_MIN),
            "outOfStockCountAmazon90": _went_out(history, now_km - 90 * _DAY_MIN),
            "deltaPercent90_monthlySold": 0,
            "lightningDealInfo": None,
            "salesRankDrops30": drops,
            "salesRankDrops90": drops * 3,
            "salesRankDrops180": drops * 6,
            "salesRankDrops365": drops * 12,
            "totalOfferCount": state.count_new + state.count_used,
            "lastBuyBoxUpdate": state.time_km,
            "buyBoxPrice": state.new if state.new > 0 else -2,
            "buyBoxShipping": 0 if state.new > 0 else -2,
            "buyBoxSellerId": buybox_seller(p, state) if state.new > 0 else "-2",
            "buyBoxIsAmazon": state.amazon > 0,
            "buyBoxIsFBA": state.amazon > 0 or state.new > 0,
            "buyBoxIsUsed": False,
            "buyBoxIsUnqualified": state.new <= 0,
            "buyBoxIsShippable": state.new > 0,
            "buyBoxIsPreorder": False,
            "buyBoxIsBackorder": False,
            "buyBoxIsMAP": False,
            "buyBoxMinOrderQuantity": -1,
            "buyBoxMaxOrderQuantity": -1,
            "buyBoxAvailabilityMessage": "In Stock." if state.new > 0 else None,
            "buyBoxShippingCountry": "US" if state.new > 0 else None,
            "buyBoxIsPrimeExclusive": False,
            "buyBoxIsFreeShippingEligible": state.new > 0,
            "buyBoxIsPrimeEligible": state.new > 0,
            "buyBoxIsPrimePantry": False,
            "buyBoxSavingBasis": None,
            "buyBoxSavingBasisType": None,
            "buyBoxSavingPercentage": None,
            "buyBoxStats": _buybox_stats(history, interval, state, buybox_seller(p, state)),
            "buyBoxUsedPrice": used_bb,
            "buyBoxUsedShipping": 0 if used_bb > 0 else -1,
            "buyBoxUsedSellerId": used_seller,
            "buyBoxUsedIsFBA": True if used_seller else None,
            "buyBoxUsedCondition": 4 if used_seller else None,
            "buyBoxUsedStats": (
                {used_seller: _stats_object(interval.avg[2], state.count_new, True, now_km)}
                if used_seller
                else None
            ),
            "isAddonItem": False,
        }
        if params.offers is not None:
            fba = [o for o in offers if o.fba and o.condition == 1]
            fbm = [o for o in offers if not o.fba and o.condition == 1]
            stats["lastOffersUpdate"] = now_km
            stats["retrievedOfferCount"] = len(offers)
            stats["offerCountFBA"] = sum(1 for o in offers if o.fba)
            stats["offerCountFBM"] = sum(1 for o in offers if not o.fba)
            stats["sellerIdsLowestFBA"] = _lowest_sellers(fba)
            stats["sellerIdsLowestFBM"] = _lowest_sellers(fbm)
            stock = params.stock
            stats["stockAmazon"] = _stock(offers, lambda o: o.amazon) if stock else -2
            stats["stockBuyBox"] = (
                _stock(offers, lambda o: o.condition == 1) if stock and state.new > 0 else -2
            )
            stats["stockPerCondition3rdFBA"] = _stock_by_condition(offers, True)
            stats["stockPerConditionFBM"] = _stock_by_condition(offers, False)
        return stats


BASE_TYPES = ((0, 2), (1, 3), (2, 4), (3, 5), (11, 6), (12, 7))


def _is_lowest(current: list[int], lows: list[list[int] | None]) -> list[bool]:
    return [
        low is not None and 0 < value <= low[1] for value, low in zip(current, lows, strict=True)
    ]


def _went_out(history: ProductHistory, start_km: int) -> int:
    """How often Amazon's offer went out of stock since `start_km`."""
    states = history.states
    first = history.first_index(start_km)
    return sum(
        1
        for a, b in zip(states[first:], states[first + 1 :], strict=False)
        if a.amazon > 0 >= b.amazon
    )


def _stats_object(avg_price: int, offer_count: int, fba: bool, last_seen: int) -> dict[str, Any]:
    return {
        "percentageWon": 100.0,
        "avgPrice": avg_price,
        "avgNewOfferCount": offer_count,
        "isFBA": fba,
        "lastSeen": last_seen,
    }


def _buybox_stats(
    history: ProductHistory, interval: Window, state: EventState, seller: str
) -> dict[str, Any] | None:
    if state.new <= 0:
        return None
    return {seller: _stats_object(interval.avg[1], state.count_new, True, state.time_km)}


def _lowest_sellers(offers: list[Offer]) -> list[str]:
    if not offers:
        return []
    low = min(o.landed for o in offers)
    return [o.seller_id for o in offers if o.landed == low]


def _stock(offers: list[Offer], which: Any) -> int:
    held = [o.stock for o in offers if which(o) and o.stock is not None]
    return min(10, held[0]) if held else -2


def _stock_by_condition(offers: list[Offer], fba: bool) -> list[int]:
    out = [0] * 11
    for o in offers:
        if o.fba == fba and not o.amazon and o.stock is not None:
            out[o.condition] += o.stock
    return out


def eligible_counts(offers: list[Offer]) -> list[int]:
    """New FBA, new FBM, used FBA, used FBM, then collectible and refurbished (none)."""
    out = [0] * 8
    for o in offers:
        out[(0 if o.condition == 1 else 2) + (0 if o.fba else 1)] += 1
    return out
