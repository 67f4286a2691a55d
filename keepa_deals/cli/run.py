"""`keepa-deals run` (what `make run` calls): everything a single host needs, in the
foreground, and Ctrl-C stops everything it started.

Without KEEPA_API_KEY it starts the built-in Keepa simulator and says so on its first
line. Simulator and service then both run on wall time: the simulator gets a generous
plan and the tasks shorter schedules, so deals arrive within a minute. A scaled
simulator against a service on unscaled time (or the reverse) would make every token
computation wrong, so a KEEPA_TIME_SCALE other than 1 is refused here.

Redis: REDIS_URL when it answers; otherwise a local redis-server owned by this command
(Debian's package is installed first when the binary is missing and we are root).

Shutdown: every child runs in its own session, so a terminal's Ctrl-C (SIGINT to the
foreground process group) reaches this process alone. It asks the worker for Celery's
warm shutdown, waits for it and its beat to exit (they settle grants and release locks
in Redis), and only then stops the simulator and the local redis-server, in reverse
order of starting.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

import click
import redis

from keepa_deals.cli.common import (
    DEMO_STATE_PATH,
    configured_values,
    fail,
    load_settings,
    read_demo_state,
    remove_demo_state,
    write_demo_state,
)
from keepa_deals.cli.dashboard import start_with_run as start_dashboard
from keepa_deals.config import Settings, mask_url_password
from keepa_deals.errors import KeepaDealsError
from keepa_deals.infra.redis_client import CLI, PROBE, redis_client
from keepa_deals.infra.redis_server import RedisServerError, RedisServerProcess
from keepa_deals.service import shutdown
from keepa_deals.service.preflight import PreflightFailed, preflight
from keepa_deals.service.status import db_status, token_status
from keepa_deals.tokens.errors import TokenScriptError

SIMULATOR_KEY = "keepadealsSIMULATORdemokey0000"
DEMO_DEFAULTS = {
    # Kept apart from a real deployment's data and Redis keys.
    "DEALS_DB_PATH": "var/simulator-deals.db",
    "KEEPA_REDIS_PREFIX": "keepa-sim:",
    "UPSERT_EVERY_S": "60",
    "BACKFILL_EVERY_S": "20",
}
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

Cleanups = list[Callable[[], Any]]


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _ignore_stop_signals() -> None:
    """While the last, bounded cleanup steps run: an impatient Ctrl-C must not skip them
    and leave a redis-server behind."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)


def simulator_time_error(values: Mapping[str, str]) -> str | None:
    """Why the built-in simulator cannot run with these settings, or None.

    Checked on the raw values, before `Settings` would ask for KEEPA_TIME_ORIGIN_S: the
    operator must learn that the scale itself is the problem here.
    """
    if values.get("KEEPA_API_KEY", "").strip():
        return None  # a real key (or the operator's own simulator): not ours to judge
    raw = values.get("KEEPA_TIME_SCALE", "").strip() or "1"
    try:
        scale = float(raw)
    except ValueError:
        return None  # Settings names the malformed value
    if scale == 1:
        return None
    return (
        f"KEEPA_TIME_SCALE={raw}: without KEEPA_API_KEY, `keepa-deals run` starts the "
        "built-in Keepa simulator on wall time, and a service on scaled time against it "
        "would get every token computation wrong. Remove KEEPA_TIME_SCALE (or set it to 1) "
        "in .env and the environment, or put a KEEPA_API_KEY in .env."
    )


