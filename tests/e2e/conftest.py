"""End to end: a real redis-server, real Celery worker and beat subprocesses, and the
Keepa simulator over HTTP, all on one scaled clock (KEEPA_TIME_SCALE)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from keepa_deals.infra.redis_server import RedisServerProcess
from keepa_deals.keepa_sim import KeepaSimulator

SCALE = 60.0  # one wall second is one service minute
# 3 wall s, renewed every second: a pool process stalled on a loaded machine must not
# lose its lock (at the default 60 s, a stall of 0.67 wall s would).
LOCK_TTL_S = 180
KEY = "e2etestkey0123456789abcdef"


class SharedScaledTime:
    """The service's scaled time (timebase.service_clock) seen by the simulator.

    Not a ScaledClock instance on purpose: the simulator then shows this time in its
    answers (timestamps, refillIn), which is what a service on the same clock expects.
    """

    def __init__(self, scale: float, origin_s: float) -> None:
        self.scale, self.origin_s = scale, origin_s

    def now(self) -> float:
        return self.origin_s + (time.time() - self.origin_s) * self.scale


@dataclass
class Stack:
    tmp: Path
    env: dict[str, str]
    sim: KeepaSimulator
    redis: RedisServerProcess
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def db_path(self) -> Path:
        return Path(self.env["DEALS_DB_PATH"])

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log = (self.tmp / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            [sys.executable, "-m", "keepa_deals", *args],
            env=self.env,
            cwd=self.tmp,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: kill -9 takes the pool too
        )
        log.close()
        self.procs[name] = proc
        return proc

    def kill(self, name: str) -> None:
        proc = self.procs.pop(name)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)

    def stop_all(self) -> None:
        for name in list(self.procs):
            stop_group(self.procs.pop(name), timeout_s=15)

    def query(self, sql: str, *params: object) -> list[tuple[object, ...]]:
        if not self.db_path.exists():
            return []
        conn = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=30)
        try:
            return list(conn.execute(sql, params).fetchall())
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return []  # not migrated yet
            raise  # "database is locked" and the like must not read as "no runs yet"
        finally:
            conn.close()

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-4000:]}" for p in self.tmp.glob("*.log")
        )


def stop_group(proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    """SIGTERM to a child started in its own session (and its pool), SIGKILL after
    `timeout_s`."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def wait_for(predicate: Callable[[], bool], timeout_s: float, what: str, stack: Stack) -> float:
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout_s:
            pytest.fail(f"{what}: not within {timeout_s}s\n{stack.logs()}")
        time.sleep(0.25)
    return time.monotonic() - start


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    origin = time.time()
    server = RedisServerProcess().start()
    sim = KeepaSimulator(
        seed=11, refill_rate=5, clock=SharedScaledTime(SCALE, origin), catalogue_size=6000
    ).start()
    env = {
        **os.environ,
        "REDIS_URL": server.url,
        "KEEPA_REDIS_PREFIX": "e2e:",
        "DEALS_DB_PATH": str(tmp_path / "deals.db"),
        "KEEPA_API_URL": sim.url,
        "KEEPA_API_KEY": KEY,
        "KEEPA_TIME_SCALE": str(SCALE),
        "KEEPA_TIME_ORIGIN_S": repr(origin),
        "UPSERT_EVERY_S": "600",  # 10 s of wall time
        "BACKFILL_EVERY_S": "60",  # 1 s of wall time
        "LOCK_TTL_S": str(LOCK_TTL_S),
        "PYTHONUNBUFFERED": "1",
    }
    s = Stack(tmp_path, env, sim, server)
    try:
        yield s
    finally:
        s.stop_all()
        sim.stop()
        server.close()
