"""The token budget: plan rate, thresholds, shares, deficit floor, recharge, TTLs."""

from __future__ import annotations

from dataclasses import dataclass

from keepa_deals.settings.connections import ConnectionSettings
from keepa_deals.settings.parsers import classes, integer, number, setting


@dataclass(frozen=True, repr=False)
class BudgetSettings(ConnectionSettings):
    plan_rate: int = setting(
        "KEEPA_PLAN_RATE",
        5,
        integer(1, 100_000),
        "Refill rate (tokens/min) of the smallest plan this deployment must work on. "
        "Settings are checked against its capacity (60 x rate) at start-up.",
    )
    threshold_upsert: int = setting(
        "TOKEN_THRESHOLD_UPSERT",
        30,
        integer(1),
        "Balance the upserter needs before it starts a call.",
    )
    threshold_backfill: int = setting(
        "TOKEN_THRESHOLD_BACKFILL",
        60,
        integer(1),
        "Balance the backfiller needs before it starts a call.",
    )
    min_share_upsert: float = setting(
        "TOKEN_MIN_SHARE_UPSERT",
        0.0,
        number(0, 1),
        "Fraction of the refill the upserter is guaranteed while it keeps asking.",
    )
    min_share_backfill: float = setting(
        "TOKEN_MIN_SHARE_BACKFILL",
        0.2,
        number(0, 1),
        "Fraction of the refill the backfiller is guaranteed while it keeps asking (> 0).",
    )
    deficit_floor: int = setting(
        "TOKEN_DEFICIT_FLOOR",
        -180,
        integer(-100_000, 0),
        "Lowest estimated balance a call may leave behind (Keepa allows a deficit).",
    )
    recharge_low: int = setting(
        "RECHARGE_LOW",
        20,
        integer(-100_000),
        "Below this balance the bucket enters recharge mode.",
    )
    recharge_high: int = setting(
        "RECHARGE_HIGH",
        280,
        integer(1),
        "Recharge ends when the balance reaches this (never above capacity).",
    )
    recharge_timeout_s: int = setting(
        "RECHARGE_TIMEOUT_S",
        3600,
        integer(60),
        "Recharge ends after this long even if the balance has not reached RECHARGE_HIGH.",
    )
    recharge_gated_classes: tuple[str, ...] = setting(
        "RECHARGE_GATED_CLASSES",
        ("backfill",),
        classes,
        "Comma list of classes that pause while recharging.",
    )
    token_sync_interval_s: int = setting(
        "TOKEN_SYNC_INTERVAL_S",
        1800,
        integer(60),
        "Ask Keepa's free /token when no Keepa answer was seen for this long.",
    )
    grant_ttl_s: int = setting(
        "TOKEN_GRANT_TTL_S",
        300,
        integer(10),
        "Longest a granted call may stay unsettled before its cost is left to Keepa's count.",
    )
    demand_ttl_s: int = setting(
        "TOKEN_DEMAND_TTL_S",
        300,
        integer(1),
        "A class that has not asked for this long stops counting as waiting (never less "
        "than the slower beat period + 60 s).",
    )

    @property
    def plan_capacity(self) -> int:
        """Keepa's tokens expire after an hour, so the bucket holds 60 x rate."""
        return 60 * self.plan_rate

    def threshold(self, cls: str) -> int:
        return int(getattr(self, f"threshold_{cls}"))

    def min_share(self, cls: str) -> float:
        return float(getattr(self, f"min_share_{cls}"))
