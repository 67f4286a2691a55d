"""Schema versions, numbered by `PRAGMA user_version`, applied at start-up.

Failure mode "schema drift": columns existed in code but not in the production database, every
insert failed and nothing said so. So a database is brought up to date every time it is
opened, each step in its own transaction (with the version bump, so a failed step
leaves the database exactly at the previous version), and then compared with what its
version promises.

To change the schema, append `Migration(n + 1, ...)` to MIGRATIONS with the SQL that
takes version n to n + 1 (ALTER TABLE ... ADD COLUMN; DROP VIEW + CREATE VIEW for a
view that shows the new column; UPDATE for backfilled values). Never edit a shipped one.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

from keepa_deals.store import schema
from keepa_deals.store.connection import transaction
from keepa_deals.store.errors import SchemaDrift, SchemaTooNew, StoreError


@dataclass(frozen=True)
class Migration:
    version: int  # the user_version the database has once this step is applied
    name: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "pipeline tables", schema.V1_PIPELINE_TABLES),
    Migration(2, "dashboard view and indexes", schema.V2_DASHBOARD),
    Migration(3, "indexes for pruning history", schema.V3_PRUNABLE_HISTORY),
    Migration(4, "price and rank history of accepted deals", schema.V4_DEAL_HISTORY),
    Migration(5, "an index for every dashboard sort", schema.V5_DASHBOARD_SORTS),
    Migration(6, "the percent-drop sort's index", schema.V6_PERCENT_DROP_SORT),
)
LATEST_VERSION = MIGRATIONS[-1].version


def schema_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def _db_name(conn: sqlite3.Connection) -> str:
    row = conn.execute("PRAGMA database_list").fetchone()
    return str(row[2]) or ":memory:"


def _check_sequence(migrations: Sequence[Migration]) -> None:
    versions = [m.version for m in migrations]
    if versions != list(range(1, len(versions) + 1)):
        raise StoreError(f"migrations must be numbered 1, 2, 3, ... without gaps: {versions}")


def migrate(conn: sqlite3.Connection, migrations: Sequence[Migration] = MIGRATIONS) -> list[int]:
    """Apply every step above the database's version, oldest first. Returns the versions
    applied (empty when the database was up to date)."""
    _check_sequence(migrations)
    latest = migrations[-1].version if migrations else 0
    found = schema_version(conn)
    if found > latest:
        raise SchemaTooNew(_db_name(conn), found, latest)
    applied: list[int] = []
    for step in migrations:
        if step.version <= found:
            continue
        try:
            with transaction(conn):
                # Another process may have applied it while we waited for the write lock.
                if schema_version(conn) >= step.version:
                    continue
                for statement in step.statements:
                    conn.execute(statement)
                # user_version is in the database header, written by this same transaction.
                conn.execute(f"PRAGMA user_version = {int(step.version)}")
        except sqlite3.Error as exc:
            raise StoreError(
                f"{_db_name(conn)}: migration to version {step.version} ({step.name}) failed "
                f"and was rolled back; the database stays at version {schema_version(conn)}: "
                f"{exc}"
            ) from exc
        applied.append(step.version)
    return applied


Columns = dict[str, tuple[str, int, int]]


def _objects(conn: sqlite3.Connection) -> dict[tuple[str, str], Columns]:
    """(type, name) of every table, view, index and trigger; for tables their columns as
    name -> (declared type, not null, primary-key position), plus "STRICT" when the
    table is (a non-strict table would take "$246.26" as a price: failure mode "prices as text")."""
    strict = {
        str(row[1]): bool(row[5])
        for row in conn.execute("PRAGMA main.table_list").fetchall()
        if row[2] == "table"
    }
    found: dict[tuple[str, str], Columns] = {}
    rows = conn.execute(
        "SELECT type, name FROM sqlite_schema WHERE name NOT LIKE 'sqlite_%'"
    ).fetchall()
    for kind, name in rows:
        columns: Columns = {}
        if kind == "table":
            quoted = str(name).replace('"', '""')
            for col in conn.execute(f'PRAGMA table_xinfo("{quoted}")').fetchall():
                columns[str(col[1])] = (str(col[2]).upper(), int(col[3]), int(col[5]))
            if strict.get(str(name)):
                columns["STRICT"] = ("", 0, 0)
        found[(str(kind), str(name))] = columns
    return found


def check_schema(conn: sqlite3.Connection, migrations: Sequence[Migration] = MIGRATIONS) -> None:
    """Raise SchemaDrift when the database lacks anything its version promises, or a
    table's columns differ. The reference is the same migrations applied to an empty
    in-memory database, so the schema is written down once. Extra tables, views and
    indexes (a dashboard's own) are allowed."""
    version = schema_version(conn)
    reference = sqlite3.connect(":memory:", isolation_level=None)
    try:
        for step in migrations:
            if step.version > version:
                break
            for statement in step.statements:
                reference.execute(statement)
        expected = _objects(reference)
    finally:
        reference.close()
    actual = _objects(conn)
    problems: list[str] = []
    for (kind, name), columns in sorted(expected.items()):
        if (kind, name) not in actual:
            problems.append(f"{kind} {name} is missing")
            continue
        have = actual[(kind, name)]
        for column, spec in columns.items():
            if column == "STRICT" and column not in have:
                problems.append(f"table {name} is not STRICT")
            elif column not in have:
                problems.append(f"column {name}.{column} is missing")
            elif have[column] != spec:
                problems.append(f"column {name}.{column} is {have[column]}, expected {spec}")
        for column in sorted(set(have) - set(columns)):
            problems.append(f"column {name}.{column} is not in the schema")
    if problems:
        raise SchemaDrift(_db_name(conn), problems)
