"""Beat's schedule on the virtual clock: ticks from the origin, expired ticks dropped."""

from __future__ import annotations

import pytest

from keepa_deals.virtual_time.schedule import BeatSchedule

T0 = 1000.0


def test_both_tasks_are_due_at_the_origin_upserter_first() -> None:
    beat = BeatSchedule(T0, {"upsert": 900, "backfill": 60})
    assert beat.next_due_s() == T0
    assert beat.due(T0) == ["upsert", "backfill"]


def test_a_quick_run_moves_to_the_next_tick() -> None:
    beat = BeatSchedule(T0, {"upsert": 900, "backfill": 60})
    beat.ran("upsert", T0)
    beat.ran("backfill", T0 + 5)
    assert beat.next_due_s() == T0 + 60
    assert beat.due(T0 + 60) == ["backfill"]
    assert beat.ticks_skipped == {"upsert": 0, "backfill": 0}


def test_a_run_past_its_next_tick_runs_again_at_once_for_that_tick() -> None:
    # The message of the tick at T0+60 is still alive until T0+120.
    beat = BeatSchedule(T0, {"backfill": 60})
    beat.ran("backfill", T0 + 90)
    assert beat.next_due_s() == T0 + 60
    assert beat.due(T0 + 90) == ["backfill"]


def test_ticks_that_expired_during_a_long_run_are_dropped_not_replayed() -> None:
    beat = BeatSchedule(T0, {"backfill": 60})
    beat.ran("backfill", T0 + 200)  # ticks at 60 and 120 expired; 180 is alive
    assert beat.next_due_s() == T0 + 180
    assert beat.ticks_skipped["backfill"] == 2
    beat.ran("backfill", T0 + 200)
    assert beat.next_due_s() == T0 + 240


def test_a_run_ending_exactly_when_a_tick_expires_drops_it() -> None:
    beat = BeatSchedule(T0, {"backfill": 60})
    beat.ran("backfill", T0 + 120)  # the tick at 60 expires at 120
    assert beat.next_due_s() == T0 + 120


def test_periods_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        BeatSchedule(T0, {"upsert": 0})
