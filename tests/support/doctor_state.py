"""What the doctor tests share: a fixed service time, and deals and runs put in a deals
database in a given state."""

from __future__ import annotations

import sqlite3

from keepa_deals.store import (
    transaction,
    upsert_deal,
)
from tests.support.service_rows import deal

NOW_S = 1_768_089_600  # 2026-01-11 00:00 UTC


HOUR_S = 3600


OWNER = "worker-1:4242:0a1b2c3d"


KEY = "doctortestkey0123456789abcdef"


def add_deal(conn: sqlite3.Connection, asin: str, first_seen_s: int) -> None:
    with transaction(conn):
        upsert_deal(conn, deal(asin, first_seen_s))


def every(start_s: int, step_s: int, count: int) -> list[int]:
    return [start_s + i * step_s for i in range(count)]
