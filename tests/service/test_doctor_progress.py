"""doctor's progress verdict (failure mode "green but idle"), from a real deals database
in specific states; times are service seconds passed in as `now_s`."""

from __future__ import annotations

import sqlite3

from keepa_deals.config import Settings
from keepa_deals.infra.checks import Check
from keepa_deals.service.doctor import (
    STALL_AFTER_S,
    check_progress,
)
from keepa_deals.service.status import db_status
from tests.support.doctor_state import HOUR_S, NOW_S, add_deal, every
from tests.support.service_rows import add_run

# --- check_progress -----------------------------------------------------------------


def test_healthy_runs_and_deals_pass(settings: Settings, conn: sqlite3.Connection) -> None:
    for i, first_seen in enumerate((NOW_S - 200, NOW_S - 3 * HOUR_S, NOW_S - 20 * HOUR_S)):
        add_deal(conn, f"00000000{i:02d}", first_seen)
    add_run(conn, "upsert", NOW_S - 300, NOW_S - 290, "done", deals_seen=4, deals_accepted=1)
    add_run(conn, "upsert", NOW_S - 300 - 900, NOW_S - 1190, "done", deals_rejected=2)
    for started in every(NOW_S - 600, 60, 10):
        add_run(conn, "backfill", started, started + 20, "tokens", deals_rejected=1)
    check = check_progress(settings, now_s=NOW_S)
    assert check == Check(
        "progress",
        "ok",
        "last run 60s ago; last progress 40s ago; 24h: 12 runs evaluated 13 deals "
        "(1 accepted, 12 rejected); 0.12 new deals/hour; 0 pending",
    )


def test_stalled_with_tokens_available_fails(settings: Settings, conn: sqlite3.Connection) -> None:
    """Twenty green hours (failure mode: green but idle): runs keep happening, stop for reasons
    other than tokens, and evaluate nothing."""
    add_run(conn, "upsert", NOW_S - 4 * HOUR_S - 10, NOW_S - 4 * HOUR_S, "done", deals_accepted=1)
    for started in every(NOW_S - 4 * HOUR_S + 60, 600, 24):
        add_run(conn, "backfill", started, started + 5, "keepa_error")
    for started in (NOW_S - 2 * HOUR_S + 30, NOW_S - HOUR_S + 30):
        add_run(conn, "upsert", started, started + 5, "tokens", deals_seen=3, deals_deferred=3)
    check = check_progress(settings, now_s=NOW_S)
    assert check == Check(
        "progress",
        "fail",
        "nothing evaluated for 4.0h although runs stopped for other reasons than tokens: "
        "keepa_error x24, tokens x2",
    )


def test_stalled_only_for_tokens_is_explained_not_failed(
    settings: Settings, conn: sqlite3.Connection
) -> None:
    add_run(conn, "upsert", NOW_S - 4 * HOUR_S - 10, NOW_S - 4 * HOUR_S, "done", deals_accepted=1)
    for started in every(NOW_S - 4 * HOUR_S + 60, 600, 24):
        add_run(conn, "backfill", started, started + 5, "tokens", deals_deferred=2)
    for started in every(NOW_S - 3 * HOUR_S, 3600, 3):
        add_run(conn, "upsert", started, started + 5, "http_429")
    add_run(conn, "upsert", NOW_S - 1800, NOW_S - 1795, "keepa_timeout")
    check = check_progress(settings, now_s=NOW_S)
    assert check == Check(
        "progress",
        "warn",
        "nothing evaluated for 4.0h, explained by the token budget: runs since stopped "
        "tokens x24, http_429 x3, keepa_timeout x1",
    )


def test_as_many_other_stops_as_token_stops_is_not_explained_by_tokens(
    settings: Settings, conn: sqlite3.Connection
) -> None:
    add_run(conn, "upsert", NOW_S - 4 * HOUR_S - 10, NOW_S - 4 * HOUR_S, "done", deals_accepted=1)
    for i, started in enumerate(every(NOW_S - 3 * HOUR_S, 600, 18)):
        add_run(conn, "backfill", started, started + 5, "tokens" if i % 2 else "abandoned")
    check = check_progress(settings, now_s=NOW_S)
    assert check.outcome == "fail"
    assert check.detail.endswith("than tokens: abandoned x9, tokens x9")


def test_only_rejecting_is_progress(settings: Settings, conn: sqlite3.Connection) -> None:
    """Rejections leave deals.last_evaluated_s alone: judged by it, this healthy service
    would have failed after 3 h."""
    add_deal(conn, "0000000001", NOW_S - 5 * HOUR_S)
    for started in every(NOW_S - 5 * HOUR_S, 600, 30):
        add_run(conn, "backfill", started, started + 30, "tokens", deals_peeked=4, deals_rejected=4)
    assert db_status(settings.deals_db_path, NOW_S)["newest_evaluation_age_s"] > STALL_AFTER_S
    check = check_progress(settings, now_s=NOW_S)
    assert check.outcome == "ok", check
    assert check.detail.startswith("last run 600s ago; last progress 570s ago; 24h: 30 runs ")
    assert "evaluated 120 deals (0 accepted, 120 rejected)" in check.detail


def test_a_quiet_market_is_healthy(settings: Settings, conn: sqlite3.Connection) -> None:
    """No new deal for hours, runs finishing `done` with nothing to do: caught up."""
    add_deal(conn, "0000000001", NOW_S - 6 * HOUR_S)
    for started in every(NOW_S - 5 * HOUR_S, 900, 20):
        add_run(conn, "upsert", started, started + 3, "done", tokens_discovery=1)
    check = check_progress(settings, now_s=NOW_S)
    assert check == Check(
        "progress",
        "ok",
        "last run 900s ago; last progress 897s ago; 24h: 20 runs evaluated 0 deals "
        "(0 accepted, 0 rejected); 0.04 new deals/hour; 0 pending",
    )


def test_no_run_started_recently_fails(settings: Settings, conn: sqlite3.Connection) -> None:
    # Allowed: twice the longest schedule (UPSERT_EVERY_S=900) plus a minute.
    add_run(conn, "backfill", NOW_S - 1861, NOW_S - 1850, "done")
    assert check_progress(settings, now_s=NOW_S) == Check(
        "progress", "fail", "no run started for 1861s: beat or the worker is down"
    )
    assert check_progress(settings, now_s=NOW_S - 1).outcome == "ok"


def test_runs_that_never_evaluated_anything_fail_after_the_stall_time(
    settings: Settings, conn: sqlite3.Connection
) -> None:
    for started in every(NOW_S - STALL_AFTER_S, 600, 18):
        add_run(conn, "backfill", started, started + 2, "keepa_key")
    # Exactly STALL_AFTER_S since the first run: not yet.
    assert check_progress(settings, now_s=NOW_S).outcome == "ok"
    assert check_progress(settings, now_s=NOW_S + 1) == Check(
        "progress",
        "fail",
        "nothing evaluated ever for 3.0h although runs stopped for other reasons than tokens: "
        "keepa_key x18",
    )


def test_no_run_recorded_yet_is_a_warning(settings: Settings, conn: sqlite3.Connection) -> None:
    assert check_progress(settings, now_s=NOW_S) == Check(
        "progress", "warn", "no run recorded yet (is beat running?)"
    )


def test_a_missing_database_fails(settings: Settings) -> None:
    assert check_progress(settings, now_s=NOW_S) == Check("progress", "fail", "database missing")
