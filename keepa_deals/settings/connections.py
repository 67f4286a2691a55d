"""Where keepa-deals connects: Keepa, Redis, the deals database and the deal query."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from keepa_deals.settings.parsers import (
    DEFAULT_DEAL_QUERY,
    domain,
    integer,
    number,
    optional_key,
    path,
    prefix,
    query_path,
    setting,
    url,
)


@dataclass(frozen=True, repr=False)
class ConnectionSettings:
    keepa_api_key: str | None = setting(
        "KEEPA_API_KEY",
        None,
        optional_key,
        "Keepa API key. Empty: `make run` uses the built-in simulator.",
    )
    keepa_api_url: str = setting(
        "KEEPA_API_URL",
        "https://api.keepa.com",
        url(("http", "https")),
        "Keepa's base URL (the simulator's when testing).",
    )
    keepa_domain: int = setting(
        "KEEPA_DOMAIN",
        1,
        domain,
        "Amazon locale: 1 .com, 2 .co.uk, 3 .de, 4 .fr, 5 .co.jp, 6 .ca, 8 .it, 9 .es, ...",
    )
    keepa_connect_timeout_s: float = setting(
        "KEEPA_CONNECT_TIMEOUT_S",
        5.0,
        number(0.1, 60),
        "Seconds to wait for a connection to Keepa.",
    )
    keepa_read_timeout_s: float = setting(
        "KEEPA_READ_TIMEOUT_S",
        40.0,
        number(1, 300),
        "Seconds to wait for Keepa's answer (offer requests take up to 20 s).",
    )
    keepa_max_retries: int = setting(
        "KEEPA_MAX_RETRIES",
        3,
        integer(0, 10),
        "Retries of a 5xx answer, with jittered exponential backoff.",
    )
    redis_url: str = setting(
        "REDIS_URL",
        "redis://127.0.0.1:6379/0",
        url(("redis", "rediss", "unix")),
        "Redis for the token budget, locks and Celery's broker.",
    )
    redis_prefix: str = setting(
        "KEEPA_REDIS_PREFIX",
        "keepa:",
        prefix,
        "Prefix of every Redis key keepa-deals writes.",
    )
    deals_db_path: Path = setting(
        "DEALS_DB_PATH",
        Path("var/deals.db"),
        path,
        "The SQLite deals database.",
    )
    db_busy_timeout_s: float = setting(
        "DEALS_DB_BUSY_TIMEOUT_S",
        60.0,
        number(1, 600),
        "Seconds a writer waits for another writer's lock before failing (SQLite's 5 s "
        "default kills a writer under a reading dashboard).",
    )
    deal_query_path: Path = setting(
        "DEAL_QUERY_PATH",
        DEFAULT_DEAL_QUERY,
        query_path,
        "JSON file with the /deal selection (default: used books, newest first).",
        example="",
    )
