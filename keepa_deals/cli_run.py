"""`keepa-deals run` (what `make run` calls): everything a single host needs, in the
foreground, and Ctrl-C stops everything it started.

Without KEEPA_API_KEY it starts the built-in Keepa simulator and says so. Simulator and
service then both run on wall time: the simulator gets a generous plan and the tasks
shorter schedules, so deals arrive within a minute. (A scaled simulator against a
service on unscaled time would make every token computation wrong.)
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import click
import redis

from keepa_deals.cli_common import fail, load_settings
from keepa_deals.config import Settings, mask_url_password
from keepa_deals.errors import KeepaDealsError
from keepa_deals.preflight import PreflightFailed, preflight
from keepa_deals.redis_server import RedisServerError, RedisServerProcess
from keepa_deals.service_status import db_status, token_status

SIMULATOR_KEY = "keepadealsSIMULATORdemokey0000"
DEMO_DEFAULTS = {
    # Kept apart from a real deployment's data and Redis keys.
    "DEALS_DB_PATH": "var/simulator-deals.db",
    "KEEPA_REDIS_PREFIX": "keepa-sim:",
    "UPSERT_EVERY_S": "60",
    "BACKFILL_EVERY_S": "20",
}


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _redis_answers(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def _progress_line(settings: Settings, client: redis.Redis) -> str:
    db = db_status(settings.deals_db_path)
    parts = [time.strftime("%H:%M:%S")]
    if db.get("state") == "ok":
        accepted = db["deals_by_status"].get("accepted", 0)
        parts.append(f"deals accepted {accepted}, pending {db['pending']}")
        age = db["watermark_age_s"]
        parts.append("watermark none yet" if age is None else f"watermark {age / 60:.0f} min old")
        runs = db["last_runs"]
        if runs:
            last = runs[0]
            parts.append(f"last run {last['task']} stopped: {last['stop_reason'] or 'running'}")
    try:
        tokens = token_status(settings, client)
        if tokens.get("state") == "ok":
            parts.append(
                f"tokens {tokens['balance']}/{tokens['capacity']} (+{tokens['rate_per_min']}/min)"
            )
    except redis.RedisError:
        parts.append("redis unreachable")
    return " | ".join(parts)


@click.command("run")
@click.option(
    "--sim-rate",
    default=300,
    show_default=True,
    type=click.IntRange(1, 100_000),
    help="Without a key: the simulated plan, tokens/min (generous, so the demo moves).",
)
@click.option("--loglevel", default="INFO", show_default=True)
@click.option("--progress-every-s", default=15.0, show_default=True, type=float)
def run_command(sim_rate: int, loglevel: str, progress_every_s: float) -> None:
    """Worker and beat together for a single host, with Redis and (without a key) the
    Keepa simulator started if needed. Ctrl-C stops everything."""
    signal.signal(signal.SIGTERM, _interrupt)  # systemd/kill: clean up like Ctrl-C
    settings = load_settings()
    env = dict(os.environ)
    cleanups: list[Callable[[], Any]] = []
    try:
        _start_redis(settings, env, cleanups)
        if not settings.keepa_api_key:
            _start_simulator(sim_rate, env, cleanups)
        try:
            settings = Settings.from_env(environ=env)
            for check in preflight(settings):
                click.echo(f"{check.name}: {check.outcome} ({check.detail})")
        except (KeepaDealsError, PreflightFailed) as exc:
            fail(str(exc))
        _run_worker(settings, env, loglevel, progress_every_s)
    finally:
        for cleanup in reversed(cleanups):
            cleanup()
        click.echo("stopped everything keepa-deals run started")


def _start_redis(
    settings: Settings, env: dict[str, str], cleanups: list[Callable[[], Any]]
) -> None:
    shown = mask_url_password(settings.redis_url)
    if _redis_answers(settings.redis_url):
        click.echo(f"redis: using {shown}")
        return
    try:
        server = RedisServerProcess().start()
    except RedisServerError as exc:
        fail(f"Redis at {shown} does not answer and a local one cannot start: {exc}")
    cleanups.append(server.close)
    env["REDIS_URL"] = server.url
    click.echo(f"redis: {shown} does not answer; started a local redis-server at {server.url}")


def _start_simulator(sim_rate: int, env: dict[str, str], cleanups: list[Callable[[], Any]]) -> None:
    from keepa_deals.simulator import KeepaSimulator  # noqa: PLC0415

    sim = KeepaSimulator(seed=int(time.time()) % 1000, refill_rate=sim_rate, clock="wall").start()
    cleanups.append(sim.stop)
    env.update({"KEEPA_API_URL": sim.url, "KEEPA_API_KEY": SIMULATOR_KEY})
    for name, value in DEMO_DEFAULTS.items():
        env.setdefault(name, value)
    click.secho(
        f"No KEEPA_API_KEY: using the built-in Keepa SIMULATOR at {sim.url} "
        f"({sim_rate} tokens/min, wall time). These are simulated deals, not Amazon's. "
        f"Database: {env['DEALS_DB_PATH']}. Put a key in .env to harvest from Keepa.",
        bold=True,
    )


def _run_worker(settings: Settings, env: dict[str, str], loglevel: str, every_s: float) -> None:
    argv = [sys.executable, "-m", "keepa_deals", "worker", "--beat", "--loglevel", loglevel]
    child = subprocess.Popen(argv, env=env)
    client = redis.Redis.from_url(settings.redis_url, socket_timeout=5)
    try:
        while child.poll() is None:
            try:
                child.wait(timeout=every_s)
            except subprocess.TimeoutExpired:
                click.echo(f"progress: {_progress_line(settings, client)}")
    except KeyboardInterrupt:
        click.echo("stopping: waiting for the worker to finish its batch (Ctrl-C again to force)")
    finally:
        _stop(child)
        client.close()


def _stop(child: subprocess.Popen[bytes]) -> None:
    if child.poll() is not None:
        return
    # Ctrl-C in a terminal already reached the child (same process group); this covers
    # a SIGTERM sent to us alone.
    child.send_signal(signal.SIGTERM)
    try:
        child.wait(timeout=60)
    except (subprocess.TimeoutExpired, KeyboardInterrupt):
        child.kill()
        child.wait()
