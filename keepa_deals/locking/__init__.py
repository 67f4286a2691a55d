"""Task locks: one run of each task at a time, across all hosts."""

from keepa_deals.locking.lock import LockHolder, TaskLock

__all__ = ["LockHolder", "TaskLock"]
