"""Deal evaluation in three stages, cheapest first, as pure functions (no I/O).

- Stage 0, `screen_deal` (free): what the /deal page already holds.
- Stage 1, `peek` (1 token): the product with `stats` and no history or offers.
- Stage 2, `commit` (history + `offers=20`, ~6-12 tokens): the sell-price estimate,
  fees, profit and ROI that decide acceptance.

Paying the heavy price only to reject wastes the budget (failure mode: paying to reject), so each
stage rejects everything the data it has can rule out, with a `Reason` code. Money is integer cents
throughout and ROI integer basis points; Keepa's -1 (and null, or a missing array) means "no data"
and never reaches arithmetic.

The buy side is Keepa's USED price type: a reseller buys the cheapest used copy and
sells it through FBA. The sell estimate only gets more careful from stage to stage
(stage 2 takes the lowest of the 90-day average, the used-price history's median and
the cheapest competing used offer), so an early estimate rejects what stage 2 would
accept only when the copy ships for less than the assumed BUY_SHIPPING_CENTS.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from keepa_deals.config import Settings
from keepa_deals.evaluation.verdicts import (
    Accepted,
    DealSummary,
    Economics,
    Fees,
    PeekPassed,
    ProductFacts,
    Reason,
    Rejected,
    Stage,
    UsedOffer,
    percent_below,
)

USED = 2  # Keepa price type (csv index) of the buy side
SALES_RANK = 3
NINETY_DAYS = 3  # the deal record's dateRange index of its 90-day columns
HISTORY_WINDOW_MIN = 90 * 1440
_USED_CONDITIONS = frozenset((2, 3, 4, 5))  # used: like new, very good, good, acceptable


# --- parsing ---------------------------------------------------------------------------


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _row(table: object, index: int) -> object:
    """table[index], or None when the array is null, missing or too short."""
    if isinstance(table, list | tuple) and index < len(table):
        return table[index]
    return None


def _positive(seq: object, index: int) -> int | None:
    """seq[index] when it is a positive integer; Keepa's -1, null and short arrays -> None."""
    value = _int(_row(seq, index))
    return value if value is not None and value > 0 else None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def parse_deal(deal: Mapping[str, Any]) -> DealSummary:
    return DealSummary(
        asin=str(deal["asin"]),
        title=_text(deal.get("title")),
        root_category_id=_int(deal.get("rootCat")),
        created_km=_int(deal.get("creationDate")) or 0,
        last_update_km=_int(deal.get("lastUpdate")) or _int(deal.get("creationDate")) or 0,
        price_cents=_positive(deal.get("current"), USED),
        avg90_price_cents=_positive(_row(deal.get("avg"), NINETY_DAYS), USED),
        sales_rank=_positive(deal.get("current"), SALES_RANK),
    )


def parse_product(product: Mapping[str, Any]) -> ProductFacts:
    stats = product.get("stats")
    has_stats = isinstance(stats, Mapping)
    s: Mapping[str, Any] = stats if isinstance(stats, Mapping) else {}
    drops = _int(s.get("salesRankDrops90"))
    tree = product.get("categoryTree")
    leaf = tree[-1] if isinstance(tree, list) and tree and isinstance(tree[-1], dict) else {}
    return ProductFacts(
        asin=str(product["asin"]),
        title=_text(product.get("title")),
        root_category_id=_int(product.get("rootCategory")),
        category=_text(leaf.get("name")),
        last_update_km=_int(product.get("lastUpdate")),
        has_stats=has_stats,
        price_cents=_positive(s.get("current"), USED),
        avg90_price_cents=_positive(s.get("avg90"), USED),
        sales_rank=_positive(s.get("current"), SALES_RANK),
        rank_drops_90=drops if drops is not None and drops >= 0 else None,
    )


