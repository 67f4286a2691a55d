"""How deals are judged.

Defaults suit used books bought from third-party sellers and resold through FBA.
Buy prices are Keepa's USED price type; the sell price is estimated from the
90-day used average, the used price history and the competing used offers.
"""

from __future__ import annotations

from dataclasses import dataclass

from keepa_deals.settings.budget import BudgetSettings
from keepa_deals.settings.parsers import integer, percent_2dp, setting


@dataclass(frozen=True, repr=False)
class EvaluationSettings(BudgetSettings):
    buy_price_min_cents: int = setting(
        "BUY_PRICE_MIN_CENTS",
        300,
        integer(1),
        "Stage 0/1: lowest used price (cents) worth buying; below it fees eat any margin.",
    )
    buy_price_max_cents: int = setting(
        "BUY_PRICE_MAX_CENTS",
        10_000,
        integer(1),
        "Stage 0/1: highest used price (cents) to buy: caps the money tied up in one book.",
    )
    min_percent_drop: int = setting(
        "MIN_PERCENT_DROP",
        20,
        integer(0, 100),
        "Stage 0: how far (percent) the used price must be below its 90-day average.",
    )
    sales_rank_min: int = setting(
        "SALES_RANK_MIN",
        1,
        integer(1),
        "Stage 0/1: best sales rank accepted (1 = no lower bound).",
    )
    sales_rank_max: int = setting(
        "SALES_RANK_MAX",
        2_000_000,
        integer(1),
        "Stage 0/1: worst sales rank accepted; slower books rarely sell.",
    )
    min_rank_drops_90: int = setting(
        "MIN_RANK_DROPS_90",
        1,
        integer(0),
        "Stage 1: sales-rank drops (sales) needed in the last 90 days.",
    )
    min_profit_cents: int = setting(
        "MIN_PROFIT_CENTS",
        300,
        integer(0),
        "Stages 0-2: least profit (cents) after buying, shipping and Amazon's fees.",
    )
    min_roi_percent: int = setting(
        "MIN_ROI_PERCENT",
        30,
        integer(0, 10_000),
        "Stages 0-2: least return on the money paid for the copy, in percent.",
    )
    referral_fee_percent: float = setting(
        "REFERRAL_FEE_PERCENT",
        15.0,
        percent_2dp,
        "Amazon's referral fee, percent of the sell price (books: 15). Two decimals at most.",
    )
    closing_fee_cents: int = setting(
        "CLOSING_FEE_CENTS",
        180,
        integer(0),
        "Amazon's per-item closing fee for media, in cents (books: 180).",
    )
    fba_fee_cents: int = setting(
        "FBA_FEE_CENTS",
        350,
        integer(0),
        "FBA fulfilment fee per unit, in cents (a standard-size book).",
    )
    buy_shipping_cents: int = setting(
        "BUY_SHIPPING_CENTS",
        399,
        integer(0),
        "Shipping assumed on a used copy before its offer is known (stages 0-1); "
        "stage 2 uses the offer's own.",
    )
    stale_after_s: int = setting(
        "STALE_AFTER_S",
        86_400,
        integer(3600),
        "A deal not seen on a deal page for this long gets a 1-token refresh before it "
        "can be dropped.",
    )
    quarantine_after_failures: int = setting(
        "QUARANTINE_AFTER_FAILURES",
        3,
        integer(1, 1000),
        "An ASIN that fails this many times in a row is quarantined, not retried.",
    )
    rejection_memory_s: int = setting(
        "REJECTION_MEMORY_S",
        1_209_600,
        integer(0),
        "A rejected ASIN is not paid for again at the same price for this long (0: forever).",
    )
    history_keep_s: int = setting(
        "HISTORY_KEEP_S",
        7_776_000,
        integer(0),
        "Runs older than this, and rejections older than this and REJECTION_MEMORY_S, are "
        "deleted once a day by the backfiller (0: kept forever; else at least 2 days).",
    )

    @property
    def referral_fee_bps(self) -> int:
        """The referral fee in basis points, so fee arithmetic stays in integers."""
        return round(self.referral_fee_percent * 100)
