"""The systemd units in deploy/ (what they promise the service on stop), and
deploy_update.sh run for real against a scratch install root, with systemctl, runuser
and pip stubbed: what it does to `.env` and the database files."""

from __future__ import annotations

import grp
import pwd
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from keepa_deals.config import Settings
from keepa_deals.service.shutdown import longest_stop_s
from keepa_deals.store import open_store
from keepa_deals.store.connection import write_problem
from tests.support.as_other_user import folder, run_as_other_user

UNITS = Path(__file__).resolve().parent.parent / "deploy" / "systemd"


def service_section(name: str) -> dict[str, str]:
    """[Service] of a unit (systemd's syntax: `Key=value`, `#` comments, no repeats
    that matter here)."""
    values: dict[str, str] = {}
    section = ""
    for raw in (UNITS / name).read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
        elif section == "Service":
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def test_the_worker_unit_sends_sigterm_to_the_main_process_alone() -> None:
    """The default KillMode (control-group) also sends SIGTERM to the pool's processes,
    where it ends the running run at once, mid-call: no warm shutdown for it."""
    unit = service_section("keepa-deals-worker.service")
    assert unit["KillSignal"] == "SIGTERM"
    assert unit["KillMode"] == "mixed"


def test_the_worker_unit_waits_longer_than_a_run_takes_to_reach_its_next_check() -> None:
    timeout_s = float(service_section("keepa-deals-worker.service")["TimeoutStopSec"])
    assert timeout_s > longest_stop_s(Settings())


# --- deploy_update.sh: .env and the database files ---------------------------------------

REPO = UNITS.parent.parent
KEY = "deploytestkey0123456789abcdef"
STUB_PYTHON = """#!/bin/sh
# The install's python: pip is only recorded, anything else runs for real.
if [ "$1" = -m ] && [ "$2" = pip ]; then echo "pip $*" >> "$STUB_LOG"; exit 0; fi
exec {python} "$@"
"""
STUB_KEEPA_DEALS = """#!/bin/sh
exec {python} -m keepa_deals "$@"
"""
STUB_RECORDER = """#!/bin/sh
echo "$(basename "$0") $*" >> "$STUB_LOG"
"""
# runuser: recorded; migrate runs (as root: the stub cannot switch users), doctor,
# which needs the restarted units, does not.
STUB_RUNUSER = """#!/bin/sh
echo "runuser $*" >> "$STUB_LOG"
case "$*" in *doctor*) exit 0 ;; esac
while [ "$1" != -- ]; do shift; done
shift
exec "$@"
"""