def _redis_answers(url: str) -> bool:
    client = redis_client(url, PROBE)
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
    except TokenScriptError:
        parts.append("token script error (keepa-deals status names it)")
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
@click.option(
    "--sim-seed",
    type=click.IntRange(0),
    default=None,
    help="Without a key: the simulator's seed (catalogue and deals); default: from the clock.",
)
@click.option("--loglevel", default="INFO", show_default=True)
@click.option("--progress-every-s", default=15.0, show_default=True, type=float)
def run_command(
    sim_rate: int, sim_seed: int | None, loglevel: str, progress_every_s: float
) -> None:
    """Worker and beat together for a single host, with Redis and (without a key) the
    Keepa simulator started if needed. Ctrl-C stops everything."""
    problem = simulator_time_error(configured_values(os.environ))
    if problem:
        fail(problem)
    # Its own settings only: never those of another demo's state file.
    settings = load_settings(use_demo_state=False)
    if not settings.keepa_api_key and (other := read_demo_state()) is not None:
        fail(
            f"a keepa-deals run demo is already running from this directory (pid "
            f"{other.pid}, see {DEMO_STATE_PATH}): stop it first (Ctrl-C in its terminal)"
        )
    # Ctrl-C, systemd's or kill's SIGTERM, and a closed terminal's SIGHUP: one cleanup.
    for signum in STOP_SIGNALS:
        signal.signal(signum, _interrupt)
    env = dict(os.environ)
    cleanups: Cleanups = []
    try:
        if not settings.keepa_api_key:
            _start_simulator(sim_rate, sim_seed, env, cleanups)
        demo = not settings.keepa_api_key
        _start_redis(settings, env, cleanups)
        try:
            settings = Settings.from_env(environ=env)
            for check in preflight(settings):
                click.echo(f"{check.name}: {check.outcome} ({check.detail})")
        except (KeepaDealsError, PreflightFailed) as exc:
            fail(str(exc))
        if demo:
            _share_demo_state(settings, env, cleanups)
        start_dashboard(env, cleanups)
        _run_worker(settings, env, loglevel, progress_every_s)
    finally:
        _ignore_stop_signals()
        for cleanup in reversed(cleanups):
            cleanup()
        click.echo("stopped everything keepa-deals run started")


def _share_demo_state(settings: Settings, env: dict[str, str], cleanups: Cleanups) -> None:
    """Tell status, doctor and a dashboard started in another terminal (in this
    directory, without a key) where the demo keeps its state; gone when we stop."""
    cleanups.append(remove_demo_state)
    write_demo_state(
        {
            "DEALS_DB_PATH": os.path.abspath(settings.deals_db_path),
            "KEEPA_REDIS_PREFIX": settings.redis_prefix,
            "REDIS_URL": settings.redis_url,
            "KEEPA_API_URL": settings.keepa_api_url,
        }
    )
    click.echo(
        f"demo state: {DEMO_STATE_PATH} (keepa-deals status, doctor and dashboard in "
        "another terminal here use it while this runs)"
    )


def _start_simulator(
    sim_rate: int, sim_seed: int | None, env: dict[str, str], cleanups: Cleanups
) -> None:
    from keepa_deals.keepa_sim import KeepaSimulator  # noqa: PLC0415

    # Said first, before the simulator takes its seconds to build the catalogue.
    click.secho(
        "No KEEPA_API_KEY: using the built-in Keepa SIMULATOR. These are simulated deals, "
        "not Amazon's. Put a key in .env to harvest from Keepa.",
        bold=True,
    )
    # In-process (a thread): it lives until the cleanups, after the worker has exited.
    seed = int(time.time()) % 1000 if sim_seed is None else sim_seed
    sim = KeepaSimulator(seed=seed, refill_rate=sim_rate, clock="wall")
    cleanups.append(sim.stop)
    sim.start()
    env.update({"KEEPA_API_URL": sim.url, "KEEPA_API_KEY": SIMULATOR_KEY})
    for name, value in DEMO_DEFAULTS.items():
        env.setdefault(name, value)
    click.echo(
        f"simulator: {sim.url}, seed {seed}, {sim_rate} tokens/min, wall time like the service; "
        f"database {env['DEALS_DB_PATH']}, Redis keys under {env['KEEPA_REDIS_PREFIX']}"
    )


