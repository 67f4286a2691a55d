"""Every dashboard sort walks an index (schema v5, v6) and stops after a page: no sort
of every accepted row, first page or deep one, whatever the filters."""

from __future__ import annotations

from pathlib import Path

import pytest

from keepa_deals.dashboard.costs import MyCosts
from keepa_deals.dashboard.deals import SORT_COLUMNS, Cursor, DealFilters, Sort, _select
from keepa_deals.store import connect_readonly
from tests.dashboard.conftest import NOW_S

NO_COSTS = MyCosts()


def plan(db_path: Path, sort: Sort, after: Cursor | None, costs: MyCosts = NO_COSTS) -> str:
    # Every filter on an indexed column: the plan must still walk the sort's index.
    filters = DealFilters(
        category="Textbooks",
        min_profit_cents=1,
        min_roi_percent=1.0,
        max_sales_rank=100_000,
        min_rank_drops_90=1,
        min_percent_drop=1,
        min_buy_cents=100,
        max_buy_cents=5000,
    )
    sql, args = _select(filters, sort, costs, NOW_S, after)
    args["limit"] = 51
    conn = connect_readonly(db_path)
    try:
        return " / ".join(str(r[3]) for r in conn.execute("EXPLAIN QUERY PLAN " + sql, args))
    finally:
        conn.close()


@pytest.mark.parametrize("column", sorted(SORT_COLUMNS))
@pytest.mark.parametrize("order", ["asc", "desc"])
@pytest.mark.parametrize("deep", [False, True])
def test_each_sort_walks_its_index(db_path: Path, column: str, order: str, deep: bool) -> None:
    after = Cursor(1000, 3) if deep else None
    found = plan(db_path, Sort(column, order), after)  # type: ignore[arg-type]
    assert "USING INDEX deals_accepted_by_" in found, found
    assert "TEMP B-TREE" not in found, found
    if deep:  # the cursor seeks into the index rather than scanning from its start
        assert found.startswith("SEARCH"), found


def test_my_costs_profit_sort_cannot_use_an_index(db_path: Path) -> None:
    """Recomputed profit is an expression of the user's costs: a sort (documented)."""
    found = plan(db_path, Sort("profit_cents", "desc"), None, MyCosts(prep_fee_cents=100))
    assert "TEMP B-TREE" in found


@pytest.mark.parametrize("column", sorted(SORT_COLUMNS))
def test_first_seen_within_reads_only_its_window(db_path: Path, column: str) -> None:
    """A recent window is small: read through deals_accepted_by_first_seen, then sorted."""
    sql, args = _select(
        DealFilters(seen_within="24h", min_buy_cents=100),
        Sort(column, "desc"),  # type: ignore[arg-type]
        NO_COSTS,
        NOW_S,
        None,
    )
    args["limit"] = 51
    conn = connect_readonly(db_path)
    try:
        found = " / ".join(str(r[3]) for r in conn.execute("EXPLAIN QUERY PLAN " + sql, args))
    finally:
        conn.close()
    assert "USING INDEX deals_accepted_by_first_seen (first_seen_s>?)" in found, found
