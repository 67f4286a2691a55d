"""What the settings tests share: the repository root, a key and a password that must
never be shown, every variable's name, and Settings read from given values only."""

from __future__ import annotations

from pathlib import Path

from keepa_deals.config import (
    VARIABLES,
    Settings,
)

REPO = Path(__file__).resolve().parents[2]
KEY = "SECRETKEY" + "0123456789abcdef" * 3 + "QWERTYUI"
REDIS_PASSWORD = "hunter2redispass"
NAMES = [var.name for var in VARIABLES]


def from_env(values: dict[str, str], tmp_path: Path) -> Settings:
    return Settings.from_env(environ=values, dotenv_path=tmp_path / "absent.env")
