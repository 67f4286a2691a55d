"""`keepa-deals dashboard`: serve the dashboard with uvicorn."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

import click

from keepa_deals.cli.common import fail, load_settings, setup_logging
from keepa_deals.dashboard.config import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    DashboardConfig,
    check_bind,
    is_loopback,
)
from keepa_deals.errors import KeepaDealsError


@click.command("dashboard")
@click.option("--host", default=DEFAULT_HOST, show_default=True, help="Address to bind.")
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    help=f"Port to bind  [default: DASHBOARD_PORT, else {DEFAULT_PORT}]",
)
def dashboard_command(host: str, port: int | None) -> None:
    """Serve the deals dashboard (read-only; 127.0.0.1 unless DASHBOARD_PASSWORD is set)."""
    import uvicorn  # noqa: PLC0415 - only this command needs the server

    from keepa_deals.dashboard.app import create_app  # noqa: PLC0415

    settings = load_settings()
    port = port or settings.dashboard_port
    try:
        config = DashboardConfig.from_settings(settings)
        line = check_bind(host, config)
    except KeepaDealsError as exc:
        fail(str(exc))
    if not is_loopback(host):
        config = DashboardConfig(
            settings=config.settings,
            password=config.password,
            session_s=config.session_s,
            login_everywhere=True,
        )
    shown = f"[{host}]" if ":" in host else host
    click.echo(f"dashboard: http://{shown}:{port}/ ({line})")
    if config.simulated:
        click.echo("dashboard: no KEEPA_API_KEY: the deals shown are the simulator's")
    setup_logging()
    uvicorn.run(create_app(config), host=host, port=port, log_level="info", access_log=False)


def start_with_run(env: dict[str, str], cleanups: list[Callable[[], None]]) -> None:
    """`keepa-deals run` starts the dashboard beside the worker, with the same settings
    (the demo's database and Redis prefix included), on DASHBOARD_PORT (default 8080).
    It is a convenience: if it cannot start (the port is taken), the harvest runs on."""
    port = env.get("DASHBOARD_PORT", str(DEFAULT_PORT))
    argv = [sys.executable, "-m", "keepa_deals", "dashboard", "--port", port]
    # Its own session: Ctrl-C reaches `run`, which stops it after the worker.
    child = subprocess.Popen(argv, env=env, start_new_session=True)

    def stop() -> None:
        if child.poll() is None:
            child.terminate()
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()

    cleanups.append(stop)
    click.echo(f"dashboard: http://127.0.0.1:{port}/ (starting; DASHBOARD_PORT to change)")
