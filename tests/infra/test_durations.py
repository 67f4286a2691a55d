"""How durations read in the CLIs, doctor and the Diagnostics."""

from __future__ import annotations

import pytest

from keepa_deals.infra.durations import duration


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (119.4, "119s"),
        (120, "2min"),
        (3209.9, "53min"),
        (7199, "120min"),
        (7200, "2.0h"),
        (5 * 3600 + 180, "5.0h"),
        (float("inf"), "until another class acts"),
    ],
)
def test_a_duration_reads_in_the_unit_that_fits(seconds: float, text: str) -> None:
    assert duration(seconds) == text


def test_none_reads_as_the_callers_word_for_it() -> None:
    assert duration(None) == "n/a"
    assert duration(None, "unbounded") == "unbounded"
