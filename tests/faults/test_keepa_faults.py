"""Keepa misbehaving, against the running service: 429 storms, 5xx bursts, timeouts
after charging, garbled bodies, products missing from replies, nulls inside arrays, a
plan change and a refused key. One stack serves the module; each test injects one
fault, waits until the service has felt it (a run stopped for it, or the simulator
counted it), clears it and checks every invariant (`check_invariants`)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from keepa_deals.keepa_sim.accounts import KeyStatus
from tests.e2e.conftest import KEY, wait_for
from tests.support.faults import FaultStack, Mark, check_invariants, running_stack

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def fstack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultStack]:
    with running_stack(tmp_path_factory.mktemp("keepa-faults")) as stack:
        yield stack


def inject(stack: FaultStack, faults: dict[str, Any], *reasons: str, timeout_s: float = 40) -> Mark:
    """Set `faults`, wait until a run stopped for one of `reasons`, clear them."""
    mark = stack.mark()
    stack.sim.set_faults(faults)
    try:
        wait_for(
            lambda: bool(set(reasons) & stack.stop_reasons_since(mark)),
            timeout_s,
            f"a run stopped for {reasons} under {faults}",
            stack,
        )
    finally:
        stack.sim.clear_faults()
    return mark


def test_429_storm(fstack: FaultStack) -> None:
    """429s whatever the balance: the run stops (never reads them as "no deals")."""
    mark = inject(fstack, {"storm_429": 6}, "http_429")
    check_invariants(fstack, mark)


def test_5xx_burst(fstack: FaultStack) -> None:
    """More 5xx than the client retries (3): a run stops for keepa_error, the products
    of the failed requests stay pending (or count towards quarantine)."""
    mark = inject(
        fstack,
        {"error_5xx_next": 12, "error_5xx_status": 502, "error_5xx_body": "html"},
        "keepa_error",
    )
    assert fstack.injected("error_5xx_next") >= 4
    check_invariants(fstack, mark)


def test_timeouts_after_charge(fstack: FaultStack) -> None:
    """Keepa charges, then never answers: a stall past KEEPA_READ_TIMEOUT_S, then a
    reset. The TokenManager cannot know the cost, keeps the grants counted until
    TOKEN_GRANT_TTL_S, and the floor holds."""
    before = fstack.injected("timeout_after_charge")
    mark = inject(
        fstack,
        {"timeout_after_charge": 1, "timeout_mode": "stall", "stall_s": 2.0},
        "keepa_timeout",
    )
    inject(fstack, {"timeout_after_charge": 1, "timeout_mode": "drop"}, "keepa_timeout")
    assert fstack.injected("timeout_after_charge") == before + 2
    check_invariants(fstack, mark)


def test_garbled_bodies(fstack: FaultStack) -> None:
    """A charged 200 whose body is not JSON, then one cut short under its
    Content-Length: the run stops, nothing is taken from the garbage."""
    mark = fstack.mark()
    before = fstack.injected("malformed_body") + fstack.injected("truncated_body")
    fstack.sim.set_faults({"malformed_body": 1, "truncated_body": 1})
    try:
        wait_for(
            lambda: (
                fstack.injected("malformed_body") + fstack.injected("truncated_body") == before + 2
                and sum(1 for _, r in fstack.runs_ended_since(mark) if r == "keepa_error") >= 2
            ),
            # Two runs must each reach a paid call, and the first garbled answer leaves
            # its grant counted (Keepa may have charged it) until TOKEN_GRANT_TTL_S.
            60,
            "both garbled answers stopped a run",
            fstack,
        )
    finally:
        fstack.sim.clear_faults()
    check_invariants(fstack, mark)


def test_products_missing_from_replies(fstack: FaultStack) -> None:
    """/product leaves out half the products it knows (and charges only the rest): a
    missing product is a failure counted towards quarantine, never a lost deal."""
    mark = fstack.mark()
    fstack.sim.set_faults({"endpoints": ["product"], "drop_products_rate": 0.5})
    try:
        wait_for(
            lambda: (
                fstack.injected("drop_products_rate") >= 4
                and bool(
                    fstack.scalar(
                        "SELECT COUNT(*) FROM quarantine WHERE reason = 'missing_from_reply'"
                    )
                )
            ),
            40,
            "products left out of replies, and counted",
            fstack,
        )
    finally:
        fstack.sim.clear_faults()
    check_invariants(fstack, mark)


def test_nulls_inside_arrays(fstack: FaultStack) -> None:
    """Every product carries nulls inside its csv series and stats arrays: evaluated
    (or rejected) without a crash."""
    mark = fstack.mark()
    evaluated_before = fstack.scalar("SELECT SUM(deals_peeked + deals_committed) FROM runs") or 0
    fstack.sim.set_faults({"endpoints": ["product"], "null_rate": 1.0})
    try:
        wait_for(
            lambda: (
                fstack.injected("null_rate") >= 5
                and (fstack.scalar("SELECT SUM(deals_peeked + deals_committed) FROM runs") or 0)
                > evaluated_before
                and len(fstack.runs_since(mark)) >= 3
            ),
            40,
            "products with nulls evaluated",
            fstack,
        )
    finally:
        fstack.sim.clear_faults()
    check_invariants(fstack, mark)


def _rate_seen(stack: FaultStack) -> int | None:
    assert stack.monitor is not None
    report = stack.monitor.last_status
    return None if report is None else int(report["rate_per_min"])


def test_plan_change_mid_run(fstack: FaultStack) -> None:
    """An upgrade from 5 to 25 tokens/min while both tasks run, then back down to 5 (the
    cap falls from 1500 to 300): the TokenManager follows Keepa's refillRate both ways."""
    mark = fstack.mark()
    fstack.sim.set_plan(25)
    wait_for(lambda: _rate_seen(fstack) == 25, 30, "the service sees the new plan", fstack)
    check_invariants(fstack, mark)
    mark = fstack.mark()
    fstack.sim.set_plan(5)
    wait_for(lambda: _rate_seen(fstack) == 5, 30, "the service sees the old plan", fstack)
    check_invariants(fstack, mark)


