"""Helpers shared by the CLI modules: settings with one-line errors, and logging."""

from __future__ import annotations

import logging
import sys
from typing import NoReturn

import click

from keepa_deals.config import Settings
from keepa_deals.errors import KeepaDealsError
from keepa_deals.infra.redact import install_log_redaction
from keepa_deals.service.preflight import PreflightFailed, preflight

LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def fail(message: str, code: int = 2) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def load_settings() -> Settings:
    try:
        return Settings.from_env()
    except KeepaDealsError as exc:
        fail(str(exc))


def checked_settings() -> Settings:
    """Settings that passed every start-up check; one clear line and exit 2 otherwise."""
    settings = load_settings()
    try:
        for check in preflight(settings):
            if check.outcome == "warn":
                click.echo(f"warning: {check.name}: {check.detail}", err=True)
    except PreflightFailed as exc:
        fail(str(exc))
    return settings


def setup_logging(level: str = "INFO") -> None:
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        root.addHandler(handler)
    root.setLevel(level.upper())
    install_log_redaction()
