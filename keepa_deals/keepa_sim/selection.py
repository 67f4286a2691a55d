"""The /deal `selection`, read the way Keepa reads it.

Keepa is strict about shape and silent about types: a list of two price types is
rejected, a dateRange of 7 is out of range (405), but a dateRange of "1" (a string) is
quietly replaced by the default - which is how a harvester ends up with all-time data
instead of last week's. Both behaviours are reproduced here.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from keepa_deals.keepa_sim.deal_record import DealRecord
from keepa_deals.keepa_sim.timeline import SLOT
from keepa_deals.keepa_sim.wire import RequestError

DOMAINS = (1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12)
# What Keepa falls back to when a number arrives as anything but a JSON number:
# the widest date range ("all-time" as far as deals go) and the default sort.
DEFAULT_DATE_RANGE = 3
DEFAULT_SORT_TYPE = 1
SORT_TYPES = (1, 2, 3, 4, -1, -2, -3, -4)
MAX_PRICE_TYPE = 35
Range = tuple[int | None, int | None]
# The used-books query the project runs (a reseller's: buy used cheap, sell at the
# 90-day average); the simulator counts its published deals in /_sim/state.
DEFAULT_SELECTION: dict[str, object] = {
    "domainId": 1,
    "priceTypes": [2],
    "dateRange": 1,
    "sortType": 1,
    "includeCategories": [283155],
    "isRangeEnabled": True,
    "currentRange": [300, 10000],
    "deltaPercentRange": [20, 100],
    "salesRankRange": [-1, 2000000],
}


@dataclass(frozen=True)
class DealSelection:
    domain_id: int
    price_type: int
    page: int = 0
    date_range: int = DEFAULT_DATE_RANGE
    sort_type: int = DEFAULT_SORT_TYPE
    include: frozenset[int] | None = None
    exclude: frozenset[int] = frozenset()
    current_range: Range | None = None
    delta_range: Range | None = None
    delta_percent_range: Range | None = None
    delta_last_range: Range | None = None
    sales_rank_range: Range | None = None
    min_rating: int = -1
    has_reviews: bool = False
    is_out_of_stock: bool = False
    is_back_in_stock: bool = False
    must_have_amazon: bool = False
    must_not_have_amazon: bool = False
    filter_erotic: bool = False
    single_variation: bool = False
    title_words: tuple[str, ...] = ()
    is_lowest_offer: bool = False
    is_lowest: bool = False
    is_lowest_90: bool = False
    # Filters no simulated product can pass: warehouse deals and Prime-exclusive offers
    # are not simulated, so a selection asking for them finds nothing.
    warehouse_conditions: frozenset[int] = frozenset()
    prime_exclusive: bool = False
    # Attribute lists (brand, author, binding, productGroup), lower-cased.
    attributes: tuple[tuple[str, frozenset[str]], ...] = ()

    def query_key(self) -> str:
        """Identifies the query apart from its page (what Keepa caches on)."""
        fields = {k: v for k, v in self.__dict__.items() if k != "page"}
        return json.dumps(fields, sort_keys=True, default=sorted)


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _range(value: object) -> Range | None:
    if not isinstance(value, list) or len(value) != 2:
        return None
    low, high = _int(value[0]), _int(value[1])
    if low is None or high is None:
        return None
    return (None if low == -1 else low, None if high == -1 else high)


def _ids(value: object) -> frozenset[int] | None:
    if not isinstance(value, list) or not all(_int(v) is not None for v in value):
        return None
    return frozenset(v for v in value if isinstance(v, int))


def parse_selection(raw: object, default_domain: int | None) -> DealSelection:
    if not isinstance(raw, Mapping):
        raise RequestError(400, "selection must be a JSON object")
    domain = _int(raw.get("domainId"))
    if domain is None:
        domain = default_domain if default_domain is not None else 1
    if domain not in DOMAINS:
        raise RequestError(405, f"domainId {domain} is not a Keepa domain")
    price_types = raw.get("priceTypes", [0])
    if _int(price_types) is not None:
        price_types = [price_types]
    if not isinstance(price_types, list):
        price_types = [0]
    if len(price_types) != 1:
        raise RequestError(400, "priceTypes must hold exactly one price type")
    price_type = _int(price_types[0])
    if price_type is None:
        price_type = 0
    if not 0 <= price_type <= MAX_PRICE_TYPE:
        raise RequestError(405, f"price type {price_type} is out of range")
    page = _int(raw.get("page"))
    page = 0 if page is None else page
    if page < 0:
        raise RequestError(405, "page must be >= 0")
    date_range = _int(raw.get("dateRange"))
    date_range = DEFAULT_DATE_RANGE if date_range is None else date_range
    if date_range not in (0, 1, 2, 3):
        raise RequestError(405, f"dateRange {date_range} is out of range")
    sort_type = _int(raw.get("sortType"))
    sort_type = DEFAULT_SORT_TYPE if sort_type is None else sort_type
    if sort_type not in SORT_TYPES:
        raise RequestError(405, f"sortType {sort_type} is out of range")
    ranges: dict[str, Range | None] = {}
    if raw.get("isRangeEnabled") is True:
        for name in ("currentRange", "deltaRange", "deltaPercentRange", "deltaLastRange"):
            ranges[name] = _range(raw.get(name))
        percent = ranges["deltaPercentRange"]
        if percent is not None and (percent[0] is None or percent[0] < 10):
            ranges["deltaPercentRange"] = (10, percent[1])  # Keepa's minimum is 10 %
    title = raw.get("titleSearch")
    # The lowest and stock flags count only with isFilterEnabled, as the range options
    # only with isRangeEnabled; the other filters have their own off value and always
    # count (docs/simulator.md: which is which, and why).
    filters: Mapping[str, object] = raw if raw.get("isFilterEnabled") is True else {}
    rating = _int(raw.get("minRating"))
    return DealSelection(
        domain_id=domain,
        price_type=price_type,
        page=page,
        date_range=date_range,
        sort_type=sort_type,
        include=_ids(raw.get("includeCategories")) or None,
        exclude=_ids(raw.get("excludeCategories")) or frozenset(),
        current_range=ranges.get("currentRange"),
        delta_range=ranges.get("deltaRange"),
        delta_percent_range=ranges.get("deltaPercentRange"),
        delta_last_range=ranges.get("deltaLastRange"),
        sales_rank_range=_range(raw.get("salesRankRange")),
        min_rating=-1 if rating is None else rating,
        has_reviews=raw.get("hasReviews") is True,
        is_out_of_stock=filters.get("isOutOfStock") is True,
        is_back_in_stock=filters.get("isBackInStock") is True,
        must_have_amazon=raw.get("mustHaveAmazonOffer") is True,
        must_not_have_amazon=raw.get("mustNotHaveAmazonOffer") is True,
        filter_erotic=raw.get("filterErotic") is True,
        single_variation=raw.get("singleVariation") is True,
        title_words=tuple(title.lower().split()) if isinstance(title, str) else (),
        is_lowest_offer=filters.get("isLowestOffer") is True,
        is_lowest=filters.get("isLowest") is True,
        is_lowest_90=filters.get("isLowest90") is True,
        warehouse_conditions=_ids(raw.get("warehouseConditions")) or frozenset(),
        prime_exclusive=raw.get("isPrimeExclusive") is True,
        attributes=tuple(
            (name, frozenset(str(v).lower() for v in values))
            for name in ATTRIBUTE_LISTS
            if isinstance(values := raw.get(name), list) and values
        ),
    )


# Attribute lists a simulated product has values for; other lists (color, size, ...)
# match no simulated product.
ATTRIBUTE_LISTS = (
    "brand",
    "author",
    "binding",
    "productGroup",
    "manufacturer",
    "material",
    "type",
    "model",
    "color",
    "size",
    "unitType",
    "scent",
    "itemForm",
    "pattern",
    "style",
    "itemTypeKeyword",
    "targetAudienceKeyword",
    "edition",
    "format",
    "languages",
    "brandStoreName",
    "brandStoreUrlName",
    "websiteDisplayGroup",
    "websiteDisplayGroupName",
    "salesRankDisplayGroup",
)
_NO_BOUND = 1 << 62
Check = Callable[[DealRecord], bool]


def _bounds(bounds: Range) -> tuple[int, int]:
    low, high = bounds
    return (-_NO_BOUND if low is None else low, _NO_BOUND if high is None else high)


def _attribute_check(name: str, wanted: frozenset[str]) -> Check:
    def check(record: DealRecord) -> bool:
        return record.attributes.get(name) in wanted

    return check


def compile_filter(sel: DealSelection) -> Check:
    """One predicate for the selection, cheapest and most selective checks first."""
    slot = SLOT.get(sel.price_type)
    if slot is None:
        return lambda r: False  # no simulated product has data for this price type
    dr = sel.date_range
    checks: list[Check] = []
    # Categories first: they cost nothing, while the drop check measures the product's
    # history over the date range (once per deal, then cached on the record).
    include, exclude = sel.include, sel.exclude
    if include is not None:
        checks.append(lambda r: r.root in include or any(c in include for c in r.categories))
    if exclude:
        checks.append(
            lambda r: r.root not in exclude and not any(c in exclude for c in r.categories)
        )
    if sel.is_out_of_stock:
        checks.append(lambda r: r.cur[slot] < 0 < r.prev[slot])
    elif sel.is_back_in_stock:
        checks.append(lambda r: r.prev[slot] < 0 < r.cur[slot])
    if sel.current_range is not None:
        lo, hi = _bounds(sel.current_range)
        checks.append(lambda r: lo <= r.cur[slot] <= hi)
    rank_slot, rating_slot, reviews_slot, amazon_slot = SLOT[3], SLOT[16], SLOT[17], SLOT[0]
    if sel.sales_rank_range is not None:
        # Once a rank range is given, products without a rank are out (Keepa's rule).
        r_lo, r_hi = _bounds(sel.sales_rank_range)
        checks.append(lambda r: r.cur[rank_slot] > 0 and r_lo <= r.cur[rank_slot] <= r_hi)
    if not (sel.is_out_of_stock or sel.is_back_in_stock):
        checks.append(lambda r: r.delta(dr)[slot] > 0)  # below the average: a drop
    if sel.delta_range is not None:
        d_lo, d_hi = _bounds(sel.delta_range)
        checks.append(lambda r: d_lo <= r.delta(dr)[slot] <= d_hi)
    if sel.delta_percent_range is not None:
        p_lo, p_hi = _bounds(sel.delta_percent_range)
        checks.append(lambda r: p_lo <= r.delta_pct(dr)[slot] <= p_hi)
    if sel.delta_last_range is not None:
        l_lo, l_hi = _bounds(sel.delta_last_range)
        checks.append(lambda r: l_lo <= r.delta_last[slot] <= l_hi)
    if sel.min_rating >= 0:
        min_rating = sel.min_rating
        checks.append(lambda r: r.cur[rating_slot] >= min_rating)
    if sel.has_reviews:
        checks.append(lambda r: r.cur[reviews_slot] > 0)
    if sel.must_have_amazon:
        checks.append(lambda r: r.cur[amazon_slot] > 0)
    if sel.must_not_have_amazon:
        checks.append(lambda r: r.cur[amazon_slot] <= 0)
    if sel.filter_erotic:
        checks.append(lambda r: not r.is_adult)
    if sel.title_words:
        words = sel.title_words
        checks.append(lambda r: all(w in r.title_lower for w in words))
    if sel.warehouse_conditions or sel.prime_exclusive:
        return lambda r: False
    if sel.is_lowest_offer:
        # The selected type is the lowest of all new offers: NEW always is (it is the
        # lowest new price); AMAZON when Amazon's price is the lowest new one.
        if sel.price_type not in (0, 1):
            return lambda r: False
        new_slot = SLOT[1]
        checks.append(lambda r: 0 < r.cur[amazon_slot] <= r.cur[new_slot] or slot == new_slot)
    for name, wanted in sel.attributes:
        checks.append(_attribute_check(name, wanted))
    # Last: an all-time low walks the product's whole history (once per deal).
    if sel.is_lowest_90:
        checks.append(lambda r: r.is_lowest_90(slot))
    if sel.is_lowest:
        checks.append(lambda r: r.is_lowest(slot))

    def check(record: DealRecord) -> bool:
        for c in checks:  # noqa: SIM110 - a plain loop beats all() on this hot path
            if not c(record):
                return False
        return True

    return check
