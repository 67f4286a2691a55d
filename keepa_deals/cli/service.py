"""`keepa-deals worker`, `beat` and `run`: the service itself."""

from __future__ import annotations

import click

from keepa_deals.cli.common import checked_settings, setup_logging
from keepa_deals.config import Settings

QUEUES = "upsert,backfill"


def _schedule_path(settings: Settings) -> str:
    return str(settings.deals_db_path.parent / "celerybeat-schedule")


def worker_argv(settings: Settings, loglevel: str, beat: bool) -> list[str]:
    argv = [
        "worker",
        "--queues",
        QUEUES,
        "--concurrency",
        str(settings.worker_concurrency),
        "--prefetch-multiplier",
        "1",
        "--loglevel",
        loglevel,
        "--hostname",
        "keepa-deals@%h",
    ]
    if beat:
        argv += ["--beat", "--schedule", _schedule_path(settings)]
    return argv


@click.command("worker")
@click.option("--loglevel", default="INFO", show_default=True)
@click.option("--beat", is_flag=True, help="Also run beat inside the worker (single host).")
def worker_command(loglevel: str, beat: bool) -> None:
    """Run the Celery worker for both queues (after the start-up checks)."""
    settings = checked_settings()
    setup_logging(loglevel)
    from keepa_deals.service.celery_app import app  # noqa: PLC0415 - only after the checks

    app.worker_main(worker_argv(settings, loglevel, beat))


@click.command("beat")
@click.option("--loglevel", default="INFO", show_default=True)
def beat_command(loglevel: str) -> None:
    """Run Celery beat: the upserter every UPSERT_EVERY_S, the backfiller every BACKFILL_EVERY_S."""
    settings = checked_settings()
    setup_logging(loglevel)
    from keepa_deals.service.celery_app import app  # noqa: PLC0415

    app.start(["beat", "--schedule", _schedule_path(settings), "--loglevel", loglevel])
