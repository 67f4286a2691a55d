"""Settings: `.env` first, the environment over it."""

from __future__ import annotations

from pathlib import Path

import pytest

from keepa_deals.config import (
    Settings,
)
from keepa_deals.errors import ConfigError

# --- .env and the environment -----------------------------------------------------------


def test_the_dotenv_file_is_read_and_the_environment_wins(tmp_path: Path) -> None:
    dotenv = tmp_path / "custom.env"
    dotenv.write_text(
        "# a comment\n"
        "KEEPA_DOMAIN=3\n"
        "KEEPA_REDIS_PREFIX=fromfile:\n"
        'DEALS_DB_PATH="/data/deals file.db"\n'
        "KEEPA_MAX_RETRIES\n",  # no value: ignored
        encoding="utf-8",
    )
    settings = Settings.from_env(environ={"KEEPA_DOMAIN": "4"}, dotenv_path=dotenv)
    assert settings.keepa_domain == 4
    assert settings.redis_prefix == "fromfile:"
    assert settings.deals_db_path == Path("/data/deals file.db")
    assert settings.keepa_max_retries == 3


def test_the_process_environment_is_used_by_default_and_wins(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (clean_env / ".env").write_text("KEEPA_DOMAIN=3\nKEEPA_PLAN_RATE=6\n", encoding="utf-8")
    monkeypatch.setenv("KEEPA_DOMAIN", "6")
    settings = Settings.from_env()
    assert settings.keepa_domain == 6
    assert settings.plan_rate == 6  # from ./.env, the default dotenv path


def test_no_dotenv_file_is_fine(clean_env: Path) -> None:
    assert Settings.from_env() == Settings()


def test_a_bad_value_in_the_dotenv_file_names_the_variable(clean_env: Path) -> None:
    (clean_env / ".env").write_text("KEEPA_DOMAIN=7\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        Settings.from_env()
    assert caught.value.variable == "KEEPA_DOMAIN"
    assert "KEEPA_DOMAIN=7" in str(caught.value)


def test_a_class_s_demand_outlives_the_gap_between_its_runs() -> None:
    """A run stopped for tokens keeps its class's claim until beat's next run."""
    from keepa_deals.tokens import TokenPolicy

    assert Settings().effective_demand_ttl_s == 900 + 60  # UPSERT_EVERY_S is the slower
    assert Settings(demand_ttl_s=2000).effective_demand_ttl_s == 2000
    fast = Settings(upsert_every_s=120, backfill_every_s=60)
    assert fast.effective_demand_ttl_s == 300  # TOKEN_DEMAND_TTL_S already covers it
    assert TokenPolicy.from_settings(Settings()).demand_ttl_s == 960
