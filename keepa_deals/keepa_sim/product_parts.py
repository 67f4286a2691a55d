"""Pieces of a product object: its history scan, its fixed fields and its offers.

Serialising integers dominates /product, so parts are rendered to JSON text where it
pays: the fixed fields once per product, the csv series once per history, arrays
indexed by price type from templates.
"""

from __future__ import annotations

import functools
import json
from typing import NamedTuple

from keepa_deals.keepa_sim.catalogue import CATEGORY_NAMES, ROOT_NAMES, ProductProfile
from keepa_deals.keepa_sim.hashing import MASK64, fmix, lerp, unit
from keepa_deals.keepa_sim.timeline import N_PRICE_TYPES, EventState
from keepa_deals.keepa_sim.wire import RawMembers

_GOLDEN = 0x9E3779B97F4A7C15
_AMAZON_SELLER = "ATVPDKIKX0DER"
_B36 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_COMMENTS = ("Good copy, light wear.", "Like new.", "Some highlighting.", "Ships fast.", "")
_PRODUCT_GROUPS = {
    283155: "Book",
    172282: "Electronics",
    1055398: "Kitchen",
    165793011: "Toy",
    3375251: "Sports",
    2625373011: "DVD",
}


class History:
    """One pass over a product's states: the csv series (a point wherever a value
    changes), lowest and highest values, and out-of-stock spans. Fields in EventState
    order from index 2: amazon, new, used, rank, count_new, count_used."""

    __slots__ = ("_oos", "_texts", "highs", "lows", "series", "start_km", "states")

    def __init__(self, states: list[EventState], start_km: int) -> None:
        """`states[0]` is the state at `start_km`, the rest the changes since."""
        self.states = states
        self.start_km = start_km
        times = [st.time_km for st in states]
        ends: list[int | None] = [*times[1:], None]  # the current state lasts until now
        columns = list(zip(*states, strict=True))[2:]
        series: list[list[int]] = []
        lows: list[list[int] | None] = []
        highs: list[list[int] | None] = []
        oos: list[tuple[int, int, int | None]] = []  # (field, from, to) spans without offer
        for field, column in enumerate(columns):
            points: list[int] = []
            last = None
            for t, v in zip(times, column, strict=True):
                if v != last:
                    points += (t, v)
                    last = v
            series.append(points)
            present = [(v, t) for t, v in zip(times, column, strict=True) if v > 0]
            if present:
                low, high = min(present), max(present)
                lows.append([low[1], low[0]])
                highs.append([high[1], high[0]])
            else:
                lows.append(None)
                highs.append(None)
            if field < 4 and len(present) < len(column):
                oos.extend(
                    (field, t, end) for t, end, v in zip(times, ends, column, strict=True) if v <= 0
                )
        self.series, self.lows, self.highs, self._oos = series, lows, highs, oos
        self._texts: list[str | None] = [None] * 6

    def text(self, field: int) -> str:
        """Series `field` as JSON text, rendered once."""
        found = self._texts[field]
        if found is None:
            found = self._texts[field] = "[" + ",".join(map(str, self.series[field])) + "]"
        return found

    def csv_text(self, profile: ProductProfile, rating: bool, buybox: bool) -> str:
        cells = ["null"] * N_PRICE_TYPES
        for price_type, field in ((0, 0), (1, 1), (2, 2), (11, 4), (12, 5)):
            cells[price_type] = self.text(field)
        if profile.rank_base > 0:
            cells[3] = self.text(3)
        if rating and profile.review_count:
            since, last = profile.tracking_since_km, self.states[-1].time_km
            cells[16] = f"[{since},{profile.rating}]"
            cells[17] = f"[{since},{max(1, profile.review_count // 2)},{last},"
            cells[17] += f"{profile.review_count}]"
        if buybox:  # BUY_BOX_SHIPPING: [time, price, shipping] triples
            cells[18] = "[" + ",".join(f"{st.time_km},{st.new},0" for st in self.states) + "]"
        return "[" + ",".join(cells) + "]"

    def out_of_stock(self, days: int, now_km: int) -> tuple[int, int, int, int]:
        """Percent of the last `days` days without an offer (or rank), per price type 0-3,
        over the part of those days the history covers."""
        start = max(now_km - days * 1440, self.start_km)
        span = max(1, now_km - start)
        minutes = [0, 0, 0, 0]
        for field, begin, end in self._oos:
            minutes[field] += max(0, (now_km if end is None else end) - max(begin, start))
        a, b, c, d = (round(100 * m / span) for m in minutes)
        return a, b, c, d


