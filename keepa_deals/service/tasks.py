"""The two Celery tasks. Each runs its pipeline function under its task lock.

A run that finds its lock held returns at once and says who holds it. A run never waits
long for tokens while holding the lock (failure mode: sleeping on a lock): the pipeline stops when
the TokenManager's next wait is longer than its inline limit, and beat brings it back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from keepa_deals.config import Settings
from keepa_deals.infra.redis_client import redis_client
from keepa_deals.infra.redis_keys import RedisKeys
from keepa_deals.locking import TaskLock
from keepa_deals.service import shutdown
from keepa_deals.service.celery_app import BACKFILL_TASK, UPSERT_TASK, app
from keepa_deals.service.timebase import lock_ttl_wall_s, service_clock
from keepa_deals.service.timebase import now_s as timebase_now_s
from keepa_deals.store import (
    RunStats,
    close_abandoned_runs,
    finish_run,
    open_from_settings,
    start_run,
)

log = logging.getLogger(__name__)


def run_locked(
    task: str, run: Callable[[Any], Any], settings: Settings | None = None
) -> dict[str, Any]:
    """Run `run(ctx)` under the task's lock; the summary as a JSON-able dict."""
    from keepa_deals.harvest.context import HarvestContext  # noqa: PLC0415 - keeps imports light

    settings = settings or Settings.from_env()
    client = redis_client(settings.redis_url)
    lock = TaskLock(client, RedisKeys(settings.redis_prefix), task, ttl_s=lock_ttl_wall_s(settings))
    try:
        if not lock.acquire():
            holder = lock.holder()
            who = f"{holder.owner} ({holder.ttl_left_s:.0f}s left)" if holder else "nobody now"
            log.info("%s: skipped, the lock is held by %s", task, who)
            return {"task": task, "skipped": "locked", "holder": holder.owner if holder else None}
        try:
            ctx = HarvestContext.from_settings(
                settings,
                redis=client,
                clock=service_clock(settings),
                stop=lock.lost.is_set,
                shutting_down=shutdown.requested,
            )
        except Exception as exc:
            # A run that cannot even start (a broken deal query, a database that will not
            # open) must still free its lock and say why, or every later run is skipped.
            lock.release()
            _record_failed_start(settings, task, exc)
            raise
        try:
            # Holding the lock, no other run of this task is live: any run row left open
            # belongs to a killed worker.
            abandoned = close_abandoned_runs(ctx.conn, task, ctx.now_s())
            if abandoned:
                log.warning("%s: marked %d run(s) of a killed worker as abandoned", task, abandoned)
            summary = run(ctx)
        finally:
            try:
                ctx.close()
            finally:
                # Even if closing fails: a lock left to its heartbeat would skip every
                # later run of this task for as long as the worker lives.
                lock.release()
        result: dict[str, Any] = summary.to_dict()
        return result
    finally:
        client.close()


def _record_failed_start(settings: Settings, task: str, exc: Exception) -> None:
    """Best effort: a `runs` row with stop reason `error` and the cause, for diagnostics."""
    log.error("%s: cannot start: %s", task, exc)
    try:
        conn = open_from_settings(settings)
    except Exception:
        return
    try:
        now = int(timebase_now_s(settings))
        run_id = start_run(conn, task, now)
        finish_run(conn, run_id, RunStats(), "error", now, error=f"cannot start: {exc}")
    finally:
        conn.close()


@app.task(name=UPSERT_TASK)
def update_recent_deals() -> dict[str, Any]:
    from keepa_deals.harvest.upserter import update_recent_deals as run  # noqa: PLC0415

    return run_locked("upsert", run)


@app.task(name=BACKFILL_TASK)
def backfill_deals() -> dict[str, Any]:
    from keepa_deals.harvest.backfiller import backfill_deals as run  # noqa: PLC0415

    return run_locked("backfill", run)
