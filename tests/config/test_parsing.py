"""Settings: one bad value, one ConfigError naming the variable, the value and what is allowed."""

from __future__ import annotations

from pathlib import Path

import pytest

from keepa_deals.config import (
    VARIABLES,
    Settings,
    Var,
)
from keepa_deals.errors import ConfigError
from tests.support.settings_env import KEY, REDIS_PASSWORD, from_env

# --- one bad value, one error ----------------------------------------------------------

BAD_VALUES = [
    ("KEEPA_API_URL", "ftp://api.keepa.com", "http or https"),
    ("KEEPA_API_URL", "api.keepa.com", "http or https"),
    ("KEEPA_DOMAIN", "7", "domain ids"),
    ("KEEPA_DOMAIN", "com", "whole number"),
    ("KEEPA_CONNECT_TIMEOUT_S", "0", "at least 0.1"),
    ("KEEPA_CONNECT_TIMEOUT_S", "nan", "finite"),
    ("KEEPA_READ_TIMEOUT_S", "inf", "finite"),
    ("KEEPA_READ_TIMEOUT_S", "301", "at most 300"),
    ("KEEPA_READ_TIMEOUT_S", "fast", "a number"),
    ("KEEPA_MAX_RETRIES", "-1", "at least 0"),
    ("KEEPA_MAX_RETRIES", "11", "at most 10"),
    ("KEEPA_MAX_RETRIES", "2.5", "whole number"),
    ("REDIS_URL", "http://127.0.0.1:6379/0", "redis or rediss or unix"),
    ("REDIS_URL", "redis:///0", "redis or rediss or unix"),
    ("KEEPA_REDIS_PREFIX", "has space", "1-64 characters"),
    ("KEEPA_REDIS_PREFIX", "x" * 65, "1-64 characters"),
    ("DEALS_DB_PATH", "  ", "file path"),
    ("KEEPA_PLAN_RATE", "0", "at least 1"),
    ("TOKEN_THRESHOLD_UPSERT", "0", "at least 1"),
    ("TOKEN_THRESHOLD_BACKFILL", "lots", "whole number"),
    ("TOKEN_MIN_SHARE_UPSERT", "-0.1", "at least 0"),
    ("TOKEN_MIN_SHARE_BACKFILL", "1.5", "at most 1"),
    ("TOKEN_DEFICIT_FLOOR", "5", "at most 0"),
    ("RECHARGE_LOW", "low", "whole number"),
    ("RECHARGE_HIGH", "0", "at least 1"),
    ("RECHARGE_TIMEOUT_S", "59", "at least 60"),
    ("RECHARGE_GATED_CLASSES", "backfill,bogus", "upsert, backfill"),
    ("TOKEN_SYNC_INTERVAL_S", "10", "at least 60"),
    ("TOKEN_GRANT_TTL_S", "9", "at least 10"),
    ("TOKEN_DEMAND_TTL_S", "0", "at least 1"),
]
GARBAGE = ["garbage", "", "  ", "-99999999999999999999", "1e999", "nan", "0x10", "3,5", "\u00e9"]


@pytest.mark.parametrize("var", VARIABLES, ids=lambda var: var.name)
def test_every_variable_parses_or_raises_a_config_error_naming_it(var: Var) -> None:
    """Also holds for variables added later: never a bare ValueError, never a crash."""
    for raw in GARBAGE:
        try:
            var.parse(var.name, raw)
        except ConfigError as error:
            assert error.variable == var.name
            assert str(error).startswith(f"{var.name}=")
    default = getattr(Settings(), var.attr)
    if isinstance(default, int | float) and not isinstance(default, bool):
        assert var.parse(var.name, var.default) == default
        with pytest.raises(ConfigError):
            var.parse(var.name, "garbage")  # numbers refuse words


@pytest.mark.parametrize(("name", "value", "allowed"), BAD_VALUES)
def test_a_bad_value_names_the_variable_the_value_and_what_is_allowed(
    tmp_path: Path, name: str, value: str, allowed: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        from_env({name: value}, tmp_path)
    error = caught.value
    assert error.variable == name
    assert name in str(error)
    assert value.strip() in str(error)
    assert allowed in str(error)


@pytest.mark.parametrize("key", ["too-short", "has-dashes-" + KEY, KEY + "!", "x" * 129])
def test_a_bad_key_is_refused_without_being_echoed(tmp_path: Path, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        from_env({"KEEPA_API_KEY": key}, tmp_path)
    assert caught.value.variable == "KEEPA_API_KEY"
    assert "letters and digits" in str(caught.value)
    assert key not in str(caught.value)
    assert key not in repr(caught.value.args)
    assert caught.value.value != key


@pytest.mark.parametrize(
    "url",
    [
        f"http://user:{REDIS_PASSWORD}@cache.example:6379/0",
        f"http://cache.example:6379/0?password={REDIS_PASSWORD}",
        f"redis://[cache.example:6379/0?password={REDIS_PASSWORD}",  # unparseable
    ],
)
def test_a_bad_redis_url_does_not_echo_its_password(tmp_path: Path, url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        from_env({"REDIS_URL": url}, tmp_path)
    assert caught.value.variable == "REDIS_URL"
    assert "cache.example" in str(caught.value)
    assert REDIS_PASSWORD not in str(caught.value)


@pytest.mark.parametrize(
    ("name", "value"),
    [("REDIS_URL", "redis://[::1/0"), ("KEEPA_API_URL", "http://[api.keepa.com")],
)
def test_an_unparseable_url_is_a_config_error(tmp_path: Path, name: str, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        from_env({name: value}, tmp_path)
    assert caught.value.variable == name


@pytest.mark.parametrize(
    ("name", "value"),
    [("REDIS_URL", "redis://127.0.0.1:99999/0"), ("KEEPA_API_URL", "http://127.0.0.1:0x50")],
)
def test_a_url_with_a_bad_port_is_a_config_error(tmp_path: Path, name: str, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        from_env({name: value}, tmp_path)
    assert caught.value.variable == name


def test_a_unix_socket_redis_url_is_accepted(tmp_path: Path) -> None:
    url = "unix:///run/redis/redis.sock?db=0"
    assert from_env({"REDIS_URL": url}, tmp_path).redis_url == url