def _start_redis(settings: Settings, env: dict[str, str], cleanups: Cleanups) -> None:
    shown = mask_url_password(settings.redis_url)
    if _redis_answers(settings.redis_url):
        click.echo(f"redis: using {shown}")
        return
    # Only now is a local binary needed: a REDIS_URL that answers never installs one.
    _ensure_redis_binary(shown)
    try:
        # In its own session: in the terminal's process group, Ctrl-C would stop Redis
        # at once, while the worker still settles its grants and releases its locks.
        server = RedisServerProcess(own_session=True)
        # Registered before it starts: a Ctrl-C during start-up must still stop it.
        cleanups.append(server.close)
        server.start()
    except RedisServerError as exc:
        fail(f"Redis at {shown} does not answer and a local one cannot start: {exc}")
    env["REDIS_URL"] = server.url
    click.echo(f"redis: {shown} does not answer; started a local redis-server at {server.url}")


def _ensure_redis_binary(shown: str) -> None:
    """Install Debian's redis-server package when the binary is missing and we are root;
    otherwise stop with what the operator can do."""
    if shutil.which("redis-server"):
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        fail(
            f"Redis at {shown} does not answer, and redis-server is not installed to start "
            "a local one. Point REDIS_URL at a running Redis, or install redis-server "
            "(Debian: sudo apt-get install redis-server) and retry."
        )
    click.echo(
        f"redis: {shown} does not answer and redis-server is not installed: "
        "installing Debian's redis-server package (apt-get update, apt-get install)"
    )
    apt_env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "redis-server"]):
        done = subprocess.run(argv, env=apt_env, stdout=subprocess.DEVNULL, check=False)
        if done.returncode != 0:
            fail(
                f"`{' '.join(argv)}` failed (exit {done.returncode}); install redis-server "
                "by hand or point REDIS_URL at a running Redis"
            )
    if not shutil.which("redis-server"):
        fail("Debian's redis-server package is installed but no redis-server is on PATH")


def _run_worker(settings: Settings, env: dict[str, str], loglevel: str, every_s: float) -> None:
    argv = [sys.executable, "-m", "keepa_deals", "worker", "--beat", "--loglevel", loglevel]
    client = redis_client(settings.redis_url, CLI)
    grace_s = shutdown.longest_stop_s(settings)
    child: subprocess.Popen[bytes] | None = None
    interrupted = False
    try:
        # Its own session (with its pool and embedded beat): Ctrl-C reaches only us, and
        # the worker gets one orderly SIGTERM instead of a terminal's SIGINT to all.
        child = subprocess.Popen(argv, env=env, start_new_session=True)
        while child.poll() is None:
            try:
                child.wait(timeout=every_s)
            except subprocess.TimeoutExpired:
                click.echo(f"progress: {_progress_line(settings, client)}")
    except KeyboardInterrupt:
        interrupted = True
        click.echo(
            "stopping: the worker stops its runs at their next check and releases its locks "
            f"(at most {grace_s:.0f}s; Ctrl-C again to kill it now)"
        )
    finally:
        if child is not None:
            _stop_worker(child, grace_s)
        client.close()
    if not interrupted and child is not None and child.returncode != 0:
        fail(f"the worker exited with code {child.returncode} (its log is above)", code=1)


def _stop_worker(child: subprocess.Popen[bytes], grace_s: float) -> None:
    """After Ctrl-C the worker's runs stop at their next check, settle their grants and
    release their locks; past `grace_s` it is killed (its locks then expire within
    LOCK_TTL_S). A second Ctrl-C kills it at once.

    SIGTERM (Celery's warm shutdown, which also stops the embedded beat), then the
    worker's whole process group, so no pool or beat process outlives this command."""
    if child.poll() is None:
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            click.echo(
                f"the worker did not stop within {grace_s:.0f}s: killing it "
                "(its locks expire within LOCK_TTL_S)"
            )
        except KeyboardInterrupt:
            click.echo("killing the worker now (its locks expire within LOCK_TTL_S)")
    _ignore_stop_signals()
    # The group id is the worker's pid: it started the session. Whatever is left in it
    # (everything, after a timeout; usually nothing after a clean exit) goes. An empty
    # group raises ProcessLookupError (or EPERM on some kernels): nothing is left.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.pid, signal.SIGKILL)
    child.wait()
