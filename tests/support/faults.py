"""Fault injection against the real stack: a redis-server, Celery worker and beat
subprocesses (`python -m keepa_deals worker|beat`) and the Keepa simulator over HTTP,
all on one scaled clock (the harness of tests/e2e, extended here).

Starting Celery costs seconds, so one `FaultStack` serves every test of a module: each
test injects its fault, waits until the service has felt it, clears it and calls
`check_invariants`, which checks everything the service promises after any fault:

- no crash loop, and the service resumes by itself (new runs end well, new deals are
  ingested, the processes still run);
- Keepa's balance never fell below TOKEN_DEFICIT_FLOOR (the simulator's own bucket
  records its lowest point), nor did the TokenManager's lowest estimate;
- the watermark never moved backwards (sampled throughout);
- every deal the simulator published in the window the upserter covered is evaluated
  (deals, rejections, quarantine) or pending, and no row is duplicated;
- every wait longer than five minutes of service time is explained (status shows the
  reason, runs their stop reason, and no gap between runs is left unaccounted for);
- the API key appears in no log, no Redis value, no `status --json` or `doctor` output.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from keepa_deals.config import DEFAULT_DEAL_QUERY, Settings
from keepa_deals.infra.redis_keys import RedisKeys
from keepa_deals.infra.redis_server import RedisServerProcess
from keepa_deals.keepa.deal_query import load_deal_query
from keepa_deals.keepa.keepa_time import keepa_minutes_to_unix_s, unix_s_to_keepa_minutes
from keepa_deals.keepa_sim import KeepaSimulator
from keepa_deals.keepa_sim.accounts import fingerprint
from keepa_deals.keepa_sim.bucket import RefillMode, TokenBucket
from keepa_deals.keepa_sim.selection import parse_selection
from keepa_deals.service.status import token_status
from keepa_deals.store import PendingDeal, Source
from tests.e2e.conftest import KEY, SharedScaledTime, Stack, wait_for

# One wall second is two service minutes: twice the e2e tests' pace, so refills, beat
# and the deal flow (about 26 deals a service hour) keep the faults short.
SCALE = 120.0
FLOOR = -180  # TOKEN_DEFICIT_FLOOR's default, which the stack runs with
LONG_WAIT_S = 300  # service seconds: a wait this long must be explained
RATE = 5
QUERY: dict[str, Any] = load_deal_query(DEFAULT_DEAL_QUERY)
DOMAIN = int(QUERY["domainId"])
# Stop reasons of a run that went well (the others name a fault).
HEALTHY = frozenset({"done", "tokens", "max_duration", "shutdown"})
# Reasons the TokenManager gives for a refusal (keepa_deals/tokens/lua/lib.lua).
WAIT_REASONS = frozenset(
    {"hard_stop", "deficit_floor", "threshold", "recharge", "yield_to_share", "yield_to_priority"}
)
SERVICE_ENV = {
    "KEEPA_REDIS_PREFIX": "faults:",
    "UPSERT_EVERY_S": "120",  # 1 s of wall time
    "BACKFILL_EVERY_S": "120",
    "LOCK_TTL_S": "240",  # 2 s of wall time, renewed every 0.67 s
    # Wall seconds: a stalled answer (stall_s=2) times out quickly.
    "KEEPA_READ_TIMEOUT_S": "2",
    "KEEPA_CONNECT_TIMEOUT_S": "1",
    "TOKEN_DEFICIT_FLOOR": str(FLOOR),
    # Lenient evaluation: most deals pass the free stage, so peeks and commits keep
    # the budget under pressure, near its thresholds, where a fault can do harm.
    "REFERRAL_FEE_PERCENT": "0",
    "CLOSING_FEE_CENTS": "0",
    "FBA_FEE_CENTS": "0",
    "BUY_SHIPPING_CENTS": "0",
    "PYTHONUNBUFFERED": "1",
}
CRASH_MARKERS = ("Traceback", "raised unexpected", "WorkerLostError")


class ShiftableTime(SharedScaledTime):
    """The service's scaled clock, which a test may jump forward.

    Every process computes `origin + (wall - origin) x scale` from KEEPA_TIME_ORIGIN_S.
    Moving the origin back by J / (scale - 1) wall seconds moves that time forward by
    exactly J service seconds: `jump` does it here, and the service's processes follow
    when they are restarted with the new origin.
    """

    def now(self) -> float:
        origin = self.origin_s  # one read: `jump` may run on another thread
        return origin + (time.time() - origin) * self.scale

    def jump(self, service_s: float) -> float:
        if service_s <= 0:
            raise ValueError("the clock only jumps forward")
        self.origin_s = self.origin_s - service_s / (self.scale - 1)
        return self.origin_s


class LowWaterBucket(TokenBucket):
    """The simulator's bucket for the service's key, remembering its lowest balance."""

    def __init__(self, rate: int, now_s: float, mode: RefillMode = "tick") -> None:
        super().__init__(rate, now_s, mode)
        self.lowest = self.balance

    def charge(self, tokens: int) -> None:
        super().charge(tokens)
        self.lowest = min(self.lowest, self.balance)


@dataclass(frozen=True)
class Mark:
    """Where things stood when a test began: later checks look only past it."""

    run_id: int
    log_offsets: dict[str, int]
    pids: dict[str, int]
    # Runs begun before the mark but still going: a fault set after the mark can reach
    # their next Keepa call, and the stop it causes is theirs.
    open_run_ids: frozenset[int] = frozenset()


@dataclass
class Monitor:
    """Samples the watermark and the TokenManager's status a few times a second."""

    stack: FaultStack
    watermarks: list[int] = field(default_factory=list)
    min_balances: list[int] = field(default_factory=list)
    unexplained: list[str] = field(default_factory=list)
    samples: int = 0
    last_status: dict[str, Any] | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="fault-monitor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        client = redis.Redis.from_url(
            self.stack.env["REDIS_URL"], socket_timeout=2, socket_connect_timeout=1
        )
        try:
            while not self._stop.wait(0.3):
                self.sample(client)
        finally:
            client.close()

    def sample(self, client: redis.Redis) -> None:
        watermark = self.stack.watermark()
        if watermark is not None:
            self.watermarks.append(watermark)
        try:
            status = token_status(self.stack.settings, client)
        except (redis.RedisError, OSError):
            return  # Redis restarting: nothing to read
        self.samples += 1
        if status.get("state") != "ok":
            return
        self.last_status = status
        if status.get("min_balance") is not None:
            self.min_balances.append(int(status["min_balance"]))
        for problem in unexplained_waits(status):
            if problem not in self.unexplained:
                self.unexplained.append(problem)


