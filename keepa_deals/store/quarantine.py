"""`quarantine`: ASINs that keep failing, set aside with their reason instead of being
retried (and paid for) forever.

Each failure is counted; the row is quarantined (`quarantined_s` set) once the count
reaches the caller's limit (Settings.quarantine_after_failures). A success clears the
count. An operator releases an ASIN with `release`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass

from keepa_deals.store.rows import from_row


@dataclass(frozen=True)
class FailureRecord:
    asin: str
    domain: int
    reason: str  # the latest failure's reason
    attempts: int  # failures in a row
    first_failed_s: int
    last_failed_s: int
    quarantined_s: int | None  # None: still retried

    @property
    def quarantined(self) -> bool:
        return self.quarantined_s is not None


def record_failure(
    conn: sqlite3.Connection,
    asin: str,
    domain: int,
    reason: str,
    now_s: int,
    quarantine_after: int,
) -> FailureRecord:
    """Count one failure; quarantine the ASIN when it reaches `quarantine_after`."""
    if quarantine_after < 1:
        raise ValueError("quarantine_after must be at least 1")
    row = conn.execute(
        "INSERT INTO quarantine (asin, domain, reason, attempts, first_failed_s,"
        " last_failed_s, quarantined_s)"
        " VALUES (:asin, :domain, :reason, 1, :now, :now,"
        "  CASE WHEN 1 >= :limit THEN :now END)"
        " ON CONFLICT (asin, domain) DO UPDATE SET"
        " reason = excluded.reason,"
        " attempts = quarantine.attempts + 1,"
        " last_failed_s = MAX(quarantine.last_failed_s, excluded.last_failed_s),"
        " quarantined_s = COALESCE(quarantine.quarantined_s,"
        "  CASE WHEN quarantine.attempts + 1 >= :limit THEN :now END)"
        " RETURNING *",
        {"asin": asin, "domain": domain, "reason": reason, "now": now_s, "limit": quarantine_after},
    ).fetchall()
    return from_row(FailureRecord, row[0])


def quarantine(
    conn: sqlite3.Connection, asin: str, domain: int, reason: str, now_s: int
) -> FailureRecord:
    """Quarantine at once: a failure that retrying cannot fix."""
    return record_failure(conn, asin, domain, reason, now_s, quarantine_after=1)


def clear_failures(conn: sqlite3.Connection, asin: str, domain: int) -> bool:
    """The ASIN succeeded: forget failures that were not (yet) a quarantine."""
    cur = conn.execute(
        "DELETE FROM quarantine WHERE asin = ? AND domain = ? AND quarantined_s IS NULL",
        (asin, domain),
    )
    return cur.rowcount == 1


def release(conn: sqlite3.Connection, asin: str, domain: int) -> bool:
    """An operator's decision: retry a quarantined ASIN."""
    cur = conn.execute("DELETE FROM quarantine WHERE asin = ? AND domain = ?", (asin, domain))
    return cur.rowcount == 1


def get_failure(conn: sqlite3.Connection, asin: str, domain: int) -> FailureRecord | None:
    row = conn.execute(
        "SELECT * FROM quarantine WHERE asin = ? AND domain = ?", (asin, domain)
    ).fetchone()
    return None if row is None else from_row(FailureRecord, row)


def is_quarantined(conn: sqlite3.Connection, asin: str, domain: int) -> bool:
    found = get_failure(conn, asin, domain)
    return found is not None and found.quarantined


def quarantined_among(conn: sqlite3.Connection, domain: int, asins: Iterable[str]) -> set[str]:
    """The quarantined ones among `asins` (filter a page before paying for it)."""
    return {a for a in asins if is_quarantined(conn, a, domain)}


def list_quarantined(conn: sqlite3.Connection, limit: int = 100) -> list[FailureRecord]:
    rows = conn.execute(
        "SELECT * FROM quarantine WHERE quarantined_s IS NOT NULL"
        " ORDER BY quarantined_s DESC LIMIT ?",
        (limit,),
    ).fetchall()
    return [from_row(FailureRecord, r) for r in rows]
