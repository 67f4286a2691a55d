"""Service fixtures: settings pointing at the session's redis-server and a fresh database."""

from __future__ import annotations

from pathlib import Path

import pytest

from keepa_deals.config import Settings
from keepa_deals.infra.redis_server import RedisServerProcess


@pytest.fixture
def settings(redis_server: RedisServerProcess, prefix: str, db_path: Path) -> Settings:
    # Defaults otherwise: UPSERT_EVERY_S=900, BACKFILL_EVERY_S=60, LOCK_TTL_S=60,
    # HARVEST_MAX_RUN_S=600, TASK_SOFT_TIME_LIMIT_S=900, TASK_TIME_LIMIT_S=1020.
    return Settings.from_mapping(
        {"REDIS_URL": redis_server.url, "KEEPA_REDIS_PREFIX": prefix, "DEALS_DB_PATH": str(db_path)}
    )
