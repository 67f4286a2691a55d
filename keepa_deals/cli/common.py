"""Helpers shared by the CLI modules: settings with one-line errors, the running demo's
state, and logging."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import click
from dotenv import dotenv_values

from keepa_deals.config import Settings
from keepa_deals.errors import KeepaDealsError
from keepa_deals.infra.redact import install_log_redaction
from keepa_deals.service.preflight import PreflightFailed, preflight

LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def fail(message: str, code: int = 2) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


# Written by `keepa-deals run` in demo mode (no key) while it runs, removed on exit, so
# that status, doctor and a dashboard started in another terminal (same directory) find
# the demo's database, Redis and Redis prefix without flags.
DEMO_STATE_PATH = Path("var/demo.env")
# Only these are taken from it: where the demo's state lives, nothing that changes policy.
DEMO_STATE_NAMES = ("DEALS_DB_PATH", "KEEPA_REDIS_PREFIX", "REDIS_URL", "KEEPA_API_URL")
_PID = "DEMO_PID"
_STARTED = "DEMO_PID_STARTED"  # the process's start time: tells a reused pid apart


def configured_values(
    environ: Mapping[str, str], dotenv_path: Path = Path(".env")
) -> dict[str, str]:
    """The raw settings as `Settings.from_env` reads them: `.env`, then the environment."""
    merged: dict[str, str] = {}
    if dotenv_path.is_file():
        merged.update({k: v for k, v in dotenv_values(dotenv_path).items() if v is not None})
    merged.update(environ)
    return merged


def _process_started(pid: int) -> str | None:
    """The start time (clock ticks since boot) of a live, non-zombie process, or None.
    Without /proc (not Linux): "" for any pid that exists."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        if Path("/proc/self/stat").exists():
            return None  # /proc works: the process is gone
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass  # exists, someone else's
        return ""
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()  # comm may hold spaces and ')'
    return None if fields[0] == "Z" else fields[19]


def write_demo_state(values: Mapping[str, str], path: Path = DEMO_STATE_PATH) -> None:
    """Record the running demo's state for other terminals; atomically (a reader never
    sees half a file). The pid is this process's: the file counts only while it lives."""
    pid = os.getpid()
    lines = [f"{_PID}={pid}", f"{_STARTED}={_process_started(pid) or ''}"]
    lines += [f"{name}={values[name]}" for name in DEMO_STATE_NAMES if values.get(name)]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{pid}.tmp")
    text = "# keepa-deals run (demo) is running; removed when it stops. Do not edit.\n"
    # Owner-only: REDIS_URL may carry a password.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text + "\n".join(lines) + "\n")
    tmp.replace(path)


def remove_demo_state(path: Path = DEMO_STATE_PATH) -> None:
    """Remove the file if it is still ours (another demo may have replaced it)."""
    state = read_demo_state(path, require_alive=False)
    if state is not None and state.pid == os.getpid():
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


@dataclass(frozen=True)
class DemoState:
    pid: int
    values: dict[str, str]


def read_demo_state(path: Path = DEMO_STATE_PATH, require_alive: bool = True) -> DemoState | None:
    """The state of a demo that is running now, or None: no file, an unreadable one, or
    one whose process has exited (a killed demo leaves it behind: it is never used)."""
    try:
        raw = dotenv_values(path) if path.is_file() else {}
    except (OSError, UnicodeDecodeError):
        return None
    try:
        pid = int(raw.get(_PID) or "")
    except ValueError:
        return None
    if require_alive:
        started = _process_started(pid)
        recorded = raw.get(_STARTED) or ""
        if started is None or (recorded and started and started != recorded):
            return None
    values = {name: v for name in DEMO_STATE_NAMES if (v := raw.get(name))}
    return DemoState(pid, values)


def demo_environ(
    environ: Mapping[str, str], dotenv_path: Path = Path(".env"), path: Path = DEMO_STATE_PATH
) -> tuple[dict[str, str], DemoState | None]:
    """The environment to load settings from: with a running demo's state on top when no
    KEEPA_API_KEY is configured (in `.env` or the environment). A configured key means a
    real deployment: the demo's file is then never consulted."""
    if configured_values(environ, dotenv_path).get("KEEPA_API_KEY", "").strip():
        return dict(environ), None
    state = read_demo_state(path)
    if state is None:
        return dict(environ), None
    return {**environ, **state.values}, state


def load_settings(use_demo_state: bool = True) -> Settings:
    """Settings from `.env` and the environment; without a key, those of a `keepa-deals
    run` demo running from this directory (said in one line on stderr)."""
    environ: Mapping[str, str] = os.environ
    if use_demo_state:
        environ, state = demo_environ(os.environ)
        if state is not None:
            click.echo(
                f"using the running demo's state ({DEMO_STATE_PATH}, pid {state.pid}): "
                f"database {state.values.get('DEALS_DB_PATH', '(default)')}, Redis keys "
                f"under {state.values.get('KEEPA_REDIS_PREFIX', '(default)')}",
                err=True,
            )
    try:
        return Settings.from_env(environ=environ)
    except KeepaDealsError as exc:
        fail(str(exc))


def checked_settings() -> Settings:
    """Settings that passed every start-up check; one clear line and exit 2 otherwise."""
    settings = load_settings()
    try:
        for check in preflight(settings):
            if check.outcome == "warn":
                click.echo(f"warning: {check.name}: {check.detail}", err=True)
    except PreflightFailed as exc:
        fail(str(exc))
    return settings


def setup_logging(level: str = "INFO") -> None:
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        root.addHandler(handler)
    root.setLevel(level.upper())
    install_log_redaction()
