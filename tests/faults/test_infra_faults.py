"""The service's own ground shaking: Redis restarted or flushed mid-run, the worker
killed while it holds a lock with grants in flight, and the clock jumping forward. One
stack serves the module (in this order); every test ends with `check_invariants`."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator

import pytest
import redis

from keepa_deals.config import Settings
from keepa_deals.service.celery_app import make_app
from tests.e2e.conftest import wait_for
from tests.support.faults import (
    SCALE,
    FaultStack,
    check_invariants,
    reconnected_or_died,
    running_stack,
)

pytestmark = pytest.mark.slow

SLOW_KEEPA_MS = 1500  # long enough to find a run mid-call


@pytest.fixture(scope="module")
def istack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultStack]:
    with running_stack(tmp_path_factory.mktemp("infra-faults")) as stack:
        yield stack


def catch_mid_run(stack: FaultStack) -> None:
    """Slow Keepa down until some task holds its lock with a grant in flight."""
    stack.sim.set_faults({"latency_ms": SLOW_KEEPA_MS})

    def mid_call() -> bool:
        locks, grants = stack.locks_and_grants()
        return locks > 0 and bool(grants)

    # The budget may be drained to the floor: the next paid call can be ~20 wall s off.
    wait_for(mid_call, 60, "a run holding its lock with a grant in flight", stack)


def restart_redis_mid_run(stack: FaultStack) -> bool:
    """Restart Redis (same port, every key gone) while a run holds its lock with a grant
    in flight, keeping it down until the worker has reacted: exited, or is retrying its
    connection (a restart that takes a second, as a real one does; an instant one may
    come back before the worker looks). True if the worker exited; it is then started
    again, as systemd would: the crash is the next test's subject, and the window
    until it runs again counts as an outage."""
    catch_mid_run(stack)
    with stack.outage():
        mark = stack.mark()
        stack.redis.stop()
        wait_for(
            lambda: (
                stack.procs["worker"].poll() is not None
                or "Cannot connect to" in stack.logs_since(mark).get("worker", "")
            ),
            20,
            "the worker reacts to Redis going away",
            stack,
        )
        stack.redis.start()
        stack.sim.clear_faults()
        died = reconnected_or_died(stack, mark)
        restarting = stack.mark()
        stack.supervise()
        # Until both tasks run again: the worker's main process logs the runs cut off
        # by the restart (their tracebacks) only once it is back, a second or so after
        # it reconnects; returning sooner let them land in the next test's window.
        stack.wait_runs_begin(restarting)
    return died


def test_redis_restarted_mid_run(istack: FaultStack) -> None:
    """Every key gone and every connection cut while a run holds its lock with a grant
    in flight: the run stops, the token state is rebuilt from Keepa's next answer (or
    /token), and harvesting goes on."""
    mark = istack.mark()
    died = restart_redis_mid_run(istack)
    assert not died, "the worker exited on a Redis restart: systemd would have had to revive it"
    # Tracebacks are expected here whatever happens: Celery logs the broker connection
    # it lost with them, and a run cut off from Redis may end in `error`, saying why.
    check_invariants(istack, mark, allow_crashes=True)


def test_redis_restart_keeps_the_worker_alive(istack: FaultStack) -> None:
    """No crash loop, not even one crash: the worker reconnects by itself, three Redis
    restarts in a row. (kombu's own Redis transport exits the worker here on most
    restarts: broker_transport.py says why and what ours does instead.)"""
    for attempt in range(3):
        assert not restart_redis_mid_run(istack), f"restart {attempt + 1}: the worker exited"


def test_redis_flushall_mid_run(istack: FaultStack) -> None:
    """Every key gone, connections kept (an operator's FLUSHALL), mid-call."""
    mark = istack.mark()
    catch_mid_run(istack)
    client = redis.Redis.from_url(istack.env["REDIS_URL"])
    try:
        client.flushall()
    finally:
        client.close()
    istack.sim.clear_faults()
    check_invariants(istack, mark)


def freeze_mid_call(stack: FaultStack) -> set[str]:
    """Stop (SIGSTOP) the worker's process group while it holds a lock with grants in
    flight, so nothing it holds can change before the kill; returns those grants."""
    group = stack.procs["worker"].pid
    for _ in range(5):
        catch_mid_run(stack)
        os.killpg(group, signal.SIGSTOP)
        locks, grants = stack.locks_and_grants()
        if locks and grants:
            return grants
        os.killpg(group, signal.SIGCONT)  # the call ended in between: catch another
    pytest.fail("never caught the worker holding a lock with grants in flight")


def sigterm(stack: FaultStack) -> None:
    stack.procs["worker"].send_signal(signal.SIGTERM)  # the main process only, not its pool


def remote_shutdown(stack: FaultStack) -> None:
    """`celery control shutdown`: no signal reaches the worker, a broadcast does."""
    app = make_app(Settings.from_mapping(stack.env))
    try:
        app.control.shutdown()
    finally:
        app.close()


def stop_mid_run(stack: FaultStack, stop: Callable[[FaultStack], None]) -> list[str | None]:
    """Stop the worker with `stop` while a run is mid-call; once it has exited, start
    it again. Returns why the runs open at the stop or begun since ended."""
    catch_mid_run(stack)
    with stack.outage():
        stopping = stack.mark()
        worker = stack.procs["worker"]
        stop(stack)
        wait_for(lambda: worker.poll() is not None, 30, "the worker exits", stack)
        stack.sim.clear_faults()
        assert worker.returncode == 0, stack.logs()
        # Every run ended before the worker did, and freed its lock itself (not left
        # to expire after LOCK_TTL_S).
        assert not stack.query("SELECT id FROM runs WHERE ended_s IS NULL"), stack.logs()
        assert stack.locks_and_grants()[0] == 0, stack.logs()
        reasons = [r for _, r in stack.runs_ended_since(stopping)]
        restarting = stack.mark()
        stack.supervise()
        stack.wait_runs_begin(restarting)
    return reasons


@pytest.mark.parametrize("stop", [sigterm, remote_shutdown], ids=["sigterm", "remote"])
def test_worker_stopped_mid_run_ends_its_run_at_the_next_check(
    istack: FaultStack, stop: Callable[[FaultStack], None]
) -> None:
    """The worker asked to stop while a run holds its lock with a grant in flight:
    SIGTERM to its main process alone (systemd's stop with KillMode=mixed, Ctrl-C in
    `keepa-deals run`), or `celery control shutdown`. The run stops at its next check
    for `shutdown`, settles and frees its lock itself, and the worker exits cleanly.
    Before, the pool never heard of the shutdown and the run went on to its end
    (`done`, `tokens`, `max_duration`).

    A run on its last call ends on its own first, so this tries up to three times."""
    mark = istack.mark()
    seen: list[str | None] = []
    for _ in range(3):
        seen += stop_mid_run(istack, stop)
        if "shutdown" in seen:
            break
    assert "shutdown" in seen, f"no run stopped for the shutdown: {seen}"
    check_invariants(istack, mark, restarted=("worker",))
    # The next worker found no run of the stopped one left open.
    assert "abandoned" not in [r for _, r in istack.runs_ended_since(mark)]


def test_worker_killed_holding_lock_with_grants_in_flight(istack: FaultStack) -> None:
    """kill -9 of the worker's process group mid-call: its lock frees itself within two
    TTLs, its grants (Keepa charged them) are dropped after TOKEN_GRANT_TTL_S, and a new
    worker closes the killed run as abandoned and carries on."""
    mark = istack.mark()
    orphans = freeze_mid_call(istack)
    with istack.outage():
        istack.kill_group("worker")
        lock_ttl_wall_s = istack.settings.lock_ttl_s / SCALE
        wait_for(
            lambda: istack.locks_and_grants()[0] == 0,
            2 * lock_ttl_wall_s + 2,
            "the killed worker's locks free themselves",
            istack,
        )
        istack.sim.clear_faults()
        restarting = istack.mark()
        istack.start("worker", "worker")
        istack.wait_runs_begin(restarting)
    check_invariants(istack, mark, restarted=("worker",))
    wait_for(
        lambda: not orphans & istack.locks_and_grants()[1],
        20,
        "the killed worker's grants are dropped",
        istack,
    )
    # The killed run may have begun before the mark: count the runs ended since.
    abandoned = [r for _, r in istack.runs_ended_since(mark) if r == "abandoned"]
    assert abandoned, istack.logs()


def test_clock_jumps_forward(istack: FaultStack) -> None:
    """Four service hours pass at once (a host suspended, an NTP step) for Keepa and for
    the service: Keepa's bucket refills to its cap, every time in Redis (grants,
    demand, recharge, the refill phase) is hours old, and the deals published meanwhile
    are fetched, none lost, the watermark jumping forward with them.

    The processes keep KEEPA_TIME_ORIGIN_S for life, so the jump happens between two
    lives of worker and beat; the simulator's clock jumps by the same amount at the
    same moment (ShiftableTime), and Redis, SQLite and the beat schedule carry the
    state across it."""
    mark = istack.mark()
    watermark = istack.watermark() or 0
    with istack.outage():
        istack.stop_all()
        restarting = istack.mark()
        istack.set_origin(istack.clock.jump(4 * 3600))
        istack.start_service()
        istack.wait_runs_begin(restarting)
    check_invariants(istack, mark, restarted=("worker", "beat"), doctor_passes=True)
    assert (istack.watermark() or 0) > watermark + 3 * 3600
