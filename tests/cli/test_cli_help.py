"""Every `keepa-deals` subcommand answers `--help` (issue 5).

The commands are read from the click group itself, so a subcommand added later is
covered without touching this file; nested groups are walked too.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from keepa_deals.cli import main
from keepa_deals.config import VARIABLES

PROG = "keepa-deals"
# What issue 5 and the README promise, at least.
REQUIRED = {
    "worker",
    "beat",
    "run",
    "status",
    "doctor",
    "migrate",
    "pause",
    "resume",
    "reset-watermark",
    "backfill",
    "config",
    "simulator",
    "simulate",
}


def command_paths(group: click.Group, parents: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every command under `group`, as the words that name it, groups included."""
    ctx = click.Context(group, info_name=PROG)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None, name
        path = (*parents, name)
        yield path
        if isinstance(command, click.Group):
            yield from command_paths(command, path)


PATHS = sorted(command_paths(main))


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """No `.env` in the cwd: help must not depend on a developer's settings."""
    monkeypatch.chdir(tmp_path)
    yield tmp_path


def test_the_group_has_every_subcommand_issue_5_names() -> None:
    top = {path[0] for path in PATHS}
    assert top >= REQUIRED, sorted(REQUIRED - top)
    assert len(PATHS) == len(set(PATHS))


@pytest.mark.parametrize("path", PATHS, ids=" ".join)
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_every_subcommand_answers_help(path: tuple[str, ...], flag: str, workdir: Path) -> None:
    # Every keepa-deals variable unset: help needs no settings at all, not even valid ones.
    env: dict[str, str | None] = {var.name: None for var in VARIABLES}
    env["REDIS_URL"] = "not a url"  # and a broken one must not matter either
    result = CliRunner().invoke(
        main, [*path, flag], prog_name=PROG, env=env, catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines, "no output"
    assert lines[0].startswith(f"Usage: {PROG} {' '.join(path)}"), lines[0]
    assert result.output.count("Usage:") == 1
    assert "-h, --help" in result.output
    assert list(workdir.iterdir()) == []  # help starts nothing and writes nothing


def test_the_top_level_help_lists_every_subcommand(workdir: Path) -> None:
    result = CliRunner().invoke(main, ["--help"], prog_name=PROG, catch_exceptions=False)
    assert result.exit_code == 0
    assert result.output.startswith(f"Usage: {PROG} [OPTIONS] COMMAND [ARGS]...")
    listed = result.output.split("Commands:", 1)[1]
    words = {line.split()[0] for line in listed.splitlines() if line.strip()}
    assert words == {path[0] for path in PATHS}
