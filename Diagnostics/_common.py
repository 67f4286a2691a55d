"""Shared by the diagnostic scripts: settings (key masked), Redis, and verdict output."""

from __future__ import annotations

import json
import sys
from typing import Any

import redis

from keepa_deals.config import Settings, mask_url_password
from keepa_deals.errors import ConfigError
from keepa_deals.infra.durations import duration
from keepa_deals.infra.redact import install_log_redaction
from keepa_deals.infra.redis_client import DIAGNOSTICS
from keepa_deals.infra.redis_client import redis_client as open_redis
from keepa_deals.infra.redis_failure import RedisFailure, describe


def settings() -> Settings:
    install_log_redaction()
    try:
        return Settings.from_env()
    except ConfigError as exc:
        print(f"FAIL settings: {exc}")
        sys.exit(1)


def redis_client(s: Settings) -> redis.Redis:
    return open_redis(s.redis_url, DIAGNOSTICS)


def redis_failure(s: Settings, exc: BaseException, *, script: str | None = None) -> RedisFailure:
    """Why a Redis call failed: unreachable (its state unknown) or a script's error."""
    return describe(exc, mask_url_password(s.redis_url), script=script)


def emit(report: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(report, indent=2, sort_keys=True, default=str))


def fmt_s(seconds: float | None) -> str:
    return duration(seconds)
