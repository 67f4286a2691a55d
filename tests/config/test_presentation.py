"""Settings: secrets masked wherever settings are shown, and the generated .env.example."""

from __future__ import annotations

from pathlib import Path

import pytest

from keepa_deals.config import (
    VARIABLES,
    Settings,
    env_example,
)
from tests.support.settings_env import KEY, NAMES, REDIS_PASSWORD, REPO, from_env

# --- masking ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "redis_url",
    [
        f"redis://:{REDIS_PASSWORD}@cache.example:6379/0",
        f"rediss://deals:{REDIS_PASSWORD}@cache.example:6380/1",
    ],
)
def test_repr_and_str_mask_the_key_and_the_redis_password(tmp_path: Path, redis_url: str) -> None:
    settings = from_env({"KEEPA_API_KEY": KEY, "REDIS_URL": redis_url}, tmp_path)
    assert settings.keepa_api_key == KEY  # the value is kept, only its display is masked
    assert settings.redis_url == redis_url
    masked = settings.masked()
    for text in (repr(settings), str(settings), f"{settings}", f"{settings!r}", str(masked)):
        assert KEY not in text
        assert REDIS_PASSWORD not in text
        assert "cache.example" in text  # the rest is shown
    assert masked["KEEPA_API_KEY"] == f"<hidden:{len(KEY)} chars>"
    assert masked["REDIS_URL"] == redis_url.replace(REDIS_PASSWORD, "***")
    assert f"<hidden:{len(KEY)} chars>" in repr(settings)


def test_masked_lists_every_variable() -> None:
    masked = Settings().masked()
    assert list(masked) == NAMES
    assert masked["KEEPA_API_KEY"] == "<none>"
    assert masked["RECHARGE_GATED_CLASSES"] == "backfill"


# --- .env.example -----------------------------------------------------------------------


def test_the_committed_env_example_is_generated_from_the_settings() -> None:
    assert (REPO / ".env.example").read_bytes() == env_example().encode()


def test_env_example_documents_each_variable_once_with_its_default() -> None:
    lines = env_example().splitlines()
    assignments = [line for line in lines if line and not line.startswith("#")]
    assert [line.split("=", 1)[0] for line in assignments] == NAMES
    for var, line in zip(VARIABLES, assignments, strict=True):
        assert line == f"{var.name}={var.default}"
        comment = lines[lines.index(line) - 1]
        assert comment.startswith("# ") and len(comment) > 4


def test_env_example_as_a_dotenv_file_gives_the_defaults(clean_env: Path) -> None:
    assert Settings.from_env(environ={}, dotenv_path=REPO / ".env.example") == Settings()
