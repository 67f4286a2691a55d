"""Settings: secrets masked wherever settings are shown, and the generated .env.example."""

from __future__ import annotations

from pathlib import Path

import pytest
from redis.connection import parse_url

from keepa_deals.config import (
    VARIABLES,
    Settings,
    env_example,
    mask_url_password,
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


# Every place redis-py takes a credential from a URL (redis.connection.parse_url): the
# user-info, and any query parameter (each becomes a connection argument).
P = REDIS_PASSWORD
MASKED_URLS = [
    (f"redis://:{P}@cache.example:6379/0", "redis://:***@cache.example:6379/0"),
    (f"rediss://deals:{P}@cache.example:6380/1", "rediss://deals:***@cache.example:6380/1"),
    (f"redis://cache.example:6379/0?password={P}", "redis://cache.example:6379/0?password=***"),
    (
        f"redis://cache.example/0?username=deals&password={P}&db=1",
        "redis://cache.example/0?username=deals&password=***&db=1",
    ),
    (f"rediss://cache.example/0?ssl_password={P}", "rediss://cache.example/0?ssl_password=***"),
    (f"redis://cache.example/0?Password={P}#x", "redis://cache.example/0?Password=***#x"),
    # A lone user-info is sent as the user name, but it is a password without its colon.
    (f"redis://{P}@cache.example:6379/0", "redis://***@cache.example:6379/0"),
    (f"unix://:{P}@/run/redis/redis.sock?db=0", "unix://:***@/run/redis/redis.sock?db=0"),
    (
        f"unix:///run/redis/redis.sock?db=0&password={P}",
        "unix:///run/redis/redis.sock?db=0&password=***",
    ),
    ("redis://:hunter2%40redis@cache.example/0", "redis://:***@cache.example/0"),
    # Unescaped / and @ in a password: urlsplit misreads them, the mask must not.
    ("redis://:hunter2/redis@pass@cache.example/0", "redis://:***@cache.example/0"),
    (f"redis://[::1/0?password={P}", "redis://[::1/0?password=***"),  # unparseable
    ("redis://cache.example:6379/0", "redis://cache.example:6379/0"),
]


@pytest.mark.parametrize(("url", "shown"), MASKED_URLS)
def test_every_credential_redis_py_reads_from_the_url_is_masked(url: str, shown: str) -> None:
    assert mask_url_password(url) == shown
    try:
        taken = parse_url(url)
    except ValueError:
        return  # redis-py refuses it too; the mask above still hid it
    secrets = [taken.get("password"), taken.get("ssl_password")]
    if "password" not in taken:
        secrets.append(taken.get("username"))  # the lone user-info case
    for secret in filter(None, secrets):
        assert secret not in shown


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
