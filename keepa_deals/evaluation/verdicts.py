"""What evaluation reads and decides, as the store keeps it: the facts a stage read
(`DealSummary`, `ProductFacts`), the money (`Fees`, `Economics`) and the verdicts
(`Rejected` with its `Reason`, `PeekPassed`, `Accepted`). Plain frozen dataclasses.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from keepa_deals.keepa.keepa_time import keepa_minutes_to_unix_s


class Stage(StrEnum):
    FREE = "free"
    PEEK = "peek"
    COMMIT = "commit"


class Reason(StrEnum):
    NO_BUY_PRICE = "no_buy_price"  # no used offer (price -1 or missing)
    PRICE_BELOW_MIN = "price_below_min"
    PRICE_ABOVE_MAX = "price_above_max"
    DROP_TOO_SMALL = "drop_too_small"  # not far enough below the 90-day average
    NO_SALES_RANK = "no_sales_rank"
    RANK_BELOW_MIN = "rank_below_min"
    RANK_ABOVE_MAX = "rank_above_max"
    NO_AVG90 = "no_avg90"  # no 90-day used average: nothing to estimate a sale from
    NO_STATS = "no_stats"  # the product came without `stats`
    NO_RANK_DROPS = "no_rank_drops"  # too few sales in 90 days
    OFFERS_UNAVAILABLE = "offers_unavailable"  # Keepa's offer fetch failed: transient
    NO_USED_OFFER = "no_used_offer"  # offers fetched, none of them a live used one
    PROFIT_TOO_LOW = "profit_too_low"
    ROI_TOO_LOW = "roi_too_low"

    @property
    def transient(self) -> bool:
        """A failure to learn, not a verdict: retry later rather than record a rejection."""
        return self is Reason.OFFERS_UNAVAILABLE


@dataclass(frozen=True)
class Rejected:
    stage: Stage
    reason: Reason
    detail: str
    # The used price (no shipping) the stage read; None when there was none. The key of
    # a stored rejection is the deal page's price, which the caller holds.
    price_cents: int | None = None


@dataclass(frozen=True)
class Fees:
    referral_fee_cents: int
    closing_fee_cents: int
    fba_fee_cents: int

    @property
    def fees_cents(self) -> int:
        return self.referral_fee_cents + self.closing_fee_cents + self.fba_fee_cents


@dataclass(frozen=True)
class Economics:
    buy_price_cents: int  # landed: price plus shipping
    sell_price_cents: int
    fees: Fees
    profit_cents: int
    roi_bps: int  # profit / buy price, in basis points, rounded down

    @property
    def roi_percent(self) -> float:
        return self.roi_bps / 100


@dataclass(frozen=True)
class DealSummary:
    """Stage 0's view of a /deal `dr` entry."""

    asin: str
    title: str | None
    root_category_id: int | None
    created_km: int  # Keepa minutes, as Keepa sends them
    last_update_km: int
    price_cents: int | None  # current used price
    avg90_price_cents: int | None
    sales_rank: int | None

    @property
    def created_s(self) -> int:
        return int(keepa_minutes_to_unix_s(self.created_km))

    @property
    def last_update_s(self) -> int:
        return int(keepa_minutes_to_unix_s(self.last_update_km))

    @property
    def percent_drop(self) -> int | None:
        return percent_below(self.price_cents, self.avg90_price_cents)


@dataclass(frozen=True)
class ProductFacts:
    """What stages 1 and 2 read from a /product object."""

    asin: str
    title: str | None
    root_category_id: int | None
    category: str | None  # the most specific category name
    last_update_km: int | None
    has_stats: bool
    price_cents: int | None  # stats.current[USED]
    avg90_price_cents: int | None
    sales_rank: int | None
    rank_drops_90: int | None

    @property
    def last_update_s(self) -> int | None:
        return (
            None
            if self.last_update_km is None
            else int(keepa_minutes_to_unix_s(self.last_update_km))
        )


@dataclass(frozen=True)
class PeekPassed:
    facts: ProductFacts
    estimate: Economics  # sell price = the 90-day used average


@dataclass(frozen=True)
class Accepted:
    facts: ProductFacts
    economics: Economics
    history_median_cents: int | None
    competitor_price_cents: int | None  # cheapest other live used offer, landed


@dataclass(frozen=True)
class UsedOffer:
    price_cents: int
    shipping_cents: int
    is_fba: bool

    @property
    def landed_cents(self) -> int:
        return self.price_cents + self.shipping_cents


def percent_below(price_cents: int | None, average_cents: int | None) -> int | None:
    """Whole percent the price is below the average (negative when above), rounded down."""
    if price_cents is None or average_cents is None:
        return None
    return (average_cents - price_cents) * 100 // average_cents
