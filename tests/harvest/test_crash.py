"""A run killed mid-batch, then run again, ends exactly where an uninterrupted run does:
the same deal rows, no duplicates, nothing lost."""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest

from keepa_deals.store import count_pending, get_cursor, get_watermark
from tests.support.harness import GENEROUS, Harness, HarnessFactory, deal_rows

# Plenty of tokens: no run waits, so the clock (and every time written) is the same in
# both worlds.
ABUNDANT: dict[str, Any] = {"refill_rate": 1000, "catalogue_size": 6000, **GENEROUS}


def _harvest(h: Harness) -> None:
    h.upsert()
    h.backfill()


def _outcome(conn: sqlite3.Connection) -> dict[str, Any]:
    return {
        "deals": deal_rows(conn),
        "rejections": [
            tuple(r)
            for r in conn.execute(
                "SELECT asin, domain, price_cents, stage, reason, times FROM rejections"
                " ORDER BY asin, price_cents"
            )
        ],
        "quarantine": conn.execute("SELECT COUNT(*) FROM quarantine").fetchone()[0],
        "pending": count_pending(conn),
        "watermark": get_watermark(conn),
        "cursor": get_cursor(conn),
    }


@pytest.mark.parametrize(
    ("target", "nth"),
    [
        ("keepa_deals.harvest.pending.upsert_deal", 3),  # stage 2's batch
        ("keepa_deals.harvest.products.record_rejection", 40),  # stage 0/1 verdicts
        ("keepa_deals.harvest.discovery.add_pending", 2),  # a page and its cursor
        ("keepa_deals.harvest.pending.remove_pending", 5),  # the end of a batch
    ],
)
def test_a_run_killed_mid_batch_then_rerun_ends_like_an_uninterrupted_one(
    make_harness: HarnessFactory, monkeypatch: pytest.MonkeyPatch, target: str, nth: int
) -> None:
    calm = make_harness(**ABUNDANT)
    _harvest(calm)
    expected = _outcome(calm.conn)
    assert expected["deals"] and expected["rejections"] and expected["pending"] == 0

    crashy = make_harness(**ABUNDANT)
    module, name = target.rsplit(".", 1)
    real = getattr(__import__(module, fromlist=[name]), name)
    calls = 0

    def dies_on_nth_call(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == nth:
            raise RuntimeError(f"killed in {name}")
        return real(*args, **kwargs)

    monkeypatch.setattr(target, dies_on_nth_call)
    with pytest.raises(RuntimeError, match="killed"):
        _harvest(crashy)
    monkeypatch.undo()
    _harvest(crashy)
    assert _outcome(crashy.conn) == expected
    assert crashy.clock.now() == calm.clock.now()
