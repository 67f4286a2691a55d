"""Bad settings against the running service: a worker started with a bad setting, a
`.env` edited into a bad one, and the deal query file broken while both tasks run.
One stack serves the module, in this order; every test ends with `check_invariants`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from keepa_deals.config import DEFAULT_DEAL_QUERY
from keepa_deals.service.celery_app import BACKFILL_TASK, UPSERT_TASK
from tests.e2e.conftest import KEY, wait_for
from tests.support.faults import FaultStack, Mark, check_invariants, only_line, running_stack

pytestmark = pytest.mark.slow

# How each task names itself in the worker log: Celery's task name in its trace lines.
TASK_LOG_NAMES = (f"{UPSERT_TASK}[", f"{BACKFILL_TASK}[")

BAD_AT_START = [
    # A malformed key is never echoed, not even in part.
    ({"KEEPA_API_KEY": KEY + "-x"}, "KEEPA_API_KEY=<hidden>"),
    ({"TOKEN_THRESHOLD_BACKFILL": "480"}, "TOKEN_THRESHOLD_BACKFILL=480"),
    ({"HARVEST_MAX_RUN_S": "1000"}, "HARVEST_MAX_RUN_S=1000"),
]


def both_tasks_logged(stack: FaultStack, mark: Mark, *parts: str) -> bool:
    """A worker log line since `mark` with every part in it, for each task. A run that
    read the good settings may still be starting when the first such line appears;
    once both tasks have failed on the bad ones, every run after is theirs."""
    lines = stack.logs_since(mark).get("worker", "").splitlines()
    return all(
        any(name in line and all(p in line for p in parts) for line in lines)
        for name in TASK_LOG_NAMES
    )


@pytest.fixture(scope="module")
def sstack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultStack]:
    tmp = tmp_path_factory.mktemp("settings-faults")
    query = tmp / "deal_query.json"
    query.write_text(DEFAULT_DEAL_QUERY.read_text())
    with running_stack(tmp, env={"DEAL_QUERY_PATH": str(query)}) as stack:
        yield stack


def test_bad_settings_refused_at_start(sstack: FaultStack) -> None:
    """Workers started with a bad setting beside the running service: one line each,
    exit 2, no key; the running service is not disturbed."""
    mark = sstack.mark()
    for overrides, expected in BAD_AT_START:
        result = sstack.cli("worker", env={**sstack.env, **overrides}, timeout_s=20)
        line = only_line(result.stdout + result.stderr)
        assert result.returncode == 2 and expected in line, line
        assert KEY not in line
    check_invariants(sstack, mark)


def test_bad_dotenv_while_running(sstack: FaultStack) -> None:
    """An operator edits `.env` into an impossible setting while the service runs
    (every run reads it): no run spends a token, every CLI names the setting in one
    line, the worker lives, and removing the line is all it takes to resume."""
    dotenv = sstack.tmp / ".env"
    mark = sstack.mark()
    with sstack.outage():  # the test breaks the service on purpose
        dotenv.write_text("TOKEN_THRESHOLD_UPSERT=999\n")
        try:
            wait_for(
                lambda: both_tasks_logged(sstack, mark, "TOKEN_THRESHOLD_UPSERT=999"),
                20,
                "both tasks read the bad setting",
                sstack,
            )
            broken = sstack.mark()
            for command in (("status", "--json"), ("doctor",)):
                result = sstack.cli(*command)
                line = only_line(result.stdout + result.stderr)
                assert result.returncode == 2 and "TOKEN_THRESHOLD_UPSERT=999" in line, line
            assert sstack.procs["worker"].poll() is None, sstack.logs()
            assert not sstack.runs_since(broken), "a run started on impossible settings"
        finally:
            dotenv.unlink()
        # The outage lasts until both tasks run again: the gap until then is explained.
        sstack.wait_runs_begin(sstack.mark())
    check_invariants(sstack, mark, allow_crashes=True)


def _break_query(stack: FaultStack) -> str:
    """Make the deal query one Keepa would misread; returns the good text."""
    path = Path(stack.env["DEAL_QUERY_PATH"])
    good = path.read_text()
    mark = stack.mark()
    path.write_text(json.dumps({**json.loads(good), "dateRange": "1"}))
    wait_for(
        lambda: both_tasks_logged(stack, mark, "dateRange"),
        20,
        "both tasks notice the broken query",
        stack,
    )
    return good


def test_broken_deal_query_is_diagnosed(sstack: FaultStack) -> None:
    """While the deal query is broken: doctor names it, the worker lives, no run
    spends a token, and the runs that could not start say why (status --json)."""
    path = Path(sstack.env["DEAL_QUERY_PATH"])
    mark = sstack.mark()
    good = _break_query(sstack)
    try:
        broken = sstack.mark()
        doctor = sstack.cli("doctor")
        assert doctor.returncode == 1
        assert "[FAIL] deal query" in doctor.stdout and "dateRange" in doctor.stdout
        assert KEY not in doctor.stdout + doctor.stderr
        assert sstack.procs["worker"].poll() is None, sstack.logs()
        status_rc, status_out, _ = sstack.finish(sstack.spawn("status", "--json"))
        assert status_rc == 0
        runs = json.loads(status_out)["database"]["last_runs"]
        assert any("dateRange" in (r["error"] or "") for r in runs), runs
        spent = sstack.scalar(
            "SELECT SUM(tokens_discovery + tokens_peek + tokens_commit) FROM runs WHERE id > ?",
            broken.run_id,
        )
        assert not spent, f"{spent} tokens spent on a broken query"
    finally:
        path.write_text(good)
    check_invariants(sstack, mark, allow_crashes=True)


def test_broken_deal_query_fixed_resumes_by_itself(sstack: FaultStack) -> None:
    """Fixing the query is all it takes: the service resumes with no restart (the
    task locks of the runs that could not start are not left behind)."""
    path = Path(sstack.env["DEAL_QUERY_PATH"])
    mark = sstack.mark()
    good = _break_query(sstack)
    path.write_text(good)
    check_invariants(sstack, mark, allow_crashes=True)