def _refused(stack: FaultStack, status: KeyStatus) -> None:
    """Refuse the key until runs of both tasks have stopped for it; check what the
    operator sees meanwhile."""
    mark = stack.mark()
    started = time.monotonic()
    stack.sim.set_key(KEY, status)

    def refused_runs() -> int:
        return sum(1 for _, r in stack.runs_since(mark) if r == "keepa_key")

    # A task waiting for tokens never reaches Keepa: two refusals of either will do.
    wait_for(lambda: refused_runs() >= 2, 40, "runs stop for the key", stack)
    status_rc, status_out, _ = stack.finish(stack.spawn("status", "--json"))
    assert status_rc == 0
    last = [r["stop_reason"] for r in json.loads(status_out)["database"]["last_runs"]]
    assert "keepa_key" in last, last
    doctor = stack.cli("doctor")
    assert doctor.returncode == 1, doctor.stdout + doctor.stderr
    keepa_line = next(line for line in doctor.stdout.splitlines() if "keepa:" in line)
    expected = "expired or unpaid" if status == "expired" else "rejected the API key"
    assert keepa_line.startswith("[FAIL]") and expected in keepa_line, doctor.stdout
    assert KEY not in doctor.stdout + doctor.stderr + status_out
    # No crash loop: the worker lives, and runs come at beat's pace, ending for the key
    # or for tokens, never in an error.
    assert stack.procs["worker"].poll() is None, stack.logs()
    runs = stack.runs_since(mark)
    reasons = {r for _, r in runs}
    assert reasons <= {"keepa_key", "tokens", "done"}, reasons
    # Beat sends each task once a wall second (UPSERT_EVERY_S, BACKFILL_EVERY_S at
    # SCALE): no more runs than that, give or take the one in progress.
    assert len(runs) <= 2 * (time.monotonic() - started) + 4, len(runs)


def test_bad_key_stops_runs_then_recovers(fstack: FaultStack) -> None:
    """A lapsed subscription (402), then a key Keepa does not know (400): every run
    stops for keepa_key, doctor names the problem without printing the key, and
    fixing the key is all it takes to resume."""
    mark = fstack.mark()
    try:
        _refused(fstack, "expired")
        _refused(fstack, "unknown")
    finally:
        fstack.sim.set_key(KEY, "active")
    check_invariants(fstack, mark, doctor_passes=True)
