"""The Celery application: broker and results in REDIS_URL, one queue per task.

Beat runs the upserter every UPSERT_EVERY_S and the backfiller every BACKFILL_EVERY_S.
Each beat message expires after one interval: a worker that was down for a day must
not come back to a day's backlog of identical runs.
"""

from __future__ import annotations

from typing import Any

from celery import Celery, bootsteps
from celery.signals import worker_shutting_down
from kombu.entity import Queue

from keepa_deals.config import Settings
from keepa_deals.service import shutdown
from keepa_deals.service.broker_transport import install_transport
from keepa_deals.service.timebase import wall_s

UPSERT_TASK = "keepa_deals.update_recent_deals"
BACKFILL_TASK = "keepa_deals.backfill_deals"
UPSERT_QUEUE = "upsert"
BACKFILL_QUEUE = "backfill"


def celery_settings(settings: Settings) -> dict[str, Any]:
    """Celery's configuration, derived from our one Settings object."""
    # Beat and Celery's limits run on wall time; our settings are in service time.
    upsert_every = wall_s(settings, settings.upsert_every_s)
    backfill_every = wall_s(settings, settings.backfill_every_s)
    return {
        "broker_url": settings.redis_url,
        "result_backend": settings.redis_url,
        # Our keys and Celery's share one Redis; Celery's are namespaced by the prefix.
        "broker_transport_options": {
            "global_keyprefix": f"{settings.redis_prefix}celery:",
            # A task a killed worker held comes back after this; the lock makes a
            # duplicate harmless, and beat would bring it back anyway.
            "visibility_timeout": wall_s(settings, settings.task_time_limit_s) + 60,
        },
        "result_backend_transport_options": {
            "global_keyprefix": f"{settings.redis_prefix}celery:",
        },
        "result_expires": 24 * 3600,
        # Separate queues: a backfill run never delays the upserter. Both are declared,
        # so a worker started without -Q (`celery -A celery_config worker`) consumes
        # both too, not just the default queue.
        "task_queues": (Queue(UPSERT_QUEUE), Queue(BACKFILL_QUEUE)),  # type: ignore[no-untyped-call]
        "task_create_missing_queues": True,
        "task_routes": {
            UPSERT_TASK: {"queue": UPSERT_QUEUE},
            BACKFILL_TASK: {"queue": BACKFILL_QUEUE},
        },
        "task_default_queue": BACKFILL_QUEUE,
        "task_acks_late": True,
        "task_reject_on_worker_lost": False,
        "worker_prefetch_multiplier": 1,
        "worker_concurrency": settings.worker_concurrency,
        "task_soft_time_limit": wall_s(settings, settings.task_soft_time_limit_s),
        "task_time_limit": wall_s(settings, settings.task_time_limit_s),
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "timezone": "UTC",
        "enable_utc": True,
        "broker_connection_retry_on_startup": True,
        "worker_hijack_root_logger": False,
        # Task events for Flower (and `celery events`): received with the arguments,
        # started, succeeded with the result, failed with the error. A few small
        # messages per run, and Redis drops them when nobody listens.
        "worker_send_task_events": True,
        "task_send_sent_event": True,
        "beat_schedule": {
            "update-recent-deals": {
                "task": UPSERT_TASK,
                "schedule": upsert_every,
                "options": {"queue": UPSERT_QUEUE, "expires": upsert_every},
            },
            "backfill-deals": {
                "task": BACKFILL_TASK,
                "schedule": backfill_every,
                "options": {"queue": BACKFILL_QUEUE, "expires": backfill_every},
            },
        },
    }


def _tell_the_pool(**_: Any) -> None:
    # Sent in the main process from its SIGTERM and SIGINT handlers, the moment the
    # signal arrives: the running tasks, in the pool's processes, see the flag at their
    # next check (shutdown.py).
    shutdown.request()


# weak=False: the receiver must live as long as the app, whatever holds a reference.
worker_shutting_down.connect(_tell_the_pool, weak=False)


class TellThePoolStep(bootsteps.StartStopStep):  # type: ignore[misc]
    """Sets the shutdown flag when the worker begins to stop, however it was asked to:
    the signal above is not sent for a remote `celery control shutdown` or for the
    SIGHUP restart. A worker's blueprint calls every step's `close` before it stops the
    pool, which waits for the running tasks."""

    def close(self, parent: Any) -> None:
        shutdown.request()


def make_app(settings: Settings | None = None) -> Celery:
    settings = settings or Settings.from_env()
    install_transport()
    app = Celery("keepa_deals", include=["keepa_deals.service.tasks"])
    app.conf.update(celery_settings(settings))
    app.steps["worker"].add(TellThePoolStep)
    return app


app = make_app()
