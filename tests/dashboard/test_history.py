"""The compact history stored for accepted deals (schema v4) and the chart it feeds."""

from __future__ import annotations

import json
import re
import sqlite3

import pytest
from fastapi.testclient import TestClient

from keepa_deals.keepa.keepa_time import KEEPA_EPOCH_OFFSET_MIN
from keepa_deals.store import open_store, transaction
from keepa_deals.store.deal_history import MAX_POINTS, WINDOW_S, compact_history, save_history
from tests.dashboard.conftest import ASIN, NOW_S
from tests.support.harness import GENEROUS, HarnessFactory


def km(unix_s: int) -> int:
    return unix_s // 60 - KEEPA_EPOCH_OFFSET_MIN


def test_the_window_starts_with_the_value_then_in_force_and_skips_gaps() -> None:
    old, inside, gap, last = NOW_S - WINDOW_S - 3600, NOW_S - 86_400, NOW_S - 7200, NOW_S - 60
    product = {
        "csv": [
            None,
            None,
            [km(old), 1500, km(inside), 1700, km(gap), -1, km(last), 1900],
            [km(old), 90_000, km(last), 50_000],
        ]
    }
    points = compact_history(product, NOW_S)
    start = NOW_S - WINDOW_S
    assert points == {
        "used": [
            [start, 1500],
            [km(inside) * 60 + KEEPA_EPOCH_OFFSET_MIN * 60, 1700],
            [km(last) * 60 + KEEPA_EPOCH_OFFSET_MIN * 60, 1900],
        ],
        "rank": [[start, 90_000], [km(last) * 60 + KEEPA_EPOCH_OFFSET_MIN * 60, 50_000]],
    }


def test_a_long_history_is_cut_to_max_points_and_fits_the_bound() -> None:
    start = NOW_S - WINDOW_S
    series: list[int] = []
    for i in range(20_000):  # a point every ~6.5 minutes for 90 days
        series += [km(start + i * (WINDOW_S // 20_000)), 1_000_000 + i]
    points = compact_history({"csv": [None, None, series, series]}, NOW_S)
    assert len(points["used"]) == MAX_POINTS == len(points["rank"])
    assert points["used"][-1][1] == 1_000_000 + 19_999  # the newest value is kept
    times = [p[0] for p in points["used"]]
    assert times == sorted(times)
    assert len(json.dumps(points, separators=(",", ":"))) <= 16384


def test_a_missing_or_malformed_history_is_empty() -> None:
    assert compact_history({}, NOW_S) == {"used": [], "rank": []}
    assert compact_history({"csv": [None, None, [1, "x", True]]}, NOW_S) == {
        "used": [],
        "rank": [],
    }


def test_save_replaces_and_the_check_bounds_the_size(db_path: object) -> None:
    from pathlib import Path

    assert isinstance(db_path, Path)
    conn = open_store(db_path)
    try:
        with transaction(conn):
            save_history(conn, ASIN["A"], 1, {"used": [[1, 2]], "rank": []}, NOW_S - 10)
            save_history(conn, ASIN["A"], 1, {"used": [[3, 4]], "rank": []}, NOW_S)
        rows = conn.execute("SELECT captured_s, points_json FROM deal_history").fetchall()
        assert [tuple(r) for r in rows] == [(NOW_S, '{"used":[[3,4]],"rank":[]}')]
        with pytest.raises(sqlite3.IntegrityError), transaction(conn):
            save_history(conn, ASIN["B"], 1, {"used": [[1, 2]] * 4000, "rank": []}, NOW_S)
    finally:
        conn.close()


def test_the_detail_page_charts_the_stored_history(client: TestClient, db_path: object) -> None:
    from pathlib import Path

    assert isinstance(db_path, Path)
    conn = open_store(db_path)
    try:
        with transaction(conn):
            points = {
                "used": [[NOW_S - 86_400, 1500], [NOW_S - 60, 1400]],
                "rank": [[NOW_S - 60, 5000]],
            }
            save_history(conn, ASIN["A"], 1, points, NOW_S)
    finally:
        conn.close()
    html = client.get(f"/deal/1/{ASIN['A']}", headers={"accept": "text/html"}).text
    found = re.search(r'data-chart="([^"]+)"', html)
    assert found is not None
    import html as html_lib

    assert json.loads(html_lib.unescape(found.group(1))) == {"kind": "history", **points}
    assert (
        'id="no-history"'
        in client.get(f"/deal/1/{ASIN['B']}", headers={"accept": "text/html"}).text
    )


def test_the_harvest_stores_a_history_for_every_deal_it_accepts(
    make_harness: HarnessFactory,
) -> None:
    h = make_harness(**GENEROUS)
    h.backfill()
    accepted = {r[0] for r in h.conn.execute("SELECT asin FROM deals WHERE status = 'accepted'")}
    assert accepted
    stored = {
        r[0]: json.loads(r[1]) for r in h.conn.execute("SELECT asin, points_json FROM deal_history")
    }
    assert set(stored) == accepted
    assert all(s["used"] and s["rank"] for s in stored.values())


def test_a_repaired_zombie_gets_its_history_too(make_harness: HarnessFactory) -> None:
    """The backfiller's repair commits a product again (stage 2, with history): the
    chart follows, as for a deal accepted the first time."""
    h = make_harness(**GENEROUS)
    h.backfill()
    accepted = {r[0] for r in h.conn.execute("SELECT asin FROM deals WHERE status = 'accepted'")}
    assert accepted
    h.conn.execute("DELETE FROM deal_history")
    h.conn.execute(
        "UPDATE deals SET sell_price_cents = NULL, profit_cents = NULL, roi_percent = NULL"
        " WHERE status = 'accepted'"
    )
    h.backfill()
    repaired = {r[0] for r in h.conn.execute("SELECT asin FROM deals WHERE status = 'accepted'")}
    assert repaired
    stored = {r[0] for r in h.conn.execute("SELECT asin FROM deal_history")}
    assert repaired <= stored
