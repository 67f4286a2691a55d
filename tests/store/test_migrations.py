"""Migrations: versioned by user_version, applied at open, an old database upgraded in
place with its data (failure mode: schema drift), and a database that differs from its version
refused."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from keepa_deals.store import (
    LATEST_VERSION,
    MIGRATIONS,
    Migration,
    SchemaDrift,
    SchemaTooNew,
    StoreError,
    check_schema,
    connect,
    get_deal,
    get_watermark,
    migrate,
    open_store,
    schema_version,
    top_deals,
)
from tests.support.store_rows import NOW_S


def objects(conn: sqlite3.Connection) -> set[tuple[str, str]]:
    rows = conn.execute("SELECT type, name FROM sqlite_schema WHERE name NOT LIKE 'sqlite_%'")
    return {(r[0], r[1]) for r in rows}


def test_a_new_database_gets_every_version(conn: sqlite3.Connection) -> None:
    assert schema_version(conn) == LATEST_VERSION == len(MIGRATIONS)
    found = objects(conn)
    for table in ("deals", "rejections", "system_state", "pending", "quarantine", "runs"):
        assert ("table", table) in found
    assert ("view", "dashboard_deals") in found
    assert migrate(conn) == []  # opening again changes nothing
    check_schema(conn)


def test_a_v1_database_with_data_is_upgraded_in_place(db_path: Path) -> None:
    old = connect(db_path)
    assert migrate(old, MIGRATIONS[:1]) == [1]
    old.execute(
        "INSERT INTO deals (asin, domain, status, source, title, buy_price_cents,"
        " sell_price_cents, fees_cents, profit_cents, roi_percent, sales_rank,"
        " first_seen_s, last_seen_s, last_evaluated_s)"
        " VALUES ('0123456789', 1, 'accepted', 'upsert', 'Old Book', 1000, 3000, 800,"
        " 1200, 120.0, 5000, ?, ?, ?)",
        (NOW_S, NOW_S, NOW_S),
    )
    old.execute(
        "INSERT INTO system_state (key, int_value, updated_s) VALUES ('watermark_s', ?, ?)",
        (NOW_S, NOW_S),
    )
    old.close()

    conn = open_store(db_path)
    assert schema_version(conn) == LATEST_VERSION
    row = get_deal(conn, "0123456789", 1)
    assert row is not None and row.title == "Old Book" and row.profit_cents == 1200
    assert get_watermark(conn) == NOW_S
    # The old row shows through the view version 2 added.
    assert [d.asin for d in top_deals(conn)] == ["0123456789"]
    conn.close()


def test_a_later_migration_adds_a_column_to_tables_holding_data(conn: sqlite3.Connection) -> None:
    conn.execute(
        "INSERT INTO runs (task, started_s) VALUES ('upsert', ?), ('backfill', ?)",
        (NOW_S, NOW_S),
    )
    later = LATEST_VERSION + 1
    step = Migration(later, "runs remember their host", ("ALTER TABLE runs ADD COLUMN host TEXT",))
    assert migrate(conn, [*MIGRATIONS, step]) == [later]
    rows = conn.execute("SELECT task, host FROM runs ORDER BY id").fetchall()
    assert [tuple(r) for r in rows] == [("upsert", None), ("backfill", None)]
    check_schema(conn, [*MIGRATIONS, step])
    # Code that knows only the versions before must not write to it.
    with pytest.raises(SchemaTooNew, match=f"version {later} is newer"):
        migrate(conn)


def test_a_failed_migration_leaves_the_previous_version_untouched(
    conn: sqlite3.Connection,
) -> None:
    broken = Migration(
        LATEST_VERSION + 1,
        "half of this works",
        ("CREATE TABLE extra (x INTEGER) STRICT", "ALTER TABLE no_such_table ADD COLUMN y"),
    )
    failed = (
        rf"version {LATEST_VERSION + 1} \(half of this works\) failed"
        rf".*stays at version {LATEST_VERSION}"
    )
    with pytest.raises(StoreError, match=failed):
        migrate(conn, [*MIGRATIONS, broken])
    assert schema_version(conn) == LATEST_VERSION
    assert ("table", "extra") not in objects(conn)
    assert not conn.in_transaction


def test_a_database_from_newer_code_is_refused(db_path: Path) -> None:
    conn = open_store(db_path)
    conn.execute(f"PRAGMA user_version = {LATEST_VERSION + 1}")
    conn.close()
    with pytest.raises(SchemaTooNew):
        open_store(db_path)


def test_a_missing_column_is_reported_at_open(db_path: Path) -> None:
    """Failure mode "schema drift": the version says the column exists, the table says it does
    not."""
    conn = open_store(db_path)
    conn.execute("DROP VIEW dashboard_deals")
    conn.execute("DROP INDEX deals_accepted_by_percent_drop")  # SQLite refuses otherwise
    conn.execute("ALTER TABLE deals DROP COLUMN percent_drop")
    conn.close()
    with pytest.raises(SchemaDrift) as info:
        open_store(db_path)
    assert "column deals.percent_drop is missing" in info.value.problems
    assert "view dashboard_deals is missing" in info.value.problems


def test_a_table_that_is_not_strict_is_reported(db_path: Path) -> None:
    """A non-STRICT table would store "$246.26" as a price (failure mode: prices as text)."""
    conn = open_store(db_path)
    sql = conn.execute("SELECT sql FROM sqlite_schema WHERE name = 'quarantine'").fetchone()[0]
    conn.execute("DROP TABLE quarantine")
    conn.execute(sql.replace(") STRICT", ")"))
    conn.close()
    with pytest.raises(SchemaDrift, match="table quarantine is not STRICT"):
        open_store(db_path)


def test_a_dashboards_own_view_and_index_are_allowed(db_path: Path) -> None:
    conn = open_store(db_path)
    conn.execute("CREATE VIEW my_view AS SELECT asin FROM deals")
    conn.execute("CREATE INDEX my_index ON deals (title)")
    conn.close()
    open_store(db_path).close()


def test_migration_numbers_must_run_without_gaps(conn: sqlite3.Connection) -> None:
    with pytest.raises(StoreError, match="without gaps"):
        migrate(conn, [MIGRATIONS[0], Migration(3, "skips 2", ())])


def test_processes_opening_a_new_database_at_once_migrate_it_once(db_path: Path) -> None:
    errors: list[BaseException] = []
    start = threading.Barrier(6)

    def open_it() -> None:
        try:
            start.wait()
            open_store(db_path, busy_timeout_s=10).close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    conn = open_store(db_path)
    assert schema_version(conn) == LATEST_VERSION
    conn.close()


def test_a_foreign_database_without_a_version_fails_loudly(db_path: Path) -> None:
    conn = connect(db_path)
    conn.execute("CREATE TABLE deals (asin TEXT, price TEXT)")
    conn.close()
    with pytest.raises(StoreError, match="table deals already exists"):
        open_store(db_path)
