"""Validation of the settings as named rule groups, each refusing one kind of
incoherence at start-up, before anything runs.

`RULES` runs in order and the first refusal raises: a ConfigError naming the variable,
its value and what is allowed. Settings that would make a wait impossible (a threshold
no balance can reach) or unbounded (a livelock between classes) are refused here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from keepa_deals.errors import ConfigError
from keepa_deals.settings.parsers import TOKEN_CLASSES

if TYPE_CHECKING:
    from keepa_deals.settings.runtime import RuntimeSettings


def reachable_thresholds(s: RuntimeSettings) -> None:
    """Every class's threshold is a balance the plan can hold, and the high-priority
    class never waits for more than the low one (no priority inversion)."""
    cap = s.plan_capacity
    plan = f"capacity is {cap} at KEEPA_PLAN_RATE={s.plan_rate} (60 x rate)"
    for cls in TOKEN_CLASSES:
        name = f"TOKEN_THRESHOLD_{cls.upper()}"
        if s.threshold(cls) > cap:
            raise ConfigError(
                name,
                s.threshold(cls),
                f"a balance above capacity can never be reached; {plan}",
            )
    if s.threshold_upsert > s.threshold_backfill:
        raise ConfigError(
            "TOKEN_THRESHOLD_UPSERT",
            s.threshold_upsert,
            f"must not exceed TOKEN_THRESHOLD_BACKFILL={s.threshold_backfill}: "
            "the high-priority class would wait longer than the low one (priority inversion)",
        )
    if s.recharge_high > cap:
        raise ConfigError(
            "RECHARGE_HIGH",
            s.recharge_high,
            f"must not exceed the capacity {cap} (60 x KEEPA_PLAN_RATE={s.plan_rate})",
        )


def coherent_recharge(s: RuntimeSettings) -> None:
    """Recharge starts below where it ends, and above the deficit floor."""
    if s.recharge_low >= s.recharge_high:
        raise ConfigError(
            "RECHARGE_LOW",
            s.recharge_low,
            f"must be below RECHARGE_HIGH={s.recharge_high}",
        )
    if s.recharge_low <= s.deficit_floor:
        raise ConfigError(
            "RECHARGE_LOW",
            s.recharge_low,
            f"must be above TOKEN_DEFICIT_FLOOR={s.deficit_floor}",
        )


def one_time_base(s: RuntimeSettings) -> None:
    """Scaled time has an origin every process shares, and never runs against Keepa."""
    if s.time_scale != 1 and s.time_origin_s <= 0:
        raise ConfigError(
            "KEEPA_TIME_ORIGIN_S",
            s.time_origin_s,
            f"must be set (unix seconds) when KEEPA_TIME_SCALE={s.time_scale:g}: every "
            "process and the simulator must agree on when scaled time began",
        )
    if s.time_scale != 1 and "api.keepa.com" in s.keepa_api_url:
        raise ConfigError(
            "KEEPA_TIME_SCALE",
            s.time_scale,
            "must be 1 against the real Keepa: its refills run on wall time",
        )


def runs_end_by_themselves(s: RuntimeSettings) -> None:
    """A run ends before Celery interrupts it, and saves before it is killed."""
    if s.harvest_max_run_s >= s.task_soft_time_limit_s:
        raise ConfigError(
            "HARVEST_MAX_RUN_S",
            s.harvest_max_run_s,
            f"must be below TASK_SOFT_TIME_LIMIT_S={s.task_soft_time_limit_s}: a run "
            "ends by itself before Celery has to interrupt it",
        )
    if s.task_time_limit_s <= s.task_soft_time_limit_s:
        raise ConfigError(
            "TASK_TIME_LIMIT_S",
            s.task_time_limit_s,
            f"must be above TASK_SOFT_TIME_LIMIT_S={s.task_soft_time_limit_s}, so a "
            "run can save its progress before it is killed",
        )


def bounded_waits(s: RuntimeSettings) -> None:
    """The shares bound each class's wait: the refill is never promised twice, and
    the class without a share is left something it is sure to get."""
    if s.min_share_backfill <= 0:
        # The lowest class has nobody below it to borrow from: without a share, an
        # upserter that keeps asking could starve it forever (failure mode: starved class).
        raise ConfigError(
            "TOKEN_MIN_SHARE_BACKFILL",
            s.min_share_backfill,
            "must be above 0: it is what bounds the backfiller's wait when the "
            "upserter keeps asking (e.g. 0.01 for 1% of the refill)",
        )
    shares = s.min_share_upsert + s.min_share_backfill
    if shares > 1.0:
        raise ConfigError(
            "TOKEN_MIN_SHARE_BACKFILL",
            s.min_share_backfill,
            f"shares add up to {shares:g}; the refill can't be promised twice "
            "(TOKEN_MIN_SHARE_UPSERT + TOKEN_MIN_SHARE_BACKFILL <= 1)",
        )
    if s.min_share_upsert <= 0 and s.min_share_backfill >= 1.0:
        # A class without a share lives on what the shares leave over; with the
        # whole refill promised to the backfiller, the upserter would have no bound.
        raise ConfigError(
            "TOKEN_MIN_SHARE_BACKFILL",
            s.min_share_backfill,
            "must be below 1 while TOKEN_MIN_SHARE_UPSERT=0: the whole refill "
            "promised to the backfiller leaves the upserter nothing it is sure to "
            "get (give the upserter a share, or lower this one)",
        )


def evaluation_can_accept(s: RuntimeSettings) -> None:
    """Ranges that would reject every deal, for free and without saying why."""
    if s.buy_price_min_cents > s.buy_price_max_cents:
        raise ConfigError(
            "BUY_PRICE_MIN_CENTS",
            s.buy_price_min_cents,
            f"must not exceed BUY_PRICE_MAX_CENTS={s.buy_price_max_cents}",
        )
    if s.sales_rank_min > s.sales_rank_max:
        raise ConfigError(
            "SALES_RANK_MIN",
            s.sales_rank_min,
            f"must not exceed SALES_RANK_MAX={s.sales_rank_max}",
        )
    if abs(s.referral_fee_percent * 100 - s.referral_fee_bps) > 1e-9:
        raise ConfigError(
            "REFERRAL_FEE_PERCENT", s.referral_fee_percent, "must have at most two decimals"
        )
    if not 0 <= s.referral_fee_bps < 10_000:
        raise ConfigError("REFERRAL_FEE_PERCENT", s.referral_fee_percent, "must be within 0..99.99")


def history_covers_a_day(s: RuntimeSettings) -> None:
    """status and doctor judge progress over the last 24 hours of runs."""
    if 0 < s.history_keep_s < 2 * 86_400:
        raise ConfigError(
            "HISTORY_KEEP_S",
            s.history_keep_s,
            "must be 0 (keep forever) or at least 172800 (2 days): status and doctor "
            "read the last 24 hours of runs",
        )


def grants_outlive_a_call(s: RuntimeSettings) -> None:
    """A grant stays unsettled at least as long as one call's timeouts."""
    worst_call_s = s.keepa_connect_timeout_s + s.keepa_read_timeout_s
    if s.grant_ttl_s < worst_call_s:
        raise ConfigError(
            "TOKEN_GRANT_TTL_S",
            s.grant_ttl_s,
            f"must cover one call's timeouts ({worst_call_s:g} s)",
        )


RULES: tuple[Callable[[RuntimeSettings], None], ...] = (
    reachable_thresholds,
    coherent_recharge,
    one_time_base,
    runs_end_by_themselves,
    bounded_waits,
    evaluation_can_accept,
    history_covers_a_day,
    grants_outlive_a_call,
)


def check_all(s: RuntimeSettings) -> None:
    """Run every rule group in order; the first refusal raises."""
    for rule in RULES:
        rule(s)