@dataclass
class Install:
    """An install root as deploy_update.sh finds it on a host: .env, the units, a venv
    (whose pip is a recorder), and stubs for systemctl, runuser and user creation. The
    service user is `nobody` of group `nogroup`, which exist."""

    home: Path
    scratch: Path

    @property
    def log(self) -> list[str]:
        path = self.scratch / "calls.log"
        return path.read_text().splitlines() if path.exists() else []

    def deploy(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {
            "PATH": f"{self.scratch / 'stubs'}:/usr/sbin:/usr/bin:/sbin:/bin",
            "STUB_LOG": str(self.scratch / "calls.log"),
            "KEEPA_HOME": str(self.home),
            "KEEPA_SERVICE_USER": "nobody",
            "KEEPA_SERVICE_GROUP": "nogroup",
            "KEEPA_UNIT_DIR": str(self.scratch / "units"),
            "KEEPA_SYSTEMD_RUNTIME_DIR": str(self.scratch),
            "KEEPA_DOCTOR_WAIT_S": "0",
        }
        return subprocess.run(
            ["bash", str(REPO / "deploy_update.sh"), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


def executable(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)


@pytest.fixture
def install(tmp_path: Path) -> Iterator[Install]:
    with folder(owner="root") as home:  # as /opt/keepa-deals: root's, 0755
        shutil.copytree(REPO / "deploy", home / "deploy")
        python = sys.executable
        executable(home / ".venv" / "bin" / "python", STUB_PYTHON.format(python=python))
        executable(home / ".venv" / "bin" / "keepa-deals", STUB_KEEPA_DEALS.format(python=python))
        stubs = tmp_path / "stubs"
        for name in ("systemctl", "useradd", "groupadd"):
            executable(stubs / name, STUB_RECORDER)
        executable(stubs / "runuser", STUB_RUNUSER)
        (tmp_path / "units").mkdir()
        yield Install(home, tmp_path)


def write_env(install: Install, text: str, mode: int) -> Path:
    path = install.home / ".env"
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


def root_owned_database(path: Path) -> Path:
    """What `sudo keepa-deals migrate` leaves: root's, 0644."""
    path.parent.mkdir(parents=True, exist_ok=True)
    open_store(path, busy_timeout_s=10).close()
    path.chmod(0o644)
    return path


def owner(path: Path) -> tuple[str, str, str]:
    st = path.stat()
    return (
        pwd.getpwuid(st.st_uid).pw_name,
        grp.getgrgid(st.st_gid).gr_name,
        f"{st.st_mode & 0o7777:04o}",
    )


def service_reads_settings(dotenv: Path) -> int:
    return Settings.from_env(environ={}, dotenv_path=dotenv).keepa_domain


def test_a_deploy_lets_the_service_read_env_and_write_the_database(install: Install) -> None:
    """Before: a root-only .env (as an editor under sudo leaves it) and root's deals.db
    (as `sudo keepa-deals migrate` leaves it): the service can read neither."""
    dotenv = write_env(install, f"KEEPA_API_KEY={KEY}\nKEEPA_DOMAIN=3\n", 0o600)
    db = root_owned_database(install.home / "var" / "deals.db")
    assert run_as_other_user(lambda: service_reads_settings(dotenv)).type_name == (
        "EnvFileUnreadable"
    )
    assert run_as_other_user(lambda: write_problem(db)) is not None

    result = install.deploy()
    assert result.returncode == 0, result.stdout + result.stderr
    assert owner(dotenv) == ("root", "nogroup", "0640")
    assert owner(db.parent)[:2] == ("nobody", "nogroup")
    assert owner(db)[:2] == ("nobody", "nogroup")
    # What the service user meets now: its settings, and a database it may write.
    assert run_as_other_user(lambda: service_reads_settings(dotenv)) == 3
    assert run_as_other_user(lambda: write_problem(db)) is None
    calls = install.log
    migrate = calls.index(
        f"runuser -u nobody -- env -C {install.home} {install.home}/.venv/bin/keepa-deals migrate"
    )
    assert calls.index("systemctl daemon-reload") > migrate
    assert KEY not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("secret", "named"),
    [
        (f"KEEPA_API_KEY={KEY}", "KEEPA_API_KEY"),
        (f'export KEEPA_API_KEY="{KEY}"', "KEEPA_API_KEY"),
        ("REDIS_URL=redis://:hunter2@cache.example:6379/0", "the Redis password in REDIS_URL"),
        ("REDIS_URL=redis://cache.example:6379/0?password=hunter2", "the Redis password"),
    ],
)
def test_a_world_readable_env_holding_a_secret_stops_the_deploy_before_any_change(
    install: Install, secret: str, named: str
) -> None:
    dotenv = write_env(install, f"KEEPA_DOMAIN=3\n{secret}\n", 0o644)
    db = root_owned_database(install.home / "var" / "deals.db")
    for args in ((), ("--dry-run",)):
        result = install.deploy(*args)
        assert result.returncode == 1
        assert result.stdout == ""
        first, second = result.stderr.splitlines()
        assert first.startswith(f"deploy_update.sh: {dotenv} (mode 644) is readable by every ")
        assert named in first and first.endswith("; nothing was changed.")
        assert second.startswith(f"Run 'chmod o-rwx {dotenv}'")
        assert KEY not in result.stderr and "hunter2" not in result.stderr
    assert owner(dotenv) == ("root", "root", "0644")
    assert owner(db) == ("root", "root", "0644")
    assert install.log == []  # no pip, no unit touched


def test_a_world_readable_env_without_a_secret_is_made_private(install: Install) -> None:
    dotenv = write_env(install, "KEEPA_DOMAIN=3\nKEEPA_API_KEY=\n", 0o644)
    result = install.deploy()
    assert result.returncode == 0, result.stderr
    assert owner(dotenv) == ("root", "nogroup", "0640")


def test_a_dry_run_shows_the_ownership_changes_before_the_migration(install: Install) -> None:
    """DEALS_DB_PATH is read from .env as the service reads it; nothing changes."""
    dotenv = write_env(install, "DEALS_DB_PATH=data/harvest.db\n", 0o600)
    db = root_owned_database(install.home / "data" / "harvest.db")
    schedule = install.home / "data" / "celerybeat-schedule"
    schedule.write_bytes(b"")
    result = install.deploy("--dry-run")
    assert result.returncode == 0, result.stderr
    planned = [line for line in result.stdout.splitlines() if line.startswith("would run:")]
    home = install.home
    expected = [
        f"would run: chown root:nogroup {dotenv}",
        f"would run: chmod 0640 {dotenv}",
        f"would run: install -d -o nobody -g nogroup {home}/data",
        f"would run: chown nobody:nogroup {db}",
        f"would run: chown nobody:nogroup {schedule}",
        f"would run: runuser -u nobody -- env -C {home} {home}/.venv/bin/keepa-deals migrate",
    ]
    start = planned.index(expected[0])
    assert planned[start : start + len(expected)] == expected
    assert owner(dotenv) == ("root", "root", "0600") and owner(db)[:2] == ("root", "root")
    assert install.log == []