def unexplained_waits(status: dict[str, Any]) -> list[str]:
    """Classes of a token status that wait, or will, longer than LONG_WAIT_S without
    a reason the diagnostics name."""
    problems = []
    now = float(status["now"])
    for name, c in status["classes"].items():
        if not c["waiting"]:
            continue
        since = c["waiting_since"]
        waited = 0.0 if since is None else now - float(since)
        ahead = c["wait_s"]  # None: until another class acts
        if waited <= LONG_WAIT_S and ahead is not None and ahead <= LONG_WAIT_S:
            continue
        if c["reason"] == "ok" and ahead == 0:
            continue  # admissible now: the long wait is over (samples checked it so far)
        if c["reason"] not in WAIT_REASONS:
            problems.append(f"{name} waits {waited:.0f}s (+{ahead}s) for {c['reason']!r}")
        bound = c["starvation_bound_s"]
        if bound is None:
            problems.append(f"{name} waits {waited:.0f}s with no starvation bound")
        elif waited > bound + LONG_WAIT_S:
            problems.append(f"{name} waited {waited:.0f}s, beyond its bound of {bound:.0f}s")
    return problems


@dataclass
class FaultStack(Stack):
    clock: ShiftableTime = field(default_factory=lambda: ShiftableTime(SCALE, time.time()))
    bucket: LowWaterBucket | None = None
    settings: Settings = field(default_factory=Settings)
    monitor: Monitor | None = None
    # Service-time windows in which the test itself stopped the service.
    outages: list[tuple[float, float]] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)  # every CLI output, for the key check

    # --- state ---------------------------------------------------------------------

    def now_s(self) -> float:
        return self.clock.now()

    def scalar(self, sql: str, *params: object) -> int | None:
        rows = self.query(sql, *params)
        if not rows or rows[0][0] is None:
            return None
        value = rows[0][0]
        assert isinstance(value, int), value
        return value

    def watermark(self) -> int | None:
        return self.scalar("SELECT int_value FROM system_state WHERE key = 'watermark_s'")

    def last_run_id(self) -> int:
        return self.scalar("SELECT MAX(id) FROM runs") or 0

    def runs_since(self, mark: Mark) -> list[tuple[str, str | None]]:
        """(task, stop_reason) of the runs begun after `mark` that have ended."""
        rows = self.query(
            "SELECT task, stop_reason FROM runs WHERE id > ? AND ended_s IS NOT NULL ORDER BY id",
            mark.run_id,
        )
        return [(str(task), None if reason is None else str(reason)) for task, reason in rows]

    def runs_ended_since(self, mark: Mark) -> list[tuple[str, str | None]]:
        """(task, stop_reason) of the runs that ended after `mark`: those begun after it,
        and those still going when it was taken. A fault set after the mark is felt by
        whichever run makes the next call, which may be one of the latter."""
        open_ids = sorted(mark.open_run_ids)
        placeholders = ",".join("?" * len(open_ids)) or "NULL"
        rows = self.query(
            "SELECT task, stop_reason FROM runs WHERE ended_s IS NOT NULL"
            f" AND (id > ? OR id IN ({placeholders})) ORDER BY id",
            mark.run_id,
            *open_ids,
        )
        return [(str(task), None if reason is None else str(reason)) for task, reason in rows]

    def stop_reasons_since(self, mark: Mark) -> set[str]:
        """Why the runs that ended after `mark` stopped (see `runs_ended_since`)."""
        return {reason for _, reason in self.runs_ended_since(mark) if reason is not None}

    def injected(self, fault: str) -> int:
        return int(self.sim.state()["faults"]["injected"].get(fault, 0))

    def locks_and_grants(self) -> tuple[int, set[str]]:
        """(task locks held, ids of the grants in flight), read from Redis."""
        keys = RedisKeys(self.settings.redis_prefix)
        client = redis.Redis.from_url(self.env["REDIS_URL"], socket_timeout=2)
        try:
            locks = sum(1 for task in ("upsert", "backfill") if client.exists(keys.task_lock(task)))
            members = client.zrange(keys.token_inflight, 0, -1)
            grants = {m.decode() if isinstance(m, bytes) else str(m) for m in members}
            return locks, grants
        finally:
            client.close()

    def mark(self) -> Mark:
        offsets = {p.stem: p.stat().st_size for p in self.tmp.glob("*.log")}
        pids = {name: proc.pid for name, proc in self.procs.items()}
        # The newest id first, then the open runs up to it: a run that begins in between
        # has a larger id, so no run falls between the two.
        run_id = self.last_run_id()
        rows = self.query("SELECT id FROM runs WHERE id <= ? AND ended_s IS NULL", run_id)
        open_ids = frozenset(int(str(row[0])) for row in rows)
        return Mark(run_id, offsets, pids, open_ids)

    def logs_since(self, mark: Mark) -> dict[str, str]:
        out = {}
        for path in self.tmp.glob("*.log"):
            with path.open("rb") as f:
                f.seek(mark.log_offsets.get(path.stem, 0))
                out[path.stem] = f.read().decode(errors="replace")
        return out

    # --- control -------------------------------------------------------------------

    def start_service(self) -> None:
        self.start("worker", "worker")
        self.start("beat", "beat")

    def spawn(self, *args: str) -> subprocess.Popen[str]:
        """A CLI command running in the background; `finish` collects it."""
        return subprocess.Popen(
            [sys.executable, "-m", "keepa_deals", *args],
            env=self.env,
            cwd=self.tmp,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def finish(self, proc: subprocess.Popen[str]) -> tuple[int, str, str]:
        out, err = proc.communicate(timeout=60)
        self.outputs.append(out + err)
        return proc.returncode, out, err

    def cli(
        self, *args: str, env: dict[str, str] | None = None, timeout_s: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """A CLI command to its end; on a timeout its whole process group is killed (a
        worker that should have refused to start must not join the stack)."""
        proc = subprocess.Popen(
            [sys.executable, "-m", "keepa_deals", *args],
            env=env or self.env,
            cwd=self.tmp,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            out, err = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise
        self.outputs.append(out + err)
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)

    @contextmanager
    def outage(self) -> Iterator[None]:
        """The test stops the service inside: a gap between runs there is explained.
        When it restarts processes inside, it should wait there for a run to begin."""
        start = self.now_s()
        try:
            yield
        finally:
            self.outages.append((start, self.now_s()))

    def wait_runs_begin(self, mark: Mark, timeout_s: float = 30) -> None:
        """Until a run of each task has begun since `mark` (the processes are up again).
        Take `mark` once the old processes are gone: a run they began after it would
        end the wait before the new ones are up, and the outage with it."""

        def both_began() -> bool:
            rows = self.query("SELECT DISTINCT task FROM runs WHERE id > ?", mark.run_id)
            return {str(task) for (task,) in rows} >= {"upsert", "backfill"}

        wait_for(both_began, timeout_s, "a run of each task begins", self)

    def set_origin(self, origin_s: float) -> None:
        self.env["KEEPA_TIME_ORIGIN_S"] = repr(origin_s)
        self.settings = Settings.from_mapping(self.env)

    def supervise(self) -> tuple[str, ...]:
        """Start again the worker or beat if it exited, as systemd's Restart=always
        would (deploy/systemd, without its 30 s pause). Returns the names restarted."""
        restarted = []
        for name in ("worker", "beat"):
            proc = self.procs.get(name)
            if proc is not None and proc.poll() is not None:
                with suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)  # any pool child left behind
                del self.procs[name]
                self.start(name, name)
                restarted.append(name)
        return tuple(restarted)

    def kill_group(self, name: str) -> None:
        proc = self.procs.pop(name)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def make_stack(tmp: Path, seed: int = 11, env: dict[str, str] | None = None) -> FaultStack:
    origin = time.time()
    clock = ShiftableTime(SCALE, origin)
    server = RedisServerProcess().start()
    sim = KeepaSimulator(seed=seed, refill_rate=RATE, clock=clock, catalogue_size=6000).start()
    # The service's key gets a bucket that records its lowest balance: Keepa's truth.
    bucket = LowWaterBucket(RATE, sim.now())
    sim.app.accounts.buckets[fingerprint(KEY)] = bucket
    service_env = {
        **os.environ,
        **SERVICE_ENV,
        "REDIS_URL": server.url,
        "DEALS_DB_PATH": str(tmp / "deals.db"),
        "KEEPA_API_URL": sim.url,
        "KEEPA_API_KEY": KEY,
        "KEEPA_TIME_SCALE": str(SCALE),
        "KEEPA_TIME_ORIGIN_S": repr(origin),
        **(env or {}),
    }
    stack = FaultStack(tmp, service_env, sim, server, clock=clock, bucket=bucket)
    stack.set_origin(origin)
    stack.monitor = Monitor(stack)
    return stack


@contextmanager
def running_stack(tmp: Path, env: dict[str, str] | None = None) -> Iterator[FaultStack]:
    """A stack harvesting: worker and beat started, both tasks seen to finish a run."""
    stack = make_stack(tmp, env=env)
    try:
        assert stack.monitor is not None
        stack.monitor.start()
        stack.start_service()
        wait_for(
            lambda: bool(stack.watermark()) and {"upsert", "backfill"} <= finished_tasks(stack),
            60,
            "the stack harvests",
            stack,
        )
        yield stack
    finally:
        if stack.monitor is not None:
            stack.monitor.stop()
        stack.stop_all()
        stack.sim.stop()
        stack.redis.close()


def finished_tasks(stack: FaultStack) -> set[str]:
    return {str(r[0]) for r in stack.query("SELECT task FROM runs WHERE ended_s IS NOT NULL")}


# --- the invariants -------------------------------------------------------------------


def resumed(stack: FaultStack, mark: Mark, watermark: int) -> bool:
    """Both tasks ended a run well after `mark`, and the watermark passed `watermark`."""
    healthy = {task for task, reason in stack.runs_since(mark) if reason in HEALTHY}
    return {"upsert", "backfill"} <= healthy and (stack.watermark() or 0) > watermark


def wait_resumed(stack: FaultStack, mark: Mark, timeout_s: float = 40) -> None:
    """Both tasks end a run well after `mark`, and the watermark moves on: deals the
    simulator publishes after the fault are being ingested."""
    watermark = stack.watermark() or 0
    wait_for(
        lambda: resumed(stack, mark, watermark),
        timeout_s,
        "the service resumes by itself",
        stack,
    )


def reconnected_or_died(stack: FaultStack, mark: Mark, timeout_s: float = 30) -> bool:
    """After Redis went away: wait until the worker has reconnected to the broker (its
    log says so) or has exited; True if it exited."""

    def died() -> bool:
        return any(p.poll() is not None for p in stack.procs.values())

    def reconnected() -> bool:
        return "Connected to redis" in stack.logs_since(mark).get("worker", "")

    wait_for(
        lambda: died() or reconnected(),
        timeout_s,
        "the worker reconnects to Redis, or exits",
        stack,
    )
    return died()


def covered_deals(stack: FaultStack) -> tuple[int, list[str]]:
    """How many published deals the upserter must have accounted for, and those it did
    not: deals of the query created in (first upsert's lookback, watermark] that are
    still on Keepa's deal pages now (so every upserter run since their creation could
    see them; a deal whose product changed again may have vanished unseen)."""
    first = stack.scalar("SELECT MIN(started_s) FROM runs WHERE task = 'upsert'")
    watermark = stack.watermark()
    if first is None or watermark is None:
        return 0, []
    start_s = first - stack.settings.upsert_first_lookback_s + 120
    published = stack.sim.deals_published(QUERY, start_s, watermark)
    selection = parse_selection(QUERY, None)
    with stack.sim.app.lock:
        now_km = unix_s_to_keepa_minutes(stack.sim.now())
        records = list(stack.sim.app.engine.results(selection, now_km).records)
    visible: dict[tuple[str, int], int | None] = {}
    for record in records:
        deal = PendingDeal.from_deal(
            json.loads(record.json()), domain=DOMAIN, source=Source.UPSERT, now_s=0
        )
        visible[(record.asin, record.creation_km)] = deal.price_cents
    checked, missing = 0, []
    for asin, minute in published:
        if (asin, minute) not in visible:
            continue
        created_s = int(keepa_minutes_to_unix_s(minute))
        if created_s > watermark:
            continue
        checked += 1
        if not _accounted(stack, asin, created_s, visible[(asin, minute)]):
            missing.append(f"{asin}@{created_s}")
    return checked, missing


def _accounted(stack: FaultStack, asin: str, created_s: int, price_cents: int | None) -> bool:
    checks: list[tuple[str, tuple[object, ...]]] = [
        (
            "SELECT 1 FROM pending WHERE asin = ? AND domain = ? AND deal_created_s >= ?",
            (asin, DOMAIN, created_s),
        ),
        (
            "SELECT 1 FROM quarantine WHERE asin = ? AND domain = ? AND quarantined_s IS NOT NULL",
            (asin, DOMAIN),
        ),
        (
            "SELECT 1 FROM deals WHERE asin = ? AND domain = ? AND status <> 'candidate'"
            " AND last_evaluated_s >= ?",
            (asin, DOMAIN, created_s),
        ),
        (
            "SELECT 1 FROM rejections WHERE asin = ? AND domain = ?"
            " AND (rejected_s >= ? OR price_cents = ?)",
            (asin, DOMAIN, created_s, price_cents),
        ),
    ]
    return any(stack.query(sql, *params) for sql, params in checks)


def duplicated_rows(stack: FaultStack) -> list[str]:
    out = []
    for table, key in (
        ("deals", "asin, domain"),
        ("pending", "asin, domain"),
        ("quarantine", "asin, domain"),
        ("rejections", "asin, domain, price_cents"),
    ):
        rows = stack.query(
            f"SELECT {key}, COUNT(*) FROM {table} GROUP BY {key} HAVING COUNT(*) > 1"
        )
        out += [f"{table}: {row}" for row in rows]
    return out


def unexplained_gaps(stack: FaultStack) -> list[str]:
    """Runs that ended without a reason, and gaps between runs of a task (beyond its
    schedule) that no stop of ours explains."""
    problems = [
        f"run {row[0]} ({row[1]}) ended with no stop reason"
        for row in stack.query(
            "SELECT id, task FROM runs WHERE ended_s IS NOT NULL"
            " AND (stop_reason IS NULL OR stop_reason = '')"
        )
    ]
    every = {"upsert": stack.settings.upsert_every_s, "backfill": stack.settings.backfill_every_s}
    for task, interval in every.items():
        rows = stack.query(
            "SELECT started_s, ended_s FROM runs WHERE task = ? ORDER BY started_s", task
        )
        for (_, ended), (started, _) in itertools.pairwise(rows):
            if ended is None:
                continue  # abandoned later, or still running
            assert isinstance(ended, int) and isinstance(started, int)
            if started - ended <= LONG_WAIT_S + interval:
                continue
            if any(_explains(window, ended, started, interval) for window in stack.outages):
                continue
            problems.append(f"{task}: no run from {ended} to {started} ({started - ended}s)")
    return problems


def _explains(outage: tuple[float, float], ended: int, started: int, interval: int) -> bool:
    """An outage of ours explains a gap between runs that overlaps it, give or take a
    normal wait at either end."""
    a, b = outage
    if ended > b or started < a:
        return False
    return max(0.0, a - ended) + max(0.0, started - b) <= LONG_WAIT_S + interval


def key_leaks(stack: FaultStack) -> list[str]:
    """Every place the key must never be: logs, CLI outputs, runs, Redis."""
    leaks = [p.name for p in stack.tmp.glob("*.log") if KEY in p.read_text(errors="replace")]
    leaks += [f"cli output {i}" for i, out in enumerate(stack.outputs) if KEY in out]
    errors = stack.query("SELECT error FROM runs WHERE error IS NOT NULL")
    leaks += ["runs.error" for (error,) in errors if KEY in str(error)]
    client = redis.Redis.from_url(stack.env["REDIS_URL"], socket_timeout=5)
    try:
        for name in client.scan_iter(count=500):
            kind = client.type(name)
            values: list[Any] = [name]
            if kind == b"string":
                values.append(client.get(name))
            elif kind == b"hash":
                values += [v for item in client.hgetall(name).items() for v in item]
            elif kind == b"list":
                values += client.lrange(name, 0, -1)
            elif kind == b"set":
                values += client.smembers(name)
            elif kind == b"zset":
                values += client.zrange(name, 0, -1)
            if any(KEY.encode() in v for v in values if isinstance(v, bytes)):
                leaks.append(f"redis {name!r}")
    finally:
        client.close()
    return leaks


def unprefixed_keys(stack: FaultStack) -> list[str]:
    """Keys in the stack's own Redis outside KEEPA_REDIS_PREFIX: Celery's included, every
    key the service writes carries the prefix, so deployments can share one Redis."""
    prefix = stack.env["KEEPA_REDIS_PREFIX"].encode()
    client = redis.Redis.from_url(stack.env["REDIS_URL"], socket_timeout=5)
    try:
        return [repr(k) for k in client.scan_iter(count=500) if not k.startswith(prefix)]
    finally:
        client.close()


def crashes_since(stack: FaultStack, mark: Mark) -> list[str]:
    found = []
    for name, text in stack.logs_since(mark).items():
        for marker in CRASH_MARKERS:
            if marker in text:
                found.append(f"{name}: {text.count(marker)} x {marker!r}")
    return found


def check_invariants(
    stack: FaultStack,
    mark: Mark,
    *,
    restarted: tuple[str, ...] = (),
    allow_crashes: bool = False,
    doctor_passes: bool = False,
    resume_timeout_s: float = 40,
) -> dict[str, Any]:
    """Everything the service promises after a fault; fails the test with every broken
    promise at once. `restarted`: processes the test itself restarted. `doctor_passes`:
    doctor must also judge the service healthy once it has resumed."""
    assert stack.monitor is not None and stack.bucket is not None
    cleared = stack.mark()  # runs that began from here on must end well
    # The CLIs run while the service recovers: each spends seconds importing Celery
    # (and doctor waits 2 s for worker pings).
    status = stack.spawn("status", "--json")
    doc = stack.spawn("doctor")
    clearing_s = time.monotonic()
    try:
        wait_resumed(stack, cleared, resume_timeout_s)
        resumed_after_s = time.monotonic() - clearing_s
    finally:
        status_rc, out, err = stack.finish(status)
        doc_rc, doc_out, _ = stack.finish(doc)
    if doctor_passes and doc_rc != 0:
        # It may have judged mid-recovery: ask again now that runs have resumed.
        doc_rc, doc_out, _ = stack.finish(stack.spawn("doctor"))
    problems: list[str] = []
    # No crash loop: the processes live (the same ones, unless the test restarted them).
    for name in ("worker", "beat"):
        proc = stack.procs.get(name)
        if proc is None or proc.poll() is not None:
            problems.append(f"{name} is not running")
        elif name not in restarted and mark.pids.get(name) != proc.pid:
            problems.append(f"{name} was restarted")
    if not allow_crashes:
        problems += crashes_since(stack, mark)
        errors = [r for _, r in stack.runs_since(mark) if r == "error"]
        if errors:
            problems.append(f"{len(errors)} run(s) ended in error")
    # The balance never fell below the floor: Keepa's (the simulator's) and ours.
    if stack.bucket.lowest < FLOOR:
        problems.append(f"Keepa's balance fell to {stack.bucket.lowest} < floor {FLOOR}")
    low = min(stack.monitor.min_balances, default=0)
    if low < FLOOR:
        problems.append(f"the TokenManager's lowest estimate was {low} < floor {FLOOR}")
    report = json.loads(out) if status_rc == 0 else {}
    if status_rc != 0:
        problems.append(f"status --json exited {status_rc}: {err.strip()}")
    tokens = report.get("tokens", {})
    if tokens.get("state") == "ok":
        if tokens.get("min_balance") is not None and tokens["min_balance"] < FLOOR:
            problems.append(f"status min_balance {tokens['min_balance']} < floor")
        problems += unexplained_waits(tokens)
    # The watermark never moved backwards.
    marks = stack.monitor.watermarks
    if len(marks) < 2 or not stack.monitor.min_balances:
        problems.append("the monitor took no samples: nothing was watched")
    backwards = [(a, b) for a, b in itertools.pairwise(marks) if b < a]
    if backwards:
        problems.append(f"the watermark moved backwards: {backwards[:3]}")
    # Every published deal the upserter covered is evaluated or pending, none twice.
    checked, missing = covered_deals(stack)
    if not checked:
        problems.append("no published deal was covered: the deal check proved nothing")
    if missing:
        problems.append(f"{len(missing)} of {checked} published deals lost: {missing[:5]}")
    problems += duplicated_rows(stack)
    # Long waits are explained.
    problems += stack.monitor.unexplained
    problems += unexplained_gaps(stack)
    # Doctor judges the service healthy again.
    if doctor_passes and doc_rc != 0:
        problems.append(f"doctor failed after recovery:\n{doc_out}")
    problems += [f"the key leaked into {where}" for where in key_leaks(stack)]
    problems += [f"a Redis key outside the prefix: {k}" for k in unprefixed_keys(stack)[:5]]
    assert not problems, "\n".join(problems) + "\n" + stack.logs()
    figures = {
        "published_deals_checked": checked,
        "keepa_lowest_balance": stack.bucket.lowest,
        "estimate_lowest_balance": low,
        "watermark_samples": len(marks),
        "stop_reasons_since_fault": dict(Counter(r for _, r in stack.runs_since(mark))),
        "pending": stack.scalar("SELECT COUNT(*) FROM pending"),
        "quarantined": stack.scalar(
            "SELECT COUNT(*) FROM quarantine WHERE quarantined_s IS NOT NULL"
        ),
    }
    figures["resumed_after_wall_s"] = round(resumed_after_s, 1)
    figures["runs_since_fault"] = len(stack.runs_since(mark))
    print(f"invariants hold: {figures}")  # shown with -s / -rP: figures for the report
    record = os.environ.get("KEEPA_RELIABILITY_JSONL")  # docs/reliability.md's figures
    if record:
        test = os.environ.get("PYTEST_CURRENT_TEST", "?").split(" ")[0]
        with open(record, "a", encoding="utf-8") as sink:
            sink.write(json.dumps({"test": test, **figures}) + "\n")
    return figures


def only_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    return lines[0]
