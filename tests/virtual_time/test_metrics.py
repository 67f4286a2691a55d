"""The report's arithmetic on hand-made samples."""

from __future__ import annotations

from keepa_deals.virtual_time.ledger import LedgerTotals
from keepa_deals.virtual_time.metrics import backlog_window, percentile
from keepa_deals.virtual_time.sampling import Sample


def sample(
    at_s: float, charged: int, refilled: int, lost: int, pending: int, accepted: int
) -> Sample:
    totals = LedgerTotals(charged=charged, refilled=refilled, lost_to_cap=lost)
    return Sample(at_s, totals, pending, accepted, estimate=None, recharge=False)


def test_percentiles_are_nearest_rank() -> None:
    assert percentile([], 0.5) is None
    assert percentile([5.0], 0.95) == 5.0
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.50) == 50.0
    assert percentile(values, 0.95) == 95.0
    assert percentile([3.0, 1.0, 2.0], 0.5) == 2.0


def test_the_backlog_window_counts_only_intervals_with_work_waiting_at_both_ends() -> None:
    samples = [
        sample(0, 0, 0, 0, pending=0, accepted=0),
        sample(60, 10, 5, 0, pending=4, accepted=1),  # 0 -> 4: not a backlog interval
        sample(120, 15, 10, 0, pending=3, accepted=2),  # backlog: spent 5 of 5
        sample(180, 17, 12, 3, pending=1, accepted=2),  # backlog: spent 2 of 5 (3 lost)
        sample(240, 22, 17, 3, pending=0, accepted=3),  # ends empty: not counted
    ]
    window = backlog_window(samples)
    assert window["spent"] == 7
    assert window["supplied"] == 10
    assert window["utilization"] == 0.7
    assert window["hours"] == round(120 / 3600, 2)
    assert window["accepted"] == 1


def test_no_backlog_means_no_backlog_figures() -> None:
    window = backlog_window([sample(0, 0, 0, 0, 0, 0), sample(60, 5, 5, 0, 0, 0)])
    assert window["utilization"] is None
    assert window["accepted_per_hour"] is None
