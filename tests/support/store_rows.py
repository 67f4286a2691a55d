"""Deal rows to put in a test database (the `conn` and `db_path` fixtures are in
tests/conftest.py)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from keepa_deals.store import DealRow, DealStatus, Source

NOW_S = 1_767_225_600  # 2026-01-01 00:00 UTC


def accepted_row(asin: str = "0123456789", **changes: Any) -> DealRow:
    """A complete accepted deal, as stage 2 would store it."""
    row = DealRow(
        asin=asin,
        domain=1,
        status=DealStatus.ACCEPTED,
        source=Source.UPSERT,
        first_seen_s=NOW_S,
        last_seen_s=NOW_S,
        title="The Quiet Harbour",
        root_category_id=283155,
        category="Literature & Fiction",
        buy_price_cents=2_359,
        sell_price_cents=4_516,
        avg90_price_cents=5_858,
        referral_fee_cents=677,
        closing_fee_cents=180,
        fba_fee_cents=350,
        fees_cents=1_207,
        profit_cents=950,
        roi_percent=40.27,
        sales_rank=84_211,
        rank_drops_90=12,
        percent_drop=38,
        deal_created_s=NOW_S - 600,
        keepa_last_update_s=NOW_S - 600,
        last_evaluated_s=NOW_S,
    )
    return replace(row, **changes)
