"""Settings: `.env` first, the environment over it."""

from __future__ import annotations

import grp
from pathlib import Path

import pytest

from keepa_deals.config import (
    Settings,
)
from keepa_deals.errors import ConfigError
from tests.support.as_other_user import Raised, folder, other_user, run_as_other_user
from tests.support.settings_env import KEY

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


# --- a .env this user may not read ------------------------------------------------------


def unreadable(path: Path, what: str, owner: str, mode: str) -> Raised:
    user = other_user()
    group = grp.getgrgid(user.pw_gid).gr_name
    return Raised(
        "EnvFileUnreadable",
        f"{path}: {user.pw_name} (uid {user.pw_uid}) cannot read the settings file: {what} "
        f"is owned by {owner}, mode {mode}; let the service's group read it: chown "
        f"root:{group} {path} && chmod 0640 {path} (deploy_update.sh does this)",
    )


def test_a_dotenv_only_root_may_read_is_one_config_error_naming_owner_and_mode() -> None:
    """systemd reads the .env as root (EnvironmentFile); the service then read it again
    as its own user and crashed with a raw PermissionError. It is a ConfigError, and
    never skipped: what systemd parsed and what python-dotenv would parse can differ
    (quoting, `export`), so the service refuses to guess."""
    with folder() as home:
        dotenv = home / ".env"
        dotenv.write_text(f"KEEPA_API_KEY={KEY}\nKEEPA_DOMAIN=3\n", encoding="utf-8")
        dotenv.chmod(0o600)  # root's, as an editor under sudo leaves it
        result = run_as_other_user(lambda: Settings.from_env(environ={}, dotenv_path=dotenv))
    assert result == unreadable(dotenv, str(dotenv), "root:root", "0600")
    assert KEY not in result.message


def test_a_dotenv_in_a_folder_the_user_may_not_enter_names_the_folder() -> None:
    with folder(owner="root") as home:
        home.chmod(0o700)
        dotenv = home / ".env"
        dotenv.write_text("KEEPA_DOMAIN=3\n", encoding="utf-8")
        result = run_as_other_user(lambda: Settings.from_env(environ={}, dotenv_path=dotenv))
    assert result == unreadable(dotenv, f"its folder {home}", "root:root", "0700")


def test_a_dotenv_that_is_not_text_is_one_config_error(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_bytes(b"KEEPA_DOMAIN=3\n\xff\xfe\n")
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(environ={}, dotenv_path=dotenv)
    assert str(caught.value).startswith(f"{dotenv}: cannot be read as UTF-8 text (")
