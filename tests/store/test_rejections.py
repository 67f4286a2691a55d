"""Rejections: reason, price at evaluation, time. The same ASIN at the same price is not
paid for twice."""

from __future__ import annotations

import sqlite3

import pytest

from keepa_deals.evaluation.stages import parse_deal
from keepa_deals.evaluation.verdicts import Reason, Rejected, Stage
from keepa_deals.store import (
    RejectionRecord,
    find_rejection,
    finish_run,
    has_rejection_at_price,
    record_rejection,
    rejected_at_prices,
    rejection_record,
    start_run,
)
from keepa_deals.store.runs import RunStats
from tests.support.store_rows import NOW_S


def rejection(price_cents: int = 1_299, at_s: int = NOW_S, **kw: object) -> RejectionRecord:
    fields: dict[str, object] = {
        "asin": "000000000A",
        "domain": 1,
        "price_cents": price_cents,
        "stage": Stage.PEEK,
        "reason": Reason.NO_RANK_DROPS,
        "rejected_s": at_s,
        "tokens_spent": 1,
    }
    fields.update(kw)
    return RejectionRecord(**fields)  # type: ignore[arg-type]


def test_the_same_price_is_known_a_new_price_is_not(conn: sqlite3.Connection) -> None:
    record_rejection(conn, rejection())
    assert has_rejection_at_price(conn, "000000000A", 1, 1_299)
    assert not has_rejection_at_price(conn, "000000000A", 1, 1_199)
    assert not has_rejection_at_price(conn, "000000000A", 3, 1_299)
    assert not has_rejection_at_price(conn, "000000000A", 1, 1_299, newer_than_s=NOW_S)
    assert has_rejection_at_price(conn, "000000000A", 1, 1_299, newer_than_s=NOW_S - 1)
    page = [("000000000A", 1_299), ("000000000A", 1_000), ("000000000B", 1_299)]
    assert rejected_at_prices(conn, 1, page) == {"000000000A"}


def test_rejecting_again_at_a_price_updates_one_row(conn: sqlite3.Connection) -> None:
    record_rejection(conn, rejection())
    record_rejection(
        conn,
        rejection(
            at_s=NOW_S + 60,
            stage=Stage.COMMIT,
            reason=Reason.PROFIT_TOO_LOW,
            tokens_spent=12,
            detail="profit 12c < 300c",
        ),
    )
    found = find_rejection(conn, "000000000A", 1, 1_299)
    assert found is not None
    assert (found.stage, found.reason, found.detail) == (
        "commit",
        "profit_too_low",
        "profit 12c < 300c",
    )
    assert (found.times, found.tokens_spent) == (2, 13)
    assert (found.first_rejected_s, found.rejected_s) == (NOW_S, NOW_S + 60)
    assert conn.execute("SELECT COUNT(*) FROM rejections").fetchone()[0] == 1
    assert conn.execute("SELECT typeof(price_cents) FROM rejections").fetchone()[0] == "integer"


def test_a_rejection_names_its_run(conn: sqlite3.Connection) -> None:
    run_id = start_run(conn, "upsert", NOW_S)
    record_rejection(conn, rejection(run_id=run_id))
    found = find_rejection(conn, "000000000A", 1, 1_299)
    assert found is not None and found.run_id == run_id
    finish_run(conn, run_id, RunStats(), "budget", NOW_S)
    with pytest.raises(sqlite3.IntegrityError):  # foreign keys are on
        record_rejection(conn, rejection(price_cents=5, run_id=run_id + 1000))


def test_bad_values_are_refused(conn: sqlite3.Connection) -> None:
    with pytest.raises(TypeError):
        rejection(price_cents="12.99")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="stage"):
        rejection(stage="later")


def test_a_verdict_is_remembered_by_the_deal_pages_price(conn: sqlite3.Connection) -> None:
    deal = parse_deal({"asin": "000000000A", "current": [-1, -1, 1_299, 80_000]})
    verdict = Rejected(Stage.PEEK, Reason.NO_RANK_DROPS, "0 rank drops", price_cents=1_350)
    record = rejection_record(
        verdict, asin="000000000A", domain=1, now_s=NOW_S, deal=deal, tokens_spent=1
    )
    record_rejection(conn, record)
    assert has_rejection_at_price(conn, "000000000A", 1, 1_299)
    # Without a deal page (a zombie repair), the price the stage read is the key.
    refresh = rejection_record(verdict, asin="000000000B", domain=1, now_s=NOW_S)
    assert (refresh.price_cents, refresh.stage, refresh.reason) == (1_350, "peek", "no_rank_drops")
    with pytest.raises(ValueError, match="not a verdict"):
        transient = Rejected(Stage.COMMIT, Reason.OFFERS_UNAVAILABLE, "failed", 1_299)
        rejection_record(transient, asin="000000000A", domain=1, now_s=NOW_S)
    with pytest.raises(ValueError, match="no price"):
        no_price = Rejected(Stage.COMMIT, Reason.NO_USED_OFFER, "none")
        rejection_record(no_price, asin="000000000A", domain=1, now_s=NOW_S)
