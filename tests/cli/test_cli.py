"""The `keepa-deals` command group: help, `config` (masked, exit 2 on a bad setting),
`config --example`, and the `simulator` subcommand's help."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from keepa_deals import __version__
from keepa_deals.cli import main
from keepa_deals.config import VARIABLES, Settings, env_example
from tests.support.as_other_user import folder, run_as_other_user

KEY = "SECRETKEY" + "0123456789abcdef" * 3 + "QWERTYUI"
REDIS_PASSWORD = "hunter2redispass"
NAMES = [var.name for var in VARIABLES]


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A cwd without a `.env`, so a developer's own settings never leak into a test."""
    monkeypatch.chdir(tmp_path)
    yield tmp_path


def run(*args: str, **env: str) -> Result:
    # Every keepa-deals variable unset unless the test sets it.
    environment: dict[str, str | None] = {name: None for name in NAMES}
    environment.update(env)
    return CliRunner().invoke(main, list(args), env=environment, catch_exceptions=False)


def test_help_lists_the_commands() -> None:
    result = run("--help")
    assert result.exit_code == 0
    assert "Usage:" in result.output
    for command in ("config", "simulator"):
        assert command in result.output
    assert run("-h").output == result.output


def test_version() -> None:
    result = run("--version")
    assert result.exit_code == 0
    assert __version__ in result.output


def test_an_unknown_command_is_a_usage_error() -> None:
    result = CliRunner().invoke(main, ["harvest-everything"])
    assert result.exit_code == 2
    assert "No such command" in result.output


def test_config_prints_every_setting_with_the_secrets_masked(workdir: Path) -> None:
    result = run(
        "config",
        KEEPA_API_KEY=KEY,
        REDIS_URL=f"redis://:{REDIS_PASSWORD}@cache.example:6379/0",
        KEEPA_DOMAIN="3",
    )
    assert result.exit_code == 0, result.output
    assert KEY not in result.output
    assert REDIS_PASSWORD not in result.output
    lines = result.stdout.splitlines()
    assert [line.split("=", 1)[0] for line in lines] == NAMES
    shown = dict(line.split("=", 1) for line in lines)
    assert shown["KEEPA_API_KEY"] == f"<hidden:{len(KEY)} chars>"
    assert shown["REDIS_URL"] == "redis://:***@cache.example:6379/0"
    assert shown["KEEPA_DOMAIN"] == "3"
    assert shown == Settings().masked() | {
        "KEEPA_API_KEY": shown["KEEPA_API_KEY"],
        "REDIS_URL": shown["REDIS_URL"],
        "KEEPA_DOMAIN": "3",
    }


@pytest.mark.parametrize("as_json", [False, True])
def test_config_masks_a_redis_password_in_the_query_string(workdir: Path, as_json: bool) -> None:
    """redis-py authenticates with `?password=`: it is as secret as the user-info's."""
    url = f"redis://cache.example:6379/0?password={REDIS_PASSWORD}"
    result = run("config", *(["--json"] if as_json else []), REDIS_URL=url)
    assert result.exit_code == 0, result.output
    assert REDIS_PASSWORD not in result.output
    assert "REDIS_URL" in result.stdout and "?password=***" in result.stdout


def test_config_json_is_one_object_with_the_secrets_masked(workdir: Path) -> None:
    result = run("config", "--json", KEEPA_API_KEY=KEY)
    assert result.exit_code == 0, result.output
    assert KEY not in result.output
    shown = json.loads(result.stdout)
    assert set(shown) == set(NAMES)
    assert shown["KEEPA_API_KEY"] == f"<hidden:{len(KEY)} chars>"


def test_config_reads_the_dotenv_file_in_the_working_directory(workdir: Path) -> None:
    (workdir / ".env").write_text(f"KEEPA_DOMAIN=4\nKEEPA_API_KEY={KEY}\n", encoding="utf-8")
    result = run("config", KEEPA_REDIS_PREFIX="cli:")
    assert result.exit_code == 0, result.output
    assert "KEEPA_DOMAIN=4\n" in result.stdout
    assert "KEEPA_REDIS_PREFIX=cli:\n" in result.stdout
    assert KEY not in result.output


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"KEEPA_DOMAIN": "7"}, "KEEPA_DOMAIN"),
        ({"KEEPA_MAX_RETRIES": "lots"}, "KEEPA_MAX_RETRIES"),
        ({"KEEPA_PLAN_RATE": "4"}, "RECHARGE_HIGH"),  # a cross-setting rule
    ],
)
def test_a_bad_setting_exits_2_naming_the_variable(
    workdir: Path, env: dict[str, str], variable: str
) -> None:
    result = run("config", KEEPA_API_KEY=KEY, **env)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith(f"error: {variable}=")
    assert KEY not in result.output


@pytest.mark.parametrize("key", ["short", "SECRET-" + KEY])
def test_a_bad_key_exits_2_without_printing_it(workdir: Path, key: str) -> None:
    result = run("config", KEEPA_API_KEY=key)
    assert result.exit_code == 2
    assert "KEEPA_API_KEY" in result.stderr
    assert key not in result.output


def test_an_unparseable_url_exits_2(workdir: Path) -> None:
    result = CliRunner().invoke(main, ["config"], env={"REDIS_URL": "redis://[::1/0"})
    assert result.exit_code == 2
    assert "REDIS_URL" in result.stderr


def test_config_example_is_the_env_example(workdir: Path) -> None:
    (workdir / ".env").write_text("KEEPA_DOMAIN=7\n", encoding="utf-8")  # not even read
    result = run("config", "--example")
    assert result.exit_code == 0
    assert result.stdout == env_example()
    assert "KEEPA_API_KEY=\n" in result.stdout


def test_simulator_help_documents_its_options() -> None:
    result = run("simulator", "--help")
    assert result.exit_code == 0
    for option in ("--host", "--port", "--seed", "--refill-rate", "--clock", "--time-scale"):
        assert option in result.output
    for clock in ("wall", "scaled", "manual"):
        assert clock in result.output


def test_simulator_refuses_a_bad_clock() -> None:
    result = CliRunner().invoke(main, ["simulator", "--clock", "sundial"])
    assert result.exit_code == 2
    assert "--clock" in result.output


def test_config_with_a_dotenv_only_root_may_read_is_one_line_and_exit_2(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Read as the service user, a root-only .env was a raw PermissionError traceback."""
    with folder() as home:
        dotenv = home / ".env"
        dotenv.write_text(f"KEEPA_API_KEY={KEY}\n", encoding="utf-8")
        dotenv.chmod(0o600)
        monkeypatch.chdir(home)

        def as_service_user() -> tuple[int, str, str]:
            result = run("config")
            return result.exit_code, result.stdout, result.stderr

        code, out, err = run_as_other_user(as_service_user)
    assert (code, out) == (2, "")
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"error: {dotenv}: nobody (uid 65534) cannot read the settings")
    assert "owned by root:root, mode 0600" in lines[0]
    assert KEY not in err