def live_used_offers(product: Mapping[str, Any]) -> list[UsedOffer] | None:
    """Live used offers at their latest price, cheapest landed first; None when Keepa's
    offer fetch failed or offers were not requested."""
    offers = product.get("offers")
    if not isinstance(offers, list) or product.get("offersSuccessful") is False:
        return None
    order = product.get("liveOffersOrder")
    live = set(order) if isinstance(order, list) else set(range(len(offers)))
    found: list[UsedOffer] = []
    for index, offer in enumerate(offers):
        if index not in live or not isinstance(offer, dict):
            continue
        if _int(offer.get("condition")) not in _USED_CONDITIONS:
            continue
        csv = offer.get("offerCSV")
        # offerCSV is [time, price, shipping] triples; the last triple is the current one.
        if not isinstance(csv, list) or len(csv) < 3 or len(csv) % 3:
            continue
        price, shipping = _int(csv[-2]), _int(csv[-1])
        if price is None or price <= 0:
            continue
        found.append(UsedOffer(price, max(shipping or 0, 0), offer.get("isFBA") is True))
    return sorted(found, key=lambda o: (o.landed_cents, o.price_cents))


def history_median_cents(series: object, now_km: int) -> int | None:
    """Time-weighted median of a csv price series over the 90 days before `now_km`.

    A value counts for as long as it held, so a one-hour spike weighs little. Spans
    without an offer (-1) are left out rather than read as a price.
    """
    if not isinstance(series, list) or len(series) < 2:
        return None
    start = now_km - HISTORY_WINDOW_MIN
    weights: dict[int, int] = {}
    pairs = [(_int(series[i]), _int(series[i + 1])) for i in range(0, len(series) - 1, 2)]
    for k, (t, v) in enumerate(pairs):
        end = pairs[k + 1][0] if k + 1 < len(pairs) else now_km
        if t is None or v is None or end is None or v <= 0:
            continue
        held = min(end, now_km) - max(t, start)
        if held > 0:
            weights[v] = weights.get(v, 0) + held
    total = sum(weights.values())
    if total == 0:
        return None
    running = 0
    for value in sorted(weights):
        running += weights[value]
        if 2 * running >= total:
            return value
    raise AssertionError("unreachable: the weights sum to total")


# --- arithmetic ------------------------------------------------------------------------


def fees_for(sell_price_cents: int, settings: Settings) -> Fees:
    # Referral fee rounded half up to the cent, from integer basis points.
    referral = (sell_price_cents * settings.referral_fee_bps + 5_000) // 10_000
    return Fees(referral, settings.closing_fee_cents, settings.fba_fee_cents)


def economics(buy_price_cents: int, sell_price_cents: int, settings: Settings) -> Economics:
    if buy_price_cents <= 0:
        raise ValueError(f"buy_price_cents must be positive, got {buy_price_cents}")
    fees = fees_for(sell_price_cents, settings)
    profit = sell_price_cents - buy_price_cents - fees.fees_cents
    roi_bps = profit * 10_000 // buy_price_cents
    return Economics(buy_price_cents, sell_price_cents, fees, profit, roi_bps)


def _unviable(e: Economics, settings: Settings, stage: Stage, price: int) -> Rejected | None:
    if e.profit_cents < settings.min_profit_cents:
        detail = f"profit {e.profit_cents}c < {settings.min_profit_cents}c"
        return Rejected(stage, Reason.PROFIT_TOO_LOW, detail, price)
    if e.roi_bps < settings.min_roi_percent * 100:
        detail = f"ROI {e.roi_percent:.2f}% < {settings.min_roi_percent}%"
        return Rejected(stage, Reason.ROI_TOO_LOW, detail, price)
    return None


def _out_of_band(
    price: int | None, rank: int | None, settings: Settings, stage: Stage
) -> Rejected | None:
    """The price band and sales-rank range every stage applies to its freshest data."""
    if price is None:
        return Rejected(stage, Reason.NO_BUY_PRICE, "no used offer")
    if price < settings.buy_price_min_cents:
        detail = f"{price}c < {settings.buy_price_min_cents}c"
        return Rejected(stage, Reason.PRICE_BELOW_MIN, detail, price)
    if price > settings.buy_price_max_cents:
        detail = f"{price}c > {settings.buy_price_max_cents}c"
        return Rejected(stage, Reason.PRICE_ABOVE_MAX, detail, price)
    if rank is None:
        return Rejected(stage, Reason.NO_SALES_RANK, "no sales rank", price)
    if rank < settings.sales_rank_min:
        return Rejected(stage, Reason.RANK_BELOW_MIN, f"rank {rank}", price)
    if rank > settings.sales_rank_max:
        return Rejected(stage, Reason.RANK_ABOVE_MAX, f"rank {rank}", price)
    return None


