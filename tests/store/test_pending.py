"""pending: deals fetched but not evaluated. No duplicates, nothing lost (failure mode: skipping
watermark)."""

from __future__ import annotations

import sqlite3
from dataclasses import replace

import pytest

from keepa_deals.keepa.keepa_time import unix_s_to_keepa_minutes
from keepa_deals.store import (
    PendingDeal,
    Source,
    add_pending,
    count_pending,
    is_pending,
    remove_pending,
    take_pending,
    transaction,
)
from tests.support.store_rows import NOW_S


def pending(asin: str, created_s: int, price_cents: int | None = 1_299) -> PendingDeal:
    """A deal created at `created_s` (a whole minute), as the /deal page sends it."""
    km = unix_s_to_keepa_minutes(created_s)
    current = [-1, -1, -1 if price_cents is None else price_cents]
    record = {"asin": asin, "creationDate": km, "lastUpdate": km, "current": current}
    return PendingDeal.from_deal(record, domain=1, source=Source.UPSERT, now_s=NOW_S)


def test_adding_a_deal_twice_keeps_one_row(conn: sqlite3.Connection) -> None:
    deal = pending("000000000A", NOW_S - 60)
    assert add_pending(conn, [deal, deal]) == 2
    add_pending(conn, [deal])
    assert count_pending(conn) == 1 and is_pending(conn, "000000000A", 1)
    assert take_pending(conn, 10) == [deal]
    stored = take_pending(conn, 10)[0]
    assert stored.deal["creationDate"] == unix_s_to_keepa_minutes(NOW_S - 60)
    assert (stored.deal_created_s, stored.keepa_last_update_s) == (NOW_S - 60, NOW_S - 60)
    assert (stored.summary.price_cents, stored.price_cents) == (1_299, 1_299)


def test_a_newer_record_replaces_an_older_one_and_not_the_reverse(
    conn: sqlite3.Connection,
) -> None:
    old = pending("000000000A", NOW_S - 600, 1_500)
    new = pending("000000000A", NOW_S - 60, 1_200)
    add_pending(conn, [new])
    add_pending(conn, [old])
    taken = take_pending(conn, 10)
    assert [(d.deal_created_s, d.price_cents) for d in taken] == [(NOW_S - 60, 1_200)]


def test_taking_gives_the_oldest_first_and_deletes_nothing(conn: sqlite3.Connection) -> None:
    add_pending(conn, [pending(f"00000000{n:02d}", NOW_S - n * 60) for n in range(10)])
    first = take_pending(conn, 3)
    assert [d.asin for d in first] == ["0000000009", "0000000008", "0000000007"]
    assert take_pending(conn, 3) == first and count_pending(conn) == 10
    with transaction(conn):
        assert remove_pending(conn, first) == 3
    assert [d.asin for d in take_pending(conn, 1)] == ["0000000006"]
    assert take_pending(conn, 10, domain=3) == []


def test_a_crash_before_the_verdicts_are_stored_loses_nothing(conn: sqlite3.Connection) -> None:
    add_pending(conn, [pending("000000000A", NOW_S), pending("000000000B", NOW_S)])
    taken = take_pending(conn, 10)
    with pytest.raises(RuntimeError), transaction(conn):
        remove_pending(conn, taken)
        raise RuntimeError("evaluation failed mid-batch")
    assert count_pending(conn) == 2


def test_a_newer_record_that_arrived_while_evaluating_survives_removal(
    conn: sqlite3.Connection,
) -> None:
    add_pending(conn, [pending("000000000A", NOW_S - 600)])
    taken = take_pending(conn, 1)
    add_pending(conn, [pending("000000000A", NOW_S - 60, 999)])  # the upserter, meanwhile
    assert remove_pending(conn, taken) == 0
    assert [d.price_cents for d in take_pending(conn, 1)] == [999]


def test_fields_are_checked(conn: sqlite3.Connection) -> None:
    with pytest.raises(TypeError, match="price_cents"):
        replace(pending("000000000A", NOW_S), price_cents="12.99")  # type: ignore[arg-type]
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute(
            "INSERT INTO pending VALUES ('000000000A', 1, 0, 0, 100, 'upsert', 'not json', 0, 0)"
        )


def test_taking_by_source_and_walking_on_from_the_last_deal_taken(
    conn: sqlite3.Connection,
) -> None:
    upserted = [pending(f"00000000U{n}", NOW_S - n * 120) for n in range(3)]
    backfilled = [
        replace(pending(f"00000000B{n}", NOW_S - n * 120 - 60), source=Source.BACKFILL)
        for n in range(3)
    ]
    add_pending(conn, [*upserted, *backfilled])
    assert [d.asin for d in take_pending(conn, 10, source=Source.UPSERT)] == [
        "00000000U2",
        "00000000U1",
        "00000000U0",
    ]
    assert {d.source for d in take_pending(conn, 10, source=Source.BACKFILL)} == {Source.BACKFILL}
    # A walk goes on after the last deal it took, even when that deal stays pending.
    first = take_pending(conn, 2)
    assert [d.asin for d in first] == ["00000000B2", "00000000U2"]
    rest = take_pending(conn, 10, after=(first[-1].deal_created_s, first[-1].asin))
    assert [d.asin for d in rest] == ["00000000B1", "00000000U1", "00000000B0", "00000000U0"]
    # Same creation minute: the ASIN breaks the tie, so nothing is skipped or repeated.
    twins = [pending(f"00000000T{n}", NOW_S - 3_600) for n in range(3)]
    add_pending(conn, twins)
    walk = take_pending(conn, 1)
    seen = [walk[0].asin]
    while walk:
        walk = take_pending(conn, 1, after=(walk[0].deal_created_s, walk[0].asin))
        seen += [d.asin for d in walk]
    assert seen[:3] == ["00000000T0", "00000000T1", "00000000T2"] and len(seen) == 9
    assert count_pending(conn) == 9
