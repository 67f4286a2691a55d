"""Settings: the cross-setting rule groups, each refusal with its message."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from keepa_deals.config import (
    Settings,
)
from keepa_deals.errors import ConfigError
from tests.support.settings_env import from_env

# --- cross-setting rules ----------------------------------------------------------------

RULES = [
    (
        {"HARVEST_MAX_RUN_S": "900", "TASK_SOFT_TIME_LIMIT_S": "900"},
        "HARVEST_MAX_RUN_S",
        "must be below TASK_SOFT_TIME_LIMIT_S",
    ),
    (
        {"TASK_SOFT_TIME_LIMIT_S": "900", "TASK_TIME_LIMIT_S": "900"},
        "TASK_TIME_LIMIT_S",
        "must be above TASK_SOFT_TIME_LIMIT_S",
    ),
    (
        {"TOKEN_MIN_SHARE_BACKFILL": "0"},
        "TOKEN_MIN_SHARE_BACKFILL",
        "must be above 0",
    ),
    (
        {"KEEPA_PLAN_RATE": "1", "TOKEN_THRESHOLD_BACKFILL": "61", "RECHARGE_HIGH": "60"},
        "TOKEN_THRESHOLD_BACKFILL",
        "capacity is 60",
    ),
    (
        {
            "KEEPA_PLAN_RATE": "1",
            "TOKEN_THRESHOLD_UPSERT": "61",
            "TOKEN_THRESHOLD_BACKFILL": "61",
            "RECHARGE_HIGH": "60",
        },
        "TOKEN_THRESHOLD_UPSERT",
        "capacity is 60",
    ),
    (
        {"TOKEN_THRESHOLD_UPSERT": "61", "TOKEN_THRESHOLD_BACKFILL": "60"},
        "TOKEN_THRESHOLD_UPSERT",
        "TOKEN_THRESHOLD_BACKFILL=60",
    ),
    ({"KEEPA_PLAN_RATE": "4"}, "RECHARGE_HIGH", "capacity 240"),
    ({"RECHARGE_LOW": "280"}, "RECHARGE_LOW", "RECHARGE_HIGH=280"),
    (
        {"RECHARGE_LOW": "-180", "TOKEN_DEFICIT_FLOOR": "-180"},
        "RECHARGE_LOW",
        "TOKEN_DEFICIT_FLOOR=-180",
    ),
    (
        {"TOKEN_MIN_SHARE_UPSERT": "0.5", "TOKEN_MIN_SHARE_BACKFILL": "0.6"},
        "TOKEN_MIN_SHARE_BACKFILL",
        "TOKEN_MIN_SHARE_UPSERT",
    ),
    (
        {"TOKEN_MIN_SHARE_BACKFILL": "1"},
        "TOKEN_MIN_SHARE_BACKFILL",
        "while TOKEN_MIN_SHARE_UPSERT=0",
    ),
    (
        {"TOKEN_GRANT_TTL_S": "44", "KEEPA_CONNECT_TIMEOUT_S": "5", "KEEPA_READ_TIMEOUT_S": "40"},
        "TOKEN_GRANT_TTL_S",
        "45 s",
    ),
    ({"HISTORY_KEEP_S": "172799"}, "HISTORY_KEEP_S", "at least 172800 (2 days)"),
]


@pytest.mark.parametrize(("values", "variable", "explains"), RULES)
def test_an_incoherent_combination_is_refused_naming_the_setting(
    tmp_path: Path, values: dict[str, str], variable: str, explains: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        from_env(values, tmp_path)
    assert caught.value.variable == variable
    assert str(caught.value).startswith(f"{variable}=")
    assert explains in str(caught.value)


@pytest.mark.parametrize(
    "values",
    [
        {"KEEPA_PLAN_RATE": "1", "TOKEN_THRESHOLD_BACKFILL": "60", "RECHARGE_HIGH": "60"},
        {"TOKEN_THRESHOLD_UPSERT": "60", "TOKEN_THRESHOLD_BACKFILL": "60"},
        {"TOKEN_THRESHOLD_BACKFILL": "300", "RECHARGE_HIGH": "300"},
        {"RECHARGE_LOW": "279"},
        {"RECHARGE_LOW": "-179", "TOKEN_DEFICIT_FLOOR": "-180"},
        {"TOKEN_MIN_SHARE_UPSERT": "0.7", "TOKEN_MIN_SHARE_BACKFILL": "0.3"},
        {"TOKEN_MIN_SHARE_BACKFILL": "0.99"},
        {"TOKEN_MIN_SHARE_UPSERT": "0.01", "TOKEN_MIN_SHARE_BACKFILL": "0.99"},
        {"TOKEN_GRANT_TTL_S": "45", "KEEPA_CONNECT_TIMEOUT_S": "5", "KEEPA_READ_TIMEOUT_S": "40"},
        {"HISTORY_KEEP_S": "172800"},
        {"HISTORY_KEEP_S": "0"},
    ],
)
def test_the_limits_themselves_are_allowed(tmp_path: Path, values: dict[str, str]) -> None:
    settings = from_env(values, tmp_path)
    assert settings.masked()[next(iter(values))] == next(iter(values.values()))


def test_the_rules_hold_however_settings_are_built() -> None:
    with pytest.raises(ConfigError, match=r"^RECHARGE_HIGH="):
        Settings(plan_rate=4)
    with pytest.raises(ConfigError, match=r"^RECHARGE_HIGH="):
        Settings().with_overrides({"KEEPA_PLAN_RATE": "4"})
    with pytest.raises(ConfigError, match=r"^RECHARGE_HIGH="):
        dataclasses.replace(Settings(), plan_rate=4)
