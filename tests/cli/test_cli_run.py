"""`keepa-deals run`: the real command as a subprocess, with the built-in simulator.

It runs in its own session, so a SIGINT to that session's process group is what a
terminal's Ctrl-C does. Every wait is bounded; processes are found through /proc.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from click.testing import CliRunner

from keepa_deals.cli import main
from keepa_deals.cli import run as cli_run
from keepa_deals.cli.run import simulator_time_error
from keepa_deals.config import Settings
from keepa_deals.infra.redis_server import RedisServerProcess, free_port
from keepa_deals.service.shutdown import longest_stop_s
from keepa_deals.tokens import TokenManager

# Seed 11's catalogue has accepted deals on the first backfill pass.
SIM_SEED = "11"


# --- processes, through /proc ------------------------------------------------------------


@dataclass(frozen=True)
class Proc:
    pid: int
    started: int  # start time in clock ticks: tells a reused pid apart
    comm: str
    cmdline: str


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, ppid, start time) of a live process, or None."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()  # comm may hold spaces and ')'
    return fields[0], int(fields[1]), int(fields[19])


def descendants(root: int) -> list[Proc]:
    parent_of: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (st := _stat(int(entry.name))) is not None:
            parent_of[int(entry.name)] = st[1]
    found: list[Proc] = []
    frontier = [root]
    while frontier:
        parent = frontier.pop()
        for pid, ppid in parent_of.items():
            if ppid == parent and (st := _stat(pid)) is not None:
                try:
                    comm = Path(f"/proc/{pid}/comm").read_text().strip()
                    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
                except OSError:
                    continue
                found.append(Proc(pid, st[2], comm, cmdline.decode(errors="replace")))
                frontier.append(pid)
    return found


def alive(proc: Proc) -> bool:
    st = _stat(proc.pid)
    # A zombie has exited; an orphaned one may wait for a PID 1 that never reaps.
    return st is not None and st[2] == proc.started and st[0] != "Z"


# --- the command -------------------------------------------------------------------------


@dataclass
class RunCommand:
    proc: subprocess.Popen[bytes]
    out_path: Path
    err_path: Path
    db_path: Path
    cwd: Path

    def out(self) -> str:
        return self.out_path.read_text(errors="replace")

    def logs(self) -> str:
        err = self.err_path.read_text(errors="replace")[-6000:]
        return f"--- stdout\n{self.out()[-4000:]}\n--- stderr\n{err}"

    def wait_for(self, predicate: Callable[[], bool], timeout_s: float, what: str) -> float:
        start = time.monotonic()
        while not predicate():
            if self.proc.poll() is not None:
                pytest.fail(f"{what}: the command exited ({self.proc.returncode})\n{self.logs()}")
            if time.monotonic() - start > timeout_s:
                pytest.fail(f"{what}: not within {timeout_s}s\n{self.logs()}")
            time.sleep(0.2)
        return time.monotonic() - start

    def ctrl_c(self) -> None:
        """What a terminal does: SIGINT to the foreground process group."""
        os.killpg(self.proc.pid, signal.SIGINT)

    def accepted_deals(self) -> int:
        if not self.db_path.exists():
            return 0
        conn = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=5)
        try:
            return int(conn.execute("SELECT COUNT(*) FROM dashboard_deals").fetchone()[0])
        except sqlite3.OperationalError:
            return 0  # not migrated yet
        finally:
            conn.close()

    def worker(self) -> Proc | None:
        return next((p for p in descendants(self.proc.pid) if " worker " in f"{p.cmdline} "), None)


@pytest.fixture
def start_run(tmp_path: Path) -> Iterator[Callable[[dict[str, str]], RunCommand]]:
    started: list[RunCommand] = []

    def start(changes: dict[str, str]) -> RunCommand:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("KEEPA_", "REDIS_"))}
        env.update({"DEALS_DB_PATH": str(tmp_path / "deals.db"), "PYTHONUNBUFFERED": "1"})
        env.update(changes)
        out, err = tmp_path / "run.out", tmp_path / "run.err"
        with out.open("wb") as out_file, err.open("wb") as err_file:
            proc = subprocess.Popen(
                [sys.executable, "-m", "keepa_deals", "run", "--sim-seed", SIM_SEED],
                env=env,
                cwd=tmp_path,  # no stray .env
                stdout=out_file,
                stderr=err_file,
                start_new_session=True,  # its own process group, as in a terminal
            )
        run = RunCommand(proc, out, err, Path(env["DEALS_DB_PATH"]), tmp_path)
        started.append(run)
        return run

    yield start
    for run in started:  # a failed test must not leave the stack running
        if run.proc.poll() is None:
            for proc in descendants(run.proc.pid):
                os.kill(proc.pid, signal.SIGKILL)
            run.proc.kill()
            run.proc.wait()


def other_terminal_status(run: RunCommand) -> subprocess.CompletedProcess[str]:
    """`keepa-deals status --json` as from a second terminal in the demo's directory."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KEEPA_", "REDIS_", "DEALS_"))}
    return subprocess.run(
        [sys.executable, "-m", "keepa_deals", "status", "--json"],
        env=env,
        cwd=run.cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def wait_exit(run: RunCommand) -> int:
    try:
        return run.proc.wait(timeout=longest_stop_s(Settings()) + 15)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the command did not stop after Ctrl-C\n{run.logs()}")


@pytest.mark.slow
def test_without_a_key_it_says_simulator_first_deals_arrive_and_ctrl_c_stops_all(
    start_run: Callable[[dict[str, str]], RunCommand],
    redis_server: RedisServerProcess,
    redis_client: redis.Redis,
    prefix: str,
) -> None:
    run = start_run({"REDIS_URL": redis_server.url, "KEEPA_REDIS_PREFIX": prefix})
    run.wait_for(lambda: "\n" in run.out(), 15, "the first line")
    first = run.out().splitlines()[0]
    assert first.startswith("No KEEPA_API_KEY: using the built-in Keepa SIMULATOR.")
    run.wait_for(lambda: "redis: " in run.out(), 15, "the redis line")
    assert f"redis: using {redis_server.url}\n" in run.out()
    run.wait_for(lambda: run.accepted_deals() > 0, 60, "accepted deals in the database")

    # Another terminal in the same directory, with no flags and none of the demo's
    # settings, sees the demo's database and token state.
    seen = other_terminal_status(run)
    assert seen.returncode == 0, seen.stderr
    assert seen.stderr.startswith("using the running demo's state (var/demo.env, pid ")
    report = json.loads(seen.stdout)
    assert report["database"]["state"] == "ok"
    assert report["database"]["deals_by_status"]["accepted"] > 0
    assert report["tokens"]["state"] == "ok"

    children = descendants(run.proc.pid)
    assert run.worker() is not None
    assert not [p for p in children if p.comm == "redis-server"]  # REDIS_URL answered
    run.ctrl_c()
    assert wait_exit(run) == 0
    assert run.out().splitlines()[-1] == "stopped everything keepa-deals run started"
    # Stopped: the state file is gone and another terminal falls back to its own settings.
    assert not (run.cwd / "var" / "demo.env").exists()
    after = other_terminal_status(run)
    assert "demo" not in after.stderr
    assert json.loads(after.stdout)["database"]["state"] == "missing"
    assert [p for p in children if alive(p)] == []  # worker, its pool, its beat: all gone
    # The worker stopped cleanly: locks released, every run closed, no grant in flight.
    assert redis_client.keys(f"{prefix}lock:*") == []
    conn = sqlite3.connect(run.db_path)
    assert conn.execute("SELECT COUNT(*) FROM runs WHERE ended_s IS NULL").fetchone() == (0,)
    conn.close()
    values = {"REDIS_URL": redis_server.url, "KEEPA_REDIS_PREFIX": prefix}
    tm = TokenManager.from_settings(Settings.from_mapping(values), redis=redis_client)
    assert tm.status().as_dict()["grants_in_flight"] == 0


@pytest.mark.slow
def test_an_unanswering_redis_url_gets_an_owned_local_redis_that_outlives_the_worker(
    start_run: Callable[[dict[str, str]], RunCommand],
) -> None:
    dead_url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    run = start_run({"REDIS_URL": dead_url})
    line = re.compile(
        rf"redis: {re.escape(dead_url)} does not answer; started a local "
        r"redis-server at (redis://127\.0\.0\.1:(\d+)/0)"
    )
    run.wait_for(lambda: line.search(run.out()) is not None, 20, "a local redis-server")
    match = line.search(run.out())
    assert match is not None
    local = redis.Redis.from_url(match.group(1), socket_connect_timeout=1)
    run.wait_for(lambda: b"ready." in run.err_path.read_bytes(), 30, "the worker ready")

    children = descendants(run.proc.pid)
    servers = [p for p in children if p.comm == "redis-server"]
    assert len(servers) == 1 and f":{match.group(2)}" in servers[0].cmdline
    worker = run.worker()
    assert worker is not None
    run.ctrl_c()
    # Redis must serve the worker's whole shutdown (lock release, grant settling).
    while alive(worker):
        assert alive(servers[0]), "redis-server stopped while the worker was still stopping"
        assert run.proc.poll() is None
        time.sleep(0.05)
    assert wait_exit(run) == 0
    assert [p for p in children if alive(p)] == []
    with pytest.raises(redis.ConnectionError):
        local.ping()
    local.close()


# --- the simulator's clock and the service's must agree ----------------------------------


def test_a_scaled_time_without_a_key_is_refused_naming_the_setting() -> None:
    error = simulator_time_error({"KEEPA_TIME_SCALE": "60", "KEEPA_TIME_ORIGIN_S": "1"})
    assert error is not None and error.startswith("KEEPA_TIME_SCALE=60: without KEEPA_API_KEY")
    assert simulator_time_error({}) is None
    assert simulator_time_error({"KEEPA_TIME_SCALE": "1"}) is None
    assert simulator_time_error({"KEEPA_TIME_SCALE": "1.0", "KEEPA_API_KEY": ""}) is None
    # With a key the operator runs their own Keepa (or simulator): the settings decide.
    key = {"KEEPA_API_KEY": "ownsimulatorkey0123456789"}
    assert simulator_time_error({**key, "KEEPA_TIME_SCALE": "60"}) is None


@pytest.mark.parametrize("source", ["dotenv", "environment"])
def test_run_refuses_keepa_time_scale_from_dotenv_or_environment_before_starting_anything(
    source: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for name in [n for n in os.environ if n.startswith(("KEEPA_", "REDIS_"))]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")  # must not start
    if source == "dotenv":
        (tmp_path / ".env").write_text("KEEPA_API_KEY=\nKEEPA_TIME_SCALE=60\n")
    else:
        monkeypatch.setenv("KEEPA_TIME_SCALE", "60")
    result = CliRunner().invoke(main, ["run"])
    assert result.exit_code == 2
    assert result.output.startswith("error: KEEPA_TIME_SCALE=60: without KEEPA_API_KEY")
    assert "SIMULATOR" not in result.output and "redis-server" not in result.output


# --- a redis-server binary only when a local server is needed ----------------------------


def test_a_redis_url_that_answers_needs_no_local_binary_even_for_a_non_root_user(
    redis_server: RedisServerProcess,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr("keepa_deals.cli.run.shutil.which", lambda name: None)
    monkeypatch.setattr("keepa_deals.cli.run.os.geteuid", lambda: 1000)
    env: dict[str, str] = {}
    cleanups: cli_run.Cleanups = []
    cli_run._start_redis(Settings(redis_url=redis_server.url), env, cleanups)
    assert capsys.readouterr().out == f"redis: using {redis_server.url}\n"
    assert env == {} and cleanups == []


def test_no_redis_and_no_binary_tells_a_non_root_user_what_to_do(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("keepa_deals.cli.run.shutil.which", lambda name: None)
    monkeypatch.setattr("keepa_deals.cli.run.os.geteuid", lambda: 1000)
    dead_url = f"redis://127.0.0.1:{free_port()}/0"
    with pytest.raises(SystemExit) as exit_info:
        cli_run._start_redis(Settings(redis_url=dead_url), {}, [])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == (
        f"error: Redis at {dead_url} does not answer, and redis-server is not installed to "
        "start a local one. Point REDIS_URL at a running Redis, or install redis-server "
        "(Debian: sudo apt-get install redis-server) and retry.\n"
    )


def test_as_root_a_missing_binary_is_installed_from_debian_when_a_local_server_is_needed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    installed = {"redis-server": False}
    calls: list[tuple[list[str], str | None]] = []

    def apt_get(argv: list[str], env: dict[str, str], **kwargs: object) -> Any:
        calls.append((argv, env.get("DEBIAN_FRONTEND")))
        if argv[:2] == ["apt-get", "install"]:
            installed["redis-server"] = True  # the check after the install sees it
        return subprocess.CompletedProcess(argv, 0)

    monkeypatch.setattr(
        "keepa_deals.cli.run.shutil.which",
        lambda name: f"/usr/bin/{name}" if installed.get(name, True) else None,
    )
    monkeypatch.setattr("keepa_deals.cli.run.os.geteuid", lambda: 0)
    monkeypatch.setattr("keepa_deals.cli.run.subprocess.run", apt_get)
    cli_run._ensure_redis_binary("redis://127.0.0.1:1/0")
    assert calls == [
        (["apt-get", "update", "-qq"], "noninteractive"),
        (["apt-get", "install", "-y", "-qq", "redis-server"], "noninteractive"),
    ]
    assert capsys.readouterr().out == (
        "redis: redis://127.0.0.1:1/0 does not answer and redis-server is not installed: "
        "installing Debian's redis-server package (apt-get update, apt-get install)\n"
    )
