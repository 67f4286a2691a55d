"""How each setting is read from its environment text, and how it is declared.

A parser takes the variable's name and its raw text and returns the typed value, or
raises ConfigError naming the variable, the value and what is allowed: the allowed
range of a setting is its parser's (`integer(0, 10)`). `setting()` declares one
setting on a settings dataclass: its variable name, typed default, parser and help.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from keepa_deals.errors import ConfigError
from keepa_deals.infra.redact import mask_url_password

KEEPA_DOMAINS = (1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12)
TOKEN_CLASSES = ("upsert", "backfill")
DEFAULT_DEAL_QUERY = Path(__file__).parent.parent / "data" / "deal_query.json"

T = TypeVar("T")
Parser = Callable[[str, str], Any]


@dataclass(frozen=True)
class Var:
    """One environment variable and the Settings field it fills (`default` as text)."""

    name: str
    attr: str
    parse: Parser
    default: str
    help: str


@dataclass(frozen=True)
class Declared:
    """What `setting()` attaches to a field: everything but its name and type."""

    env: str
    parse: Parser
    help: str
    example: str | None  # the default as .env.example writes it, when not derivable


def setting(env: str, default: T, parse: Parser, help: str, *, example: str | None = None) -> T:
    """Declare one setting: the variable `env`, its typed default, parser and help."""
    declared = Declared(env, parse, help, example)
    found: T = field(default=default, metadata={"setting": declared})
    return found


def example_text(value: object) -> str:
    """A default as `.env` writes it: `5` for 5.0, `a,b` for a tuple, empty for None."""
    if value is None:
        return ""
    if isinstance(value, tuple):
        return ",".join(str(item) for item in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _within(name: str, raw: str, value: float, lo: float | None, hi: float | None) -> None:
    """The allowed range of a numeric setting, in the words every range error uses."""
    if lo is not None and value < lo:
        raise ConfigError(name, raw, f"must be at least {lo}")
    if hi is not None and value > hi:
        raise ConfigError(name, raw, f"must be at most {hi}")


def integer(lo: int | None = None, hi: int | None = None) -> Callable[[str, str], int]:
    def parse(name: str, raw: str) -> int:
        try:
            value = int(raw.strip())
        except ValueError:
            raise ConfigError(name, raw, "must be a whole number") from None
        _within(name, raw, value, lo, hi)
        return value

    return parse


def number(lo: float | None = None, hi: float | None = None) -> Callable[[str, str], float]:
    def parse(name: str, raw: str) -> float:
        try:
            value = float(raw.strip())
        except ValueError:
            raise ConfigError(name, raw, "must be a number") from None
        if not math.isfinite(value):
            raise ConfigError(name, raw, "must be a finite number")
        _within(name, raw, value, lo, hi)
        return value

    return parse


def optional_key(name: str, raw: str) -> str | None:
    key = raw.strip()
    if not key:
        return None
    if not re.fullmatch(r"[A-Za-z0-9]{16,128}", key):
        # Never echo a key back, even a malformed one.
        raise ConfigError(name, "<hidden>", "must be 16-128 letters and digits, as Keepa issues")
    return key


def password(min_chars: int) -> Callable[[str, str], str | None]:
    def parse(name: str, raw: str) -> str | None:
        value = raw.strip()
        if not value:
            return None
        if len(value) < min_chars:
            # Never echo a password back, even a short one.
            raise ConfigError(name, "<hidden>", f"must be at least {min_chars} characters")
        return value

    return parse


def url(schemes: tuple[str, ...]) -> Callable[[str, str], str]:
    def parse(name: str, raw: str) -> str:
        value = raw.strip().rstrip("/")
        allowed = f"must be a URL starting with {' or '.join(schemes)}://"
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 - reading it is the check: out-of-range ports raise
        except ValueError as exc:
            raise ConfigError(name, mask_url_password(raw.strip()), f"{allowed} ({exc})") from None
        # A unix socket URL names a path, not a host.
        located = parts.path if parts.scheme == "unix" else parts.hostname
        if parts.scheme not in schemes or not located:
            raise ConfigError(name, mask_url_password(raw.strip()), allowed)
        return value

    return parse


def domain(name: str, raw: str) -> int:
    value = integer()(name, raw)
    if value not in KEEPA_DOMAINS:
        raise ConfigError(name, raw, f"must be one of Keepa's domain ids {KEEPA_DOMAINS}")
    return value


def prefix(name: str, raw: str) -> str:
    value = raw.strip()
    if not re.fullmatch(r"[A-Za-z0-9_.:-]{1,64}", value):
        raise ConfigError(name, raw, "must be 1-64 characters from A-Z a-z 0-9 _ . : -")
    return value


def classes(name: str, raw: str) -> tuple[str, ...]:
    items = tuple(part.strip() for part in raw.split(",") if part.strip())
    unknown = [item for item in items if item not in TOKEN_CLASSES]
    if unknown:
        raise ConfigError(name, raw, f"must be a comma list of {', '.join(TOKEN_CLASSES)}")
    return items


def percent_2dp(name: str, raw: str) -> float:
    value = number(0, 99.99)(name, raw)
    # Fees are computed in integer basis points, so the percent must be exact in them.
    if abs(value * 100 - round(value * 100)) > 1e-9:
        raise ConfigError(name, raw, "must have at most two decimals (e.g. 15 or 8.25)")
    return value


def path(name: str, raw: str) -> Path:
    if not raw.strip():
        raise ConfigError(name, raw, "must be a file path")
    return Path(raw.strip()).expanduser()


def query_path(name: str, raw: str) -> Path:
    # Empty means the packaged default selection.
    return path(name, raw) if raw.strip() else DEFAULT_DEAL_QUERY
