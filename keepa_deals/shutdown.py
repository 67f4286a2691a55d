"""The worker's warm shutdown, as its pool processes see it.

On SIGTERM (systemd's stop, `keepa-deals run`'s Ctrl-C) Celery's main process stops
taking tasks and waits for the running ones, but it tells its prefork children nothing:
a run would go on until it is done, its tokens run out, or HARVEST_MAX_RUN_S (600 s by
default), and systemd kills it after TimeoutStopSec. So the main process sets this flag
(Celery's `worker_shutting_down` signal, see celery_app.py), and a run checks it between
batches and stops there, its grants settled and its lock released.

The flag is one byte of shared anonymous memory, mapped when this module is first
imported. The worker's main process imports it (through celery_app) before it forks its
pool, so every child maps the same byte. A pool started some other way than by fork
sees its own byte, never set: its runs end as they did before this flag existed.
Setting it is one store, safe inside a signal handler.
"""

from __future__ import annotations

import mmap

_FLAG = mmap.mmap(-1, 1)  # MAP_SHARED | MAP_ANONYMOUS: shared with forked children


def request() -> None:
    """The worker is shutting down: runs stop at their next check."""
    _FLAG[0] = 1


def requested() -> bool:
    return _FLAG[0] == 1


def clear() -> None:
    """For tests, which set the flag in their own process."""
    _FLAG[0] = 0
