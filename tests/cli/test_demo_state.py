"""The demo's state file: status, doctor and the dashboard in another terminal find a
running `keepa-deals run` demo's database and Redis prefix, never a stopped one's, and
never instead of a configured key."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from keepa_deals.cli.common import (
    demo_environ,
    read_demo_state,
    remove_demo_state,
    write_demo_state,
)

DEMO = {
    "DEALS_DB_PATH": "/somewhere/simulator-deals.db",
    "KEEPA_REDIS_PREFIX": "keepa-sim:",
    "REDIS_URL": "redis://127.0.0.1:6399/0",
    "KEEPA_API_URL": "http://127.0.0.1:40001",
}


@pytest.fixture
def state_path(tmp_path: Path) -> Path:
    return tmp_path / "var" / "demo.env"


@pytest.fixture
def no_dotenv(tmp_path: Path) -> Path:
    return tmp_path / ".env"  # never created unless a test writes it


def _exited_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # reaped: the pid names no process now
    return child.pid


def test_a_running_demos_state_is_used_without_a_key(state_path: Path, no_dotenv: Path) -> None:
    write_demo_state(DEMO, state_path)
    environ, state = demo_environ(
        {"DEALS_DB_PATH": "mine.db", "PATH": "/bin"}, no_dotenv, state_path
    )
    assert state is not None and state.pid == os.getpid()
    assert environ == {**DEMO, "PATH": "/bin"}
    assert state_path.stat().st_mode & 0o077 == 0  # REDIS_URL may hold a password


def test_a_configured_key_in_the_environment_is_never_overridden(
    state_path: Path, no_dotenv: Path
) -> None:
    write_demo_state(DEMO, state_path)
    mine = {"KEEPA_API_KEY": "k" * 64, "DEALS_DB_PATH": "mine.db"}
    assert demo_environ(mine, no_dotenv, state_path) == (mine, None)


def test_a_configured_key_in_dotenv_is_never_overridden(state_path: Path, no_dotenv: Path) -> None:
    write_demo_state(DEMO, state_path)
    no_dotenv.write_text(f"KEEPA_API_KEY={'k' * 64}\n")
    assert demo_environ({"X": "1"}, no_dotenv, state_path) == ({"X": "1"}, None)


def test_a_stopped_demos_file_is_never_used(state_path: Path, no_dotenv: Path) -> None:
    state_path.parent.mkdir()
    state_path.write_text(f"DEMO_PID={_exited_pid()}\nDEALS_DB_PATH=/old.db\n")
    assert read_demo_state(state_path) is None
    assert demo_environ({"X": "1"}, no_dotenv, state_path) == ({"X": "1"}, None)


def test_a_reused_pid_is_told_apart_by_its_start_time(state_path: Path) -> None:
    state_path.parent.mkdir()
    # Our pid is alive, but it is not the process that wrote this file.
    state_path.write_text(f"DEMO_PID={os.getpid()}\nDEMO_PID_STARTED=1\nDEALS_DB_PATH=/x.db\n")
    assert read_demo_state(state_path) is None


def test_malformed_or_missing_files_are_ignored(state_path: Path) -> None:
    assert read_demo_state(state_path) is None
    state_path.parent.mkdir()
    state_path.write_text("DEMO_PID=not-a-pid\n")
    assert read_demo_state(state_path) is None


def test_only_where_the_demos_state_lives_is_taken(state_path: Path) -> None:
    write_demo_state({**DEMO, "KEEPA_API_KEY": "k" * 64, "MIN_ROI_PCT": "1"}, state_path)
    state = read_demo_state(state_path)
    assert state is not None and state.values == DEMO


def test_removed_on_exit_only_if_still_ours(state_path: Path) -> None:
    write_demo_state(DEMO, state_path)
    remove_demo_state(state_path)
    assert not state_path.exists()
    state_path.write_text("DEMO_PID=1\n")  # another demo's file
    remove_demo_state(state_path)
    assert state_path.exists()
