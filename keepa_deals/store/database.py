"""Opening the deals database: connect, migrate, verify. The one entry point for tasks."""

from __future__ import annotations

import os
import sqlite3

from keepa_deals.config import Settings
from keepa_deals.store.connection import DEFAULT_BUSY_TIMEOUT_S, connect
from keepa_deals.store.migrations import check_schema, migrate


def open_store(
    path: str | os.PathLike[str], *, busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S
) -> sqlite3.Connection:
    """A WAL connection to an up-to-date, verified database (created when missing).

    Raises SchemaTooNew for a database from a newer keepa-deals and SchemaDrift for one
    whose tables differ from its version: better to stop at start-up than to have
    every insert fail later (failure mode: schema drift).
    """
    conn = connect(path, busy_timeout_s=busy_timeout_s)
    try:
        migrate(conn)
        check_schema(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def open_from_settings(settings: Settings) -> sqlite3.Connection:
    return open_store(settings.deals_db_path, busy_timeout_s=settings.db_busy_timeout_s)
