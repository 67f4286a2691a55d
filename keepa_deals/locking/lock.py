"""A task lock with a short TTL, renewed by a heartbeat while its run lives.

Locks with a 10-day TTL survive restarts, and kill scripts that clean them up
delete every lock, live ones included (failure mode: stuck locks). Here a lock lives `ttl_s` unless
its owner's heartbeat renews it, so a killed worker's lock frees itself within one TTL of
its last renewal (within two TTLs of the kill, whatever the phase). Only the owner may
renew or release it: both are Lua compare-and-act scripts.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
from dataclasses import dataclass

import redis
from redis.commands.core import Script

from keepa_deals.infra.closing import Closing
from keepa_deals.infra.lua import lua_source
from keepa_deals.infra.redis_keys import RedisKeys

log = logging.getLogger(__name__)


def owner_token() -> str:
    """Who holds a lock: readable in `keepa-deals status`, unique per acquisition."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


@dataclass(frozen=True)
class LockHolder:
    task: str
    owner: str
    ttl_left_s: float


class TaskLock(Closing):
    """`with TaskLock(...) as lock:` only if `lock.acquire()` was True; see `held()`.

    The heartbeat thread renews every `ttl_s / 3`. If a renewal finds the lock gone or
    taken (Redis restarted, or this process stalled longer than the TTL), `lost` is set
    and the run must stop at its next checkpoint: someone else may be running now.
    """

    def __init__(self, client: redis.Redis, keys: RedisKeys, task: str, ttl_s: float) -> None:
        if ttl_s <= 0:
            raise ValueError(f"lock TTL must be positive, got {ttl_s}")
        self.redis = client
        self.task = task
        self.key = keys.task_lock(task)
        self.ttl_ms = max(1, round(ttl_s * 1000))
        self.owner = owner_token()
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._renew: Script = client.register_script(lua_source("keepa_deals.locking", "renew"))
        self._release: Script = client.register_script(lua_source("keepa_deals.locking", "release"))

    def acquire(self) -> bool:
        """Take the lock if free and start the heartbeat. Never waits."""
        if not self.redis.set(self.key, self.owner, nx=True, px=self.ttl_ms):
            return False
        self.lost.clear()
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._heartbeat, name=f"lock-heartbeat-{self.task}", daemon=True
        )
        self._thread.start()
        return True

    def renew(self) -> bool:
        try:
            ok = bool(self._renew(keys=[self.key], args=[self.owner, self.ttl_ms]))
        except redis.RedisError as exc:
            # Unreachable Redis is not proof of loss; the TTL decides. Try again soon.
            log.warning("lock %s: renewal failed (%s)", self.task, exc)
            return True
        if not ok:
            self.lost.set()
            log.error("lock %s: lost (expired or taken by another owner); stopping", self.task)
        return ok

    def _heartbeat(self) -> None:
        interval_s = self.ttl_ms / 3000
        while not self._stop.wait(interval_s):
            if not self.renew():
                return

    def release(self) -> bool:
        """Stop the heartbeat and delete the lock if it is still ours."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self._thread = None
        try:
            return bool(self._release(keys=[self.key], args=[self.owner]))
        except redis.RedisError as exc:
            log.warning("lock %s: release failed (%s); it expires by itself", self.task, exc)
            return False

    def holder(self) -> LockHolder | None:
        return read_holder(self.redis, self.key, self.task)

    # `with` ends by releasing the lock.
    close = release


def read_holder(client: redis.Redis, key: str, task: str) -> LockHolder | None:
    pipe = client.pipeline()
    pipe.get(key)
    pipe.pttl(key)
    owner, pttl = pipe.execute()
    if owner is None:
        return None
    text = owner.decode() if isinstance(owner, bytes) else str(owner)
    return LockHolder(task, text, max(0, int(pttl)) / 1000)
