"""Settings: the documented defaults, and simulate's NAME=VALUE overrides."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from keepa_deals.config import (
    DEFAULT_DEAL_QUERY,
    VARIABLES,
    Settings,
)
from keepa_deals.errors import ConfigError
from keepa_deals.keepa.deal_query import load_deal_query
from tests.support.settings_env import KEY, from_env

# --- defaults ------------------------------------------------------------------------


def test_the_defaults_are_the_documented_ones(tmp_path: Path) -> None:
    settings = from_env({}, tmp_path)
    assert settings == Settings()
    assert settings.keepa_api_key is None
    assert settings.keepa_api_url == "https://api.keepa.com"
    assert settings.keepa_domain == 1
    assert settings.redis_url == "redis://127.0.0.1:6379/0"
    assert settings.redis_prefix == "keepa:"
    assert settings.deals_db_path == Path("var/deals.db")
    assert settings.deal_query_path == DEFAULT_DEAL_QUERY
    assert settings.plan_capacity == 300


def test_each_variable_default_parses_to_the_field_default() -> None:
    defaults = Settings()
    for var in VARIABLES:
        assert var.parse(var.name, var.default) == getattr(defaults, var.attr), var.name


def test_the_shipped_deal_query_is_a_valid_selection() -> None:
    selection = load_deal_query(DEFAULT_DEAL_QUERY)
    assert selection["domainId"] == 1
    assert len(selection["priceTypes"]) == 1


def test_values_are_parsed_into_their_types(tmp_path: Path) -> None:
    settings = from_env(
        {
            "KEEPA_API_KEY": f"  {KEY} ",
            "KEEPA_API_URL": "http://127.0.0.1:8765/",
            "KEEPA_DOMAIN": "3",
            "KEEPA_READ_TIMEOUT_S": "12.5",
            "REDIS_URL": "rediss://cache.example:6380/2",
            "KEEPA_REDIS_PREFIX": "test-1:",
            "DEALS_DB_PATH": "~/deals.db",
            "DEAL_QUERY_PATH": "queries/mine.json",
            "RECHARGE_GATED_CLASSES": " backfill , upsert ",
            "TOKEN_DEFICIT_FLOOR": "-50",
        },
        tmp_path,
    )
    assert settings.keepa_api_key == KEY
    assert settings.keepa_api_url == "http://127.0.0.1:8765"  # no trailing slash
    assert settings.keepa_domain == 3
    assert settings.keepa_read_timeout_s == 12.5
    assert settings.redis_url == "rediss://cache.example:6380/2"
    assert settings.redis_prefix == "test-1:"
    assert settings.deals_db_path == Path.home() / "deals.db"
    assert settings.deal_query_path == Path("queries/mine.json")
    assert settings.recharge_gated_classes == ("backfill", "upsert")
    assert settings.deficit_floor == -50


def test_an_empty_key_means_no_key(tmp_path: Path) -> None:
    assert from_env({"KEEPA_API_KEY": "  "}, tmp_path).keepa_api_key is None


# --- with_overrides ---------------------------------------------------------------------


def test_overrides_use_the_variable_names_and_leave_the_original_alone() -> None:
    base = Settings()
    changed = base.with_overrides({"KEEPA_DOMAIN": "3", "RECHARGE_GATED_CLASSES": "upsert"})
    assert (changed.keepa_domain, changed.recharge_gated_classes) == (3, ("upsert",))
    assert (base.keepa_domain, base.recharge_gated_classes) == (1, ("backfill",))
    assert dataclasses.replace(changed, keepa_domain=1, recharge_gated_classes=("backfill",)) == (
        base
    )


def test_an_unknown_override_is_refused_by_name() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings().with_overrides({"KEEPA_DOMIAN": "3"})
    assert caught.value.variable == "KEEPA_DOMIAN"
    assert "not a keepa-deals setting" in str(caught.value)


def test_a_bad_override_value_is_refused_like_the_environment() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings().with_overrides({"KEEPA_MAX_RETRIES": "many"})
    assert caught.value.variable == "KEEPA_MAX_RETRIES"
    assert "many" in str(caught.value)
