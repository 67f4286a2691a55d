"""Evaluation's arithmetic: fees exact in cents, profit and ROI in integers, and the
evaluation settings it relies on."""

from __future__ import annotations

import pytest

from keepa_deals.config import Settings
from keepa_deals.errors import ConfigError
from keepa_deals.evaluation.stages import (
    economics,
    fees_for,
)
from keepa_deals.evaluation.verdicts import (
    Economics,
    Fees,
    percent_below,
)
from tests.support.keepa_objects import S

# --- arithmetic ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sell", "percent", "referral"),
    [
        (1_003, "15", 150),  # 150.45 -> 150
        (1_010, "15", 152),  # 151.5 rounds half up -> 152
        (1_000, "8.25", 83),  # 82.5 -> 83
        (999, "8.25", 82),  # 82.4175 -> 82
        (0, "15", 0),
    ],
)
def test_the_referral_fee_is_exact_in_cents(sell: int, percent: str, referral: int) -> None:
    settings = Settings.from_mapping({"REFERRAL_FEE_PERCENT": percent})
    assert fees_for(sell, settings) == Fees(referral, 180, 350)


def test_profit_and_roi_are_integer_arithmetic() -> None:
    e = economics(1_899, 3_600, S)
    assert e == Economics(1_899, 3_600, Fees(540, 180, 350), 631, 3_322)
    assert e.fees.fees_cents == 1_070 and e.roi_percent == 33.22
    loss = economics(1_000, 1_000, S)
    assert (loss.profit_cents, loss.roi_bps) == (-680, -6_800)
    assert economics(3, 1_000, S).roi_bps == (1_000 - 3 - 680) * 10_000 // 3


def test_percent_below() -> None:
    assert percent_below(1_500, 4_000) == 62
    assert percent_below(4_400, 4_000) == -10
    assert percent_below(None, 4_000) is None and percent_below(1, None) is None


# --- settings -----------------------------------------------------------------------------


def test_evaluation_settings_are_validated() -> None:
    assert Settings.from_mapping({"REFERRAL_FEE_PERCENT": "8.25"}).referral_fee_bps == 825
    with pytest.raises(ConfigError, match=r"REFERRAL_FEE_PERCENT=15\.125: must have at most two"):
        Settings.from_mapping({"REFERRAL_FEE_PERCENT": "15.125"})
    with pytest.raises(ConfigError, match="BUY_PRICE_MIN_CENTS=500: must not exceed"):
        Settings.from_mapping({"BUY_PRICE_MIN_CENTS": "500", "BUY_PRICE_MAX_CENTS": "400"})
    with pytest.raises(ConfigError, match="SALES_RANK_MIN"):
        Settings.from_mapping({"SALES_RANK_MIN": "10", "SALES_RANK_MAX": "9"})
    with pytest.raises(ConfigError, match="STALE_AFTER_S=60: must be at least 3600"):
        Settings.from_mapping({"STALE_AFTER_S": "60"})
    assert Settings().with_overrides({"MIN_ROI_PERCENT": "45"}).min_roi_percent == 45