# --- stages ----------------------------------------------------------------------------


def screen_deal(deal: DealSummary, settings: Settings) -> Rejected | None:
    """Stage 0, free. None: worth a peek."""
    found = _out_of_band(deal.price_cents, deal.sales_rank, settings, Stage.FREE)
    if found is not None:
        return found
    price = deal.price_cents
    assert price is not None  # _out_of_band rejected a missing price
    if deal.avg90_price_cents is None:
        return Rejected(Stage.FREE, Reason.NO_AVG90, "no 90-day used average", price)
    drop = percent_below(price, deal.avg90_price_cents)
    if drop is None or drop < settings.min_percent_drop:
        detail = f"{drop}% below the 90-day average < {settings.min_percent_drop}%"
        return Rejected(Stage.FREE, Reason.DROP_TOO_SMALL, detail, price)
    buy = price + settings.buy_shipping_cents
    estimate = economics(buy, deal.avg90_price_cents, settings)
    return _unviable(estimate, settings, Stage.FREE, price)


def _demand(facts: ProductFacts, settings: Settings, stage: Stage) -> Rejected | None:
    if not facts.has_stats:
        return Rejected(stage, Reason.NO_STATS, "product has no stats")
    found = _out_of_band(facts.price_cents, facts.sales_rank, settings, stage)
    if found is not None:
        return found
    if facts.avg90_price_cents is None:
        return Rejected(stage, Reason.NO_AVG90, "no 90-day used average", facts.price_cents)
    drops = facts.rank_drops_90 or 0
    if drops < settings.min_rank_drops_90:
        detail = f"{drops} rank drops in 90 days < {settings.min_rank_drops_90}"
        return Rejected(stage, Reason.NO_RANK_DROPS, detail, facts.price_cents)
    return None


def peek(product: Mapping[str, Any], settings: Settings) -> Rejected | PeekPassed:
    """Stage 1: a product fetched with `stats` (history and offers not needed)."""
    facts = parse_product(product)
    found = _demand(facts, settings, Stage.PEEK)
    if found is not None:
        return found
    assert facts.price_cents is not None and facts.avg90_price_cents is not None
    buy = facts.price_cents + settings.buy_shipping_cents
    estimate = economics(buy, facts.avg90_price_cents, settings)
    found = _unviable(estimate, settings, Stage.PEEK, facts.price_cents)
    return found or PeekPassed(facts, estimate)


def commit(product: Mapping[str, Any], settings: Settings) -> Rejected | Accepted:
    """Stage 2: a product fetched with `stats`, history and `offers`."""
    facts = parse_product(product)
    found = _demand(facts, settings, Stage.COMMIT)
    if found is not None:
        return found
    assert facts.avg90_price_cents is not None
    offers = live_used_offers(product)
    if offers is None:
        detail = "Keepa's offer fetch failed or offers were not requested"
        return Rejected(Stage.COMMIT, Reason.OFFERS_UNAVAILABLE, detail, facts.price_cents)
    if not offers:
        return Rejected(Stage.COMMIT, Reason.NO_USED_OFFER, "no live used offer")
    bought, others = offers[0], offers[1:]
    found = _out_of_band(bought.price_cents, facts.sales_rank, settings, Stage.COMMIT)
    if found is not None:
        return found
    csv = product.get("csv")
    now_km = facts.last_update_km
    median = None if now_km is None else history_median_cents(_row(csv, USED), now_km)
    competitor = others[0].landed_cents if others else None
    candidates = (facts.avg90_price_cents, median, competitor)
    sell = min(c for c in candidates if c is not None)
    e = economics(bought.landed_cents, sell, settings)
    found = _unviable(e, settings, Stage.COMMIT, bought.price_cents)
    return found or Accepted(facts, e, median, competitor)
