"""The worker's warm shutdown, as its pool processes see it.

On SIGTERM (systemd's stop, `keepa-deals run`'s Ctrl-C), a remote shutdown or the
SIGHUP restart, Celery's main process stops taking tasks and waits for the running
ones, but it tells its prefork children nothing: a run would go on until it is done,
its tokens run out, or HARVEST_MAX_RUN_S (600 s by default), and a supervisor kills it
first. So the main process sets this flag (on Celery's `worker_shutting_down` signal
and in a worker bootstep's `close`, see celery_app.py), and a run checks it between
batches and while it waits for tokens, and stops there (stop reason `shutdown`), its
grants settled and its lock released.

The flag is one byte of shared anonymous memory, mapped when this module is first
imported. The worker's main process imports it (through celery_app) before it forks its
pool, so every child maps the same byte. A pool started some other way than by fork
sees its own byte, never set: its runs end as they did before this flag existed (the
solo and threads pools run tasks in the main process, so they see it too).
Setting it is one store, safe inside a signal handler.
"""

from __future__ import annotations

import mmap
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from keepa_deals.config import Settings

_FLAG = mmap.mmap(-1, 1)  # MAP_SHARED | MAP_ANONYMOUS: shared with forked children


def request() -> None:
    """The worker is shutting down: runs stop at their next check."""
    _FLAG[0] = 1


def requested() -> bool:
    return _FLAG[0] == 1


def clear() -> None:
    """For tests, which set the flag in their own process."""
    _FLAG[0] = 0


# Celery's own part of a warm shutdown once the runs have ended: acks, the result
# backend, closing the broker connection.
CELERY_STOP_S = 15.0


def longest_stop_s(settings: Settings) -> float:
    """The longest a run can take, once the flag is set, to reach its next check: a
    token wait notices within STOP_CHECK_S; a Keepa request in progress takes at most
    every attempt at its longest (a 504 arrives after the read timeout too) and the
    backoffs between. Plus Celery's own stop. What a supervisor must wait before it
    kills the worker (systemd's TimeoutStopSec, `keepa-deals run` after Ctrl-C)."""
    from keepa_deals.keepa.client import longest_backoff_s  # noqa: PLC0415 - kept light
    from keepa_deals.tokens.manager import STOP_CHECK_S  # noqa: PLC0415

    attempts = 1 + settings.keepa_max_retries
    one_attempt_s = settings.keepa_connect_timeout_s + settings.keepa_read_timeout_s
    request_s = attempts * one_attempt_s + longest_backoff_s(settings.keepa_max_retries)
    return STOP_CHECK_S + request_s + CELERY_STOP_S