def static_members(p: ProductProfile, domain: int) -> RawMembers:
    """The fields of a product that never change, as JSON object members."""
    sub = p.categories[0]
    book = p.is_book
    fields = {
        "asin": p.asin,
        "domainId": domain,
        "title": p.title,
        "productType": 0,
        "parentAsin": p.parent_asin,
        "rootCategory": p.root_cat,
        "categories": list(p.categories),
        "categoryTree": [
            {"catId": p.root_cat, "name": ROOT_NAMES[p.root_cat]},
            {"catId": sub, "name": CATEGORY_NAMES[sub]},
        ],
        "imagesCSV": p.image,
        "manufacturer": "Simulated Press" if book else p.brand,
        "brand": p.brand,
        "author": p.author,
        "binding": p.binding,
        "productGroup": _PRODUCT_GROUPS[p.root_cat],
        "type": "ABIS_BOOK" if book else "ABIS_PRODUCT",
        "eanList": [p.code] if book else None,
        "upcList": None if book else [p.code],
        "numberOfPages": 120 + p.index % 600 if book else -1,
        "trackingSince": p.tracking_since_km,
        "listedSince": p.tracking_since_km,
        "hasReviews": p.review_count > 0,
        "monthlySold": p.monthly_sold,
        "salesRankReference": p.root_cat if p.rank_base > 0 else -1,
        "isAdultProduct": p.is_adult,
        "isEligibleForTradeIn": False,
        "availabilityAmazon": 0 if p.amazon_sells else -1,
    }
    return RawMembers(json.dumps(fields, separators=(",", ":"))[1:-1])


class Offer(NamedTuple):
    offer_id: int
    seller_id: str
    since_km: int
    price: int
    shipping: int
    condition: int  # 1 new, 2-5 used (like new .. acceptable)
    comment: str | None
    fba: bool
    amazon: bool
    stock: int | None

    @property
    def landed(self) -> int:
        return self.price + self.shipping


# One offer object. Most of it is constant, so it is cheaper to fill in than to encode.
_OFFER = (
    '{{"offerId":{0},"lastSeen":{1},"sellerId":"{2}","offerCSV":[{3},{4},{5}],'
    '"condition":{6},"conditionComment":{7},"isPrime":{8},"isMAP":false,"isShippable":true,'
    '"isAddonItem":false,"isPreorder":false,"isWarehouseDeal":false,"isScam":false,'
    '"isAmazon":{9},"isFBA":{8},"isPrimeExcl":false,"shipsFromChina":false{10}}}'
)


def offers_json(offers: list[Offer], now_km: int) -> str:
    def one(o: Offer) -> str:
        stock = "" if o.stock is None else f',"stockCSV":[{now_km},{o.stock}]'
        comment = "null" if o.comment is None else json.dumps(o.comment)
        fba = "true" if o.fba else "false"
        amazon = "true" if o.amazon else "false"
        return _OFFER.format(
            o.offer_id,
            now_km,
            o.seller_id,
            o.since_km,
            o.price,
            o.shipping,
            o.condition,
            comment,
            fba,
            amazon,
            stock,
        )

    return "[" + ",".join(one(o) for o in offers) + "]"


@functools.cache
def _seller(index: int) -> str:
    """Sellers come from a fixed pool, so one seller has offers on many products."""
    h = fmix(index * _GOLDEN & MASK64)
    return "A" + "".join(_B36[(h >> (5 * n)) % 36] for n in range(12))


def live_offers(
    p: ProductProfile, state: EventState, limit: int, stock: bool
) -> tuple[list[Offer], int]:
    """Up to `limit` live offers and how many were found in all. The cheapest used and
    new offers are the product's current used and new prices."""
    found = state.count_new + state.count_used
    shown = min(found, limit)
    n_used = round(shown * state.count_used / found) if found else 0
    offers: list[Offer] = []
    for k in range(shown):
        h = fmix(((p.key ^ 0x0FFE) + (state.cycle * 131 + k) * _GOLDEN) & MASK64)
        used = k < n_used
        amazon = not used and k == n_used and state.amazon > 0
        base = state.used if used else state.new
        fba = amazon or unit(h, 16) < 0.3
        offers.append(
            Offer(
                offer_id=k,
                seller_id=_AMAZON_SELLER if amazon else _seller((h >> 32) % 500 + p.key % 7),
                since_km=state.time_km,
                price=base if k in (0, n_used) else round(base * lerp(1.0, 2.2, unit(h, 0))),
                shipping=0 if fba else (399 if used else 499),
                condition=2 + (h >> 24) % 4 if used else 1,
                comment=_COMMENTS[(h >> 40) % len(_COMMENTS)] if used else None,
                fba=fba,
                amazon=amazon,
                stock=1 + (h >> 48) % 10 if stock else None,
            )
        )
    return offers, found
