"""Keepa time, pinned to Keepa's own documented figures rather than to our constant: a
wrong epoch would otherwise pass every test that round-trips through the same module."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from keepa_deals.keepa.keepa_time import (
    datetime_to_keepa_minutes,
    keepa_minutes_to_datetime,
    keepa_minutes_to_unix_ms,
    keepa_minutes_to_unix_s,
    unix_ms_to_keepa_minutes,
    unix_s_to_keepa_minutes,
)


def test_keepa_s_documented_example() -> None:
    # keepa-api.md: unix_ms = (keepa_minutes + 21564000) * 60000; 411180 -> 1318510800000.
    assert keepa_minutes_to_unix_ms(411180) == 1_318_510_800_000
    assert unix_ms_to_keepa_minutes(1_318_510_800_000) == 411180
    assert keepa_minutes_to_unix_s(411180) == 1_318_510_800


def test_minute_zero_is_2011_01_01_utc() -> None:
    assert keepa_minutes_to_datetime(0) == datetime(2011, 1, 1, tzinfo=UTC)
    assert datetime_to_keepa_minutes(datetime(2011, 1, 1, tzinfo=UTC)) == 0
    assert keepa_minutes_to_datetime(411180) == datetime(2011, 10, 13, 13, 0, tzinfo=UTC)


@pytest.mark.parametrize("unix_s", [1_318_510_800, 1_796_123_456, 1_796_123_459.9])
def test_unix_seconds_round_down_to_the_keepa_minute(unix_s: float) -> None:
    minutes = unix_s_to_keepa_minutes(unix_s)
    assert keepa_minutes_to_unix_s(minutes) <= unix_s < keepa_minutes_to_unix_s(minutes + 1)
