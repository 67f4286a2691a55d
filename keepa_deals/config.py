"""One typed settings object, read once from `.env` and the environment, validated.

Every setting is declared once, in `keepa_deals/settings/` (variable, type, default,
allowed range, help); `VARIABLES`, `.env.example`, `Settings.from_env` and
`simulate --set NAME=VALUE` all come from those declarations. A bad value raises
ConfigError naming the variable, the value and what is allowed. Settings that would
make a wait impossible (a threshold no balance can reach) are refused here, at
start-up, by the rule groups of `keepa_deals/settings/rules.py`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from dotenv import dotenv_values

from keepa_deals.errors import ConfigError, KeepaDealsError
from keepa_deals.infra.file_access import current_group_name, current_user, owner_and_mode
from keepa_deals.infra.redact import mask_url_password
from keepa_deals.settings.dashboard import DashboardSettings
from keepa_deals.settings.parsers import (
    DEFAULT_DEAL_QUERY,
    KEEPA_DOMAINS,
    TOKEN_CLASSES,
    Declared,
    Var,
    example_text,
)
from keepa_deals.settings.rules import check_all

__all__ = [
    "DEFAULT_DEAL_QUERY",
    "KEEPA_DOMAINS",
    "TOKEN_CLASSES",
    "VARIABLES",
    "Settings",
    "Var",
    "env_example",
    "mask_key",
    "mask_url_password",
]


class EnvFileUnreadable(ConfigError):
    """The `.env` file is there but cannot be read: one line naming it, never skipped.

    systemd reads the file as root (EnvironmentFile) before the service reads it
    again as its own user. Skipping it would run on systemd's reading alone, and the
    two parsers differ (quoting, `export`): the service and `keepa-deals config` would
    disagree about the settings without a word."""

    def __init__(self, path: Path, problem: str) -> None:
        self.variable, self.value, self.allowed = ".env", str(path), problem
        KeepaDealsError.__init__(self, f"{path}: {problem}")


def _read_env_file(path: Path) -> dict[str, str]:
    """The file's variables ({} when there is no file)."""
    shown = path.absolute()
    try:
        if not path.is_file():
            return {}
        values = dotenv_values(path)
    except PermissionError:
        try:
            path.stat()
            what = f"{shown} is {owner_and_mode(path)}"
        except OSError:
            what = f"its folder {shown.parent} is {owner_and_mode(shown.parent)}"
        raise EnvFileUnreadable(
            shown,
            f"{current_user()} cannot read the settings file: {what}; let the service's "
            f"group read it: chown root:{current_group_name()} {shown} && chmod 0640 "
            f"{shown} (deploy_update.sh does this)",
        ) from None
    except UnicodeDecodeError as exc:
        raise EnvFileUnreadable(shown, f"cannot be read as UTF-8 text ({exc})") from None
    except OSError as exc:
        raise EnvFileUnreadable(shown, f"cannot be read ({exc.strerror})") from None
    return {k: v for k, v in values.items() if v is not None}


@dataclass(frozen=True, repr=False)
class Settings(DashboardSettings):
    """Every setting (declared in keepa_deals/settings/), loaded and validated."""

    def __post_init__(self) -> None:
        self.validate()

    # --- construction -------------------------------------------------------------

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        dotenv_path: str | os.PathLike[str] | None = None,
    ) -> Settings:
        """`.env` first, then the process environment (which wins)."""
        env_file = Path(dotenv_path) if dotenv_path is not None else Path(".env")
        merged = _read_env_file(env_file)
        merged.update(os.environ if environ is None else environ)
        return cls.from_mapping(merged)

    @classmethod
    def from_mapping(cls, values: Mapping[str, str]) -> Settings:
        kwargs = {
            var.attr: var.parse(var.name, values[var.name])
            for var in VARIABLES
            if var.name in values
        }
        return cls(**kwargs)

    def with_overrides(self, overrides: Mapping[str, str]) -> Settings:
        """Apply NAME=VALUE pairs named as in `.env.example` (simulate --set)."""
        changes: dict[str, Any] = {}
        for name, raw in overrides.items():
            var = _BY_NAME.get(name)
            if var is None:
                # A typo such as KEEPA_API_KEYS may carry the key: never echo the value.
                raise ConfigError(
                    name, "<hidden>", "is not a keepa-deals setting (see .env.example)"
                )
            changes[var.attr] = var.parse(name, raw)
        return replace(self, **changes)

    # --- validation ---------------------------------------------------------------

    def validate(self) -> None:
        """Refuse settings that could make some wait impossible or the policy incoherent."""
        check_all(self)

    # --- presentation -------------------------------------------------------------

    def masked(self) -> dict[str, str]:
        """Every variable as it would be written in .env, with secrets hidden."""
        out: dict[str, str] = {}
        for var in VARIABLES:
            value = getattr(self, var.attr)
            if var.attr in _SECRETS:
                out[var.name] = mask_key(value)
            elif var.attr == "redis_url":
                out[var.name] = mask_url_password(value)
            elif isinstance(value, tuple):
                out[var.name] = ",".join(value)
            else:
                out[var.name] = str(value)
        return out

    def __repr__(self) -> str:
        inner = ", ".join(f"{f.name}={self._shown(f.name)!r}" for f in fields(self))
        return f"Settings({inner})"

    __str__ = __repr__

    def _shown(self, attr: str) -> object:
        value = getattr(self, attr)
        if attr in _SECRETS:
            return mask_key(value)
        if attr == "redis_url":
            return mask_url_password(value)
        return value


# Shown only as their length, wherever settings are printed.
_SECRETS = frozenset({"keepa_api_key", "dashboard_password"})


def mask_key(key: str | None) -> str:
    if not key:
        return "<none>"
    return f"<hidden:{len(key)} chars>"


def env_example() -> str:
    """The text of `.env.example`, one documented variable per line."""
    lines = ["# keepa-deals settings. Copy to .env and edit. Every variable is optional."]
    for var in VARIABLES:
        lines.append(f"# {var.help}")
        lines.append(f"{var.name}={var.default}")
    return "\n".join(lines) + "\n"


def _variables() -> tuple[Var, ...]:
    """The declarations as rows, in declaration order (the order of .env.example)."""
    rows = []
    for f in fields(Settings):
        declared: Declared = f.metadata["setting"]
        example = declared.example if declared.example is not None else example_text(f.default)
        rows.append(Var(declared.env, f.name, declared.parse, example, declared.help))
    return tuple(rows)


VARIABLES: tuple[Var, ...] = _variables()
_BY_NAME = {var.name: var for var in VARIABLES}
