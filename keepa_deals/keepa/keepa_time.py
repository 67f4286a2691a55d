"""Keepa time: minutes since 2011-01-01 00:00 UTC.

A 2000 epoch reads fresh data as 2015 and freezes the watermark
(failure mode: wrong epoch). Every conversion in the project goes through this module.
"""

from __future__ import annotations

from datetime import UTC, datetime

KEEPA_EPOCH = datetime(2011, 1, 1, tzinfo=UTC)
# Minutes from the unix epoch to the Keepa epoch: unix_ms = (km + OFFSET) * 60000.
KEEPA_EPOCH_OFFSET_MIN = 21_564_000


def keepa_minutes_to_unix_ms(keepa_minutes: int) -> int:
    return (int(keepa_minutes) + KEEPA_EPOCH_OFFSET_MIN) * 60_000


def unix_ms_to_keepa_minutes(unix_ms: float) -> int:
    """Whole Keepa minutes at or before `unix_ms`."""
    return int(unix_ms // 60_000) - KEEPA_EPOCH_OFFSET_MIN


def keepa_minutes_to_datetime(keepa_minutes: int) -> datetime:
    return datetime.fromtimestamp(keepa_minutes_to_unix_ms(keepa_minutes) / 1000, tz=UTC)


def datetime_to_keepa_minutes(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError("naive datetime: Keepa time is UTC, pass an aware datetime")
    return unix_ms_to_keepa_minutes(moment.timestamp() * 1000)


def unix_s_to_keepa_minutes(unix_s: float) -> int:
    return unix_ms_to_keepa_minutes(unix_s * 1000)


def keepa_minutes_to_unix_s(keepa_minutes: int) -> float:
    return keepa_minutes_to_unix_ms(keepa_minutes) / 1000
