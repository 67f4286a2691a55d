"""`keepa-deals doctor`: every check, each with a verdict and the reason.

Liveness is not health (failure mode: green but idle): besides Redis, the database, Keepa and the
workers, it judges progress: runs happening on schedule, runs getting somewhere (as the `runs`
table records it: rejecting is progress, a quiet market is not a stall), and no lock
held by a run that has stopped moving. `--wait-s` retries what fails until a deadline,
for a deploy that runs doctor right after restarting the units.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import redis
from kombu.exceptions import OperationalError

from keepa_deals.config import Settings, mask_url_password
from keepa_deals.errors import KeepaDealsError
from keepa_deals.infra.checks import Check
from keepa_deals.infra.durations import duration
from keepa_deals.infra.file_access import current_user
from keepa_deals.infra.redis_client import DIAGNOSTICS, redis_client
from keepa_deals.infra.redis_failure import describe
from keepa_deals.keepa.client import KeepaClient, longest_backoff_s
from keepa_deals.keepa.errors import KeepaError
from keepa_deals.service.preflight import check_deal_query, check_redis
from keepa_deals.service.status import db_status, lock_status, token_status
from keepa_deals.service.timebase import lock_ttl_wall_s
from keepa_deals.service.timebase import now_s as service_now_s
from keepa_deals.store import check_schema, connect_readonly
from keepa_deals.store.connection import DatabaseNotWritable, check_writable, write_problem

# No progress (see check_progress) for this long, not explained by the token budget,
# is a stall (failure mode: green but idle).
STALL_AFTER_S = 3 * 3600
# Wall seconds between the two looks at a lock held with no open run. A holder writes
# its run row within about a second of taking the lock (tasks.run_locked), so a lock
# that keeps its owner this long with no run is not a run starting up.
LOCK_CONFIRM_S = 5.0
# Wall seconds between retries of failing checks under `doctor --wait-s`.
RETRY_EVERY_S = 2.0
# The clock `doctor --wait-s` measures its deadline on, and how it waits.
_monotonic_s: Callable[[], float] = time.monotonic
_sleep: Callable[[float], None] = time.sleep


def check_database_readonly(settings: Settings) -> Check:
    path = settings.deals_db_path
    if not path.exists():
        return Check("database", "fail", f"{path} does not exist: run `keepa-deals migrate`")
    unwritable = _unwritable_as_this_user(path)
    if unwritable is not None and unwritable.outcome == "fail":
        return unwritable
    try:
        conn = connect_readonly(path)
        try:
            check_schema(conn)
            version = conn.execute("PRAGMA user_version").fetchone()[0]
        finally:
            conn.close()
    except KeepaDealsError as exc:
        return Check("database", "fail", str(exc))  # names the file and what to do
    except sqlite3.Error as exc:
        return Check("database", "fail", f"{path}: {exc}")
    return unwritable or Check("database", "ok", f"{path} (schema v{version})")


def _unwritable_as_this_user(path: Path) -> Check | None:
    """doctor reads, but the service writes. Run as the service user (deploy runs it
    so), a file it may not write is what every run would fail on: a failure. Root's
    files fail whoever asks (only root could write them, and the service is not root).
    Another user's files, asked by someone else (an operator in the service's group),
    are a warning: doctor can only check as the user running it."""
    try:
        check_writable(path)
    except DatabaseNotWritable as exc:
        try:
            owner_uid = exc.blocking.stat().st_uid if exc.blocking is not None else 0
        except OSError:
            owner_uid = 0  # cannot even look: fail, as for root's
        if owner_uid in (0, os.geteuid()):
            return Check("database", "fail", str(exc))
        return Check(
            "database",
            "warn",
            f"{path}: {current_user()} cannot write the database ({write_problem(path)}); "
            "fine if the service runs as that owner: run doctor as the service user to "
            "see what it meets",
        )
    return None


def check_keepa(settings: Settings) -> Check:
    if not settings.keepa_api_key:
        return Check("keepa", "warn", "no KEEPA_API_KEY: only the simulator can be used")
    client = KeepaClient.from_settings(settings)
    try:
        env = client.token().envelope
    except KeepaError as exc:
        return Check("keepa", "fail", f"{settings.keepa_api_url}: {exc}")
    finally:
        client.session.close()
    return Check(
        "keepa",
        "ok",
        f"{settings.keepa_api_url}: key accepted, {env.tokens_left} tokens, "
        f"{env.refill_rate}/min (a free /token call)",
    )


def check_workers(settings: Settings) -> Check:
    from keepa_deals.service.celery_app import make_app  # noqa: PLC0415

    app = make_app(settings)
    try:
        replies = app.control.inspect(timeout=2.0).ping() or {}
    except (OSError, redis.RedisError, OperationalError) as exc:
        # kombu wraps the broker's errors (a refused Redis password) in OperationalError.
        return Check("workers", "fail", f"cannot ask the workers: {exc}")
    finally:
        app.close()
    if not replies:
        return Check("workers", "fail", "no Celery worker answered a ping within 2 s")
    return Check("workers", "ok", f"{len(replies)} alive: {', '.join(sorted(replies))}")


def check_tokens(settings: Settings) -> Check:
    client = redis_client(settings.redis_url, DIAGNOSTICS)
    try:
        st = token_status(settings, client)
    except (redis.RedisError, KeepaDealsError) as exc:
        failure = describe(exc, mask_url_password(settings.redis_url), script="token script")
        # A script error is named as one; the state is unknown when Redis is.
        unknown = "unknown: " if failure.cause == "unreachable" else ""
        return Check("tokens", "fail", f"{unknown}{failure.detail}")
    finally:
        client.close()
    if st.get("state") != "ok":
        return Check("tokens", "warn", st.get("detail", "no token state yet"))
    waits = [
        f"{name} waits {duration(c['wait_s'], 'until another class acts')} ({c['reason']})"
        for name, c in st["classes"].items()
        if c["waiting"]
    ]
    detail = f"balance {st['balance']} of {st['capacity']}, rate {st['rate_per_min']}/min"
    if st["recharge"]["active"]:
        detail += f", recharging toward {st['recharge']['target']}"
    return Check("tokens", "ok", "; ".join([detail, *waits]))


def check_progress(settings: Settings, now_s: float | None = None) -> Check:
    """Are runs happening, and are they getting anywhere? Judged from the `runs` table.

    A run made progress when it evaluated anything (a rejection is the evaluator at
    work) or ended `done` (caught up: a quiet market is healthy). No progress for
    STALL_AFTER_S is a stall unless the token budget explains it, i.e. most runs since
    the last progress stopped for tokens (`tokens`, `http_429`)."""
    now_s = service_now_s(settings) if now_s is None else now_s
    db = db_status(settings.deals_db_path, now_s)
    if db.get("state") != "ok":
        return Check("progress", "fail", f"database {db.get('state')}")
    runs = db["last_runs"]
    if not runs:
        # A fresh install before beat's first tick (a deploy must not fail on it). A
        # service that never ran looks the same, but the database records no creation
        # time to tell the two apart, so this stays a warning.
        return Check("progress", "warn", "no run recorded yet (is beat running?)")
    latest = max(r["started_s"] for r in runs)
    expected = 2 * max(settings.upsert_every_s, settings.backfill_every_s) + 60
    if now_s - latest > expected:
        return Check(
            "progress",
            "fail",
            f"no run started for {now_s - latest:.0f}s: beat or the worker is down",
        )
    since_s = db["last_progress_s"] if db["last_progress_s"] is not None else db["first_run_s"]
    stalled_s = max(0.0, now_s - since_s)
    if stalled_s > STALL_AFTER_S:
        idle = db["runs_since_progress"]
        reasons = ", ".join(f"{r} x{n}" for r, n in idle["stop_reasons"].items()) or "none"
        what = "nothing evaluated" + ("" if db["last_progress_s"] is not None else " ever")
        if idle["token_stops"] > idle["other_stops"]:
            return Check(
                "progress",
                "warn",
                f"{what} for {stalled_s / 3600:.1f}h, explained by the token budget: "
                f"runs since stopped {reasons}",
            )
        return Check(
            "progress",
            "fail",
            f"{what} for {stalled_s / 3600:.1f}h although runs stopped for other reasons "
            f"than tokens: {reasons}",
        )
    day = db["runs_24h"]
    last_progress = db["last_progress_age_s"]
    progress = "never" if last_progress is None else f"{last_progress:.0f}s ago"
    return Check(
        "progress",
        "ok",
        f"last run {now_s - latest:.0f}s ago; last progress {progress}; 24h: {day['runs']} "
        f"runs evaluated {day['deals_evaluated']} deals ({day['deals_accepted']} accepted, "
        f"{day['deals_rejected']} rejected); {db['deals_per_hour_24h']} new deals/hour; "
        f"{db['pending']} pending",
    )


def longest_call_s(settings: Settings) -> float:
    """The longest one Keepa call may legitimately take, in service seconds: the inline
    token wait, then every attempt answering 5xx at the last moment, with the largest
    jittered backoff between them. The HTTP timeouts and the backoff run on wall time:
    scaled, they last `time_scale` times longer in service time."""
    attempts = settings.keepa_max_retries + 1
    per_attempt_s = settings.keepa_connect_timeout_s + settings.keepa_read_timeout_s
    waits_s = longest_backoff_s(settings.keepa_max_retries)
    http_s = (attempts * per_attempt_s + waits_s) * settings.time_scale
    return settings.harvest_inline_wait_s + http_s


def run_overdue_after_s(settings: Settings) -> float:
    """How long a run may stay open before its lock counts as held with nothing moving.

    A run stops itself at HARVEST_MAX_RUN_S, checked before each Keepa call, so it ends
    within one call of that; Celery interrupts it at TASK_SOFT_TIME_LIMIT_S in any case.
    Beyond the earlier of the two, two lock TTLs (what a killed worker's lock needs to
    free itself) make "clearly" overdue. Sooner than TASK_TIME_LIMIT_S, and no sooner
    without a per-run heartbeat time in `runs` (not in the schema)."""
    ends_by_s = min(
        settings.harvest_max_run_s + longest_call_s(settings),
        float(settings.task_soft_time_limit_s),
    )
    return ends_by_s + 2 * settings.lock_ttl_s


def _open_run(db: dict[str, Any], task: str) -> dict[str, Any] | None:
    run: dict[str, Any] | None = db.get("tasks", {}).get(task, {}).get("open_run")
    return run


def _last_ended_s(db: dict[str, Any], task: str) -> int | None:
    ended_s: int | None = db.get("tasks", {}).get(task, {}).get("last_ended_s")
    return ended_s


def check_locks(
    settings: Settings,
    now_s: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
    confirm_s: float = LOCK_CONFIRM_S,
) -> Check:
    """Every held lock must belong to a run that is moving (failure mode: green but idle), and
    expire (failure mode: stuck locks).

    A lock is held with nothing moving when
    - it has no TTL: no keepa-deals heartbeat sets that, and it never frees itself;
    - its task's open run has outlived `run_overdue_after_s` (the heartbeat thread can
      keep a lock alive while the run itself is stuck);
    - no run of its task is open, and none ended within two lock TTLs: a holder writes
      its run row right after taking the lock, and releases the lock right after
      closing the row. A snapshot may fall in that gap, so this is confirmed by a
      second look `confirm_s` (wall seconds) later, with the same owner (unique per
      acquisition) still holding it and still no open run.
    A heartbeat that is late (under a third of the TTL left: two renewals missed) is a
    warning only: the lock frees itself when the TTL runs out.
    """
    client = redis_client(settings.redis_url, DIAGNOSTICS)
    try:
        locks = lock_status(settings, client)
        held = {task: h for task, h in locks.items() if h}
        if not held:
            return Check("locks", "ok", "none held")
        at_s = service_now_s(settings) if now_s is None else now_s
        db = db_status(settings.deals_db_path, at_s)
        stuck: list[str] = []
        late: list[str] = []
        suspects: list[str] = []
        for task, holder in held.items():
            run = _open_run(db, task)
            if not holder["expires"]:
                stuck.append(f"{task}: the lock has no expiry, it will never free itself")
            elif run is not None and at_s - run["started_s"] > run_overdue_after_s(settings):
                stuck.append(
                    f"{task}: run {run['id']} open for {at_s - run['started_s']:.0f}s, past "
                    f"{run_overdue_after_s(settings):.0f}s (it stops itself at "
                    f"HARVEST_MAX_RUN_S={settings.harvest_max_run_s})"
                )
            elif run is None:
                ended_s = _last_ended_s(db, task)
                if ended_s is None or at_s - ended_s > 2 * settings.lock_ttl_s:
                    suspects.append(task)
            if holder["expires"] and holder["ttl_left_s"] < lock_ttl_wall_s(settings) / 3:
                late.append(f"{task} ({holder['ttl_left_s']:.1f}s left)")
        if suspects:
            sleep(confirm_s)
            again = lock_status(settings, client)
            at_s = service_now_s(settings) if now_s is None else now_s + confirm_s
            db = db_status(settings.deals_db_path, at_s)
            for task in suspects:
                now_held = again.get(task)
                if not now_held or now_held["owner"] != held[task]["owner"]:
                    continue  # released or taken anew: a run between its row and its lock
                if _open_run(db, task) is not None:
                    continue  # it was starting its run
                ended_s = _last_ended_s(db, task)
                since = (
                    "no run recorded"
                    if ended_s is None
                    else f"last run ended {at_s - ended_s:.0f}s ago"
                )
                stuck.append(f"{task}: no open run ({since})")
    except redis.RedisError as exc:
        # Never "none held": a lock that could not be read may be held.
        failure = describe(exc, mask_url_password(settings.redis_url))
        return Check("locks", "fail", f"unknown: {failure.detail}")
    finally:
        client.close()
    detail = ", ".join(f"{t} by {h['owner']}" for t, h in held.items())
    if stuck:
        return Check("locks", "fail", f"held with nothing moving: {'; '.join(stuck)} ({detail})")
    if late:
        return Check(
            "locks",
            "warn",
            f"heartbeat late for {', '.join(late)}: its holder died or stalls; "
            f"the lock frees itself when its TTL runs out ({detail})",
        )
    return Check("locks", "ok", f"held: {detail}")


DOCTOR_CHECKS: tuple[Callable[[Settings], Check], ...] = (
    check_deal_query,
    check_redis,
    check_database_readonly,
    check_keepa,
    check_workers,
    check_tokens,
    check_locks,
    check_progress,
)


def _run_check(run: Callable[[Settings], Check], settings: Settings) -> Check:
    try:
        return run(settings)
    except Exception as exc:
        # A check that crashes is a failed check, never a crashed doctor.
        return Check(run.__name__.removeprefix("check_"), "fail", repr(exc))


def run_doctor(
    settings: Settings,
    wait_s: float = 0.0,
    *,
    checks: Sequence[Callable[[Settings], Check]] | None = None,
    monotonic_s: Callable[[], float] | None = None,
    sleep: Callable[[float], None] | None = None,
    retry_every_s: float | None = None,
    on_retry: Callable[[list[Check], float], None] | None = None,
) -> list[Check]:
    """Run every check; with `wait_s`, retry the failing ones until none fails or the
    deadline passes (a deploy runs doctor right after a restart, before the worker
    answers pings). The deadline is computed once: the last retry starts at it at the
    latest, so the whole call takes at most `wait_s` plus one round of checks.
    `on_retry(failing, seconds_left)` reports each wait (long operations show progress).
    Unset arguments are looked up when called (DOCTOR_CHECKS, time.monotonic, ...), so
    a test can replace the module's names."""
    if wait_s < 0:
        raise ValueError(f"wait_s must not be negative, got {wait_s}")
    checks = DOCTOR_CHECKS if checks is None else checks
    monotonic_s = _monotonic_s if monotonic_s is None else monotonic_s
    sleep = _sleep if sleep is None else sleep
    retry_every_s = RETRY_EVERY_S if retry_every_s is None else retry_every_s
    deadline_s = monotonic_s() + wait_s
    results = [_run_check(run, settings) for run in checks]
    while True:
        failing = [i for i, c in enumerate(results) if c.outcome == "fail"]
        left_s = deadline_s - monotonic_s()
        if not failing or left_s <= 0:
            return results
        if on_retry is not None:
            on_retry([results[i] for i in failing], left_s)
        sleep(min(retry_every_s, left_s))
        for i in failing:
            results[i] = _run_check(checks[i], settings)


def summary(checks: list[Check]) -> dict[str, Any]:
    return {"ok": all(c.outcome != "fail" for c in checks), "checks": [c.__dict__ for c in checks]}
