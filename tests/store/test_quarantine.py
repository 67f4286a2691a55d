"""quarantine: an ASIN that fails repeatedly is set aside with its reason."""

from __future__ import annotations

import sqlite3

from keepa_deals.store import (
    clear_failures,
    get_failure,
    is_quarantined,
    list_quarantined,
    quarantine,
    quarantined_among,
    record_failure,
    release,
)
from tests.support.store_rows import NOW_S


def test_the_third_failure_in_a_row_quarantines(conn: sqlite3.Connection) -> None:
    first = record_failure(conn, "000000000A", 1, "MalformedResponse", NOW_S, 3)
    assert (first.attempts, first.quarantined) == (1, False)
    record_failure(conn, "000000000A", 1, "KeepaTimeout", NOW_S + 60, 3)
    third = record_failure(conn, "000000000A", 1, "MalformedResponse", NOW_S + 120, 3)
    assert (third.attempts, third.quarantined_s, third.reason) == (
        3,
        NOW_S + 120,
        "MalformedResponse",
    )
    assert (third.first_failed_s, third.last_failed_s) == (NOW_S, NOW_S + 120)
    assert is_quarantined(conn, "000000000A", 1) and not is_quarantined(conn, "000000000A", 3)
    # Later failures keep the quarantine's start.
    fourth = record_failure(conn, "000000000A", 1, "x", NOW_S + 180, 3)
    assert fourth.quarantined_s == NOW_S + 120
    assert [f.asin for f in list_quarantined(conn)] == ["000000000A"]


def test_a_success_clears_failures_but_not_a_quarantine(conn: sqlite3.Connection) -> None:
    record_failure(conn, "000000000A", 1, "timeout", NOW_S, 3)
    record_failure(conn, "000000000A", 1, "timeout", NOW_S, 3)
    assert clear_failures(conn, "000000000A", 1)
    assert get_failure(conn, "000000000A", 1) is None
    assert record_failure(conn, "000000000A", 1, "timeout", NOW_S, 3).attempts == 1

    quarantine(conn, "000000000B", 1, "product not found", NOW_S)
    assert not clear_failures(conn, "000000000B", 1)
    assert is_quarantined(conn, "000000000B", 1)
    assert release(conn, "000000000B", 1) and not is_quarantined(conn, "000000000B", 1)


def test_a_page_is_filtered_in_one_call(conn: sqlite3.Connection) -> None:
    quarantine(conn, "000000000A", 1, "bad", NOW_S)
    record_failure(conn, "000000000B", 1, "flaky", NOW_S, 3)
    page = ["000000000A", "000000000B", "000000000C"]
    assert quarantined_among(conn, 1, page) == {"000000000A"}
