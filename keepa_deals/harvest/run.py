"""One run of a harvest task: its counters, why it stopped, and its row in `runs`.

A run never decides to wait: it stops, says why, and the next scheduled run carries on
(failure mode: sleeping on a lock). Deep code stops a run by raising `StopRun`; the task's top level
turns that into the run's summary. Progress is measured, not assumed (failure mode: green but idle):
every batch's transaction also writes the counts so far, so a crashed run still shows what it did.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from keepa_deals.config import Settings
from keepa_deals.evaluation.verdicts import Stage
from keepa_deals.harvest.context import HarvestContext
from keepa_deals.infra.redact import redact
from keepa_deals.store import (
    RunStats,
    finish_run,
    get_cursor,
    get_watermark,
    is_pending,
    start_run,
    transaction,
    update_run,
)

log = logging.getLogger(__name__)


class StopReason(StrEnum):
    DONE = "done"  # no work left
    TOKENS = "tokens"  # the TokenManager's next wait is longer than the inline limit
    HTTP_429 = "http_429"  # Keepa answered 429: out of tokens, never "no more deals"
    KEEPA_TIMEOUT = "keepa_timeout"  # no answer; Keepa may have charged the request
    KEEPA_ERROR = "keepa_error"  # 5xx after retries, a malformed reply, a refused request
    KEEPA_UNREACHABLE = "keepa_unreachable"  # no connection; nothing was sent
    KEEPA_KEY = "keepa_key"  # the key was refused or its subscription lapsed
    MAX_DURATION = "max_duration"  # HARVEST_MAX_RUN_S
    STOPPED = "stopped"  # asked to stop (the task lost its lock)
    SHUTDOWN = "shutdown"  # the worker is shutting down (warm shutdown: SIGTERM)
    ERROR = "error"  # an unexpected exception, raised again after the run is recorded


class StopRun(Exception):
    """End the run now, for `reason`. Whatever was committed stays committed."""

    def __init__(self, reason: StopReason, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else str(reason))


def requested_stop(ctx: HarvestContext) -> StopRun | None:
    """Why the run must end now, if it must: its task lost its lock, or its worker is
    shutting down. Asked between batches and while waiting for tokens."""
    if ctx.stopped():
        return StopRun(StopReason.STOPPED, "asked to stop")
    if ctx.shutdown_requested():
        return StopRun(StopReason.SHUTDOWN, "the worker is shutting down")
    return None


@dataclass(frozen=True)
class RunSummary:
    """What a task returns (and Celery stores as JSON): see `to_dict`."""

    task: str
    run_id: int
    started_s: int
    ended_s: int
    stop_reason: str
    stats: RunStats
    detail: str = ""
    error: str | None = None
    # The state both tasks leave behind, after the run: the upserter's watermark and the
    # backfiller's cursor (diagnostics read them from every summary).
    watermark_s: int | None = None
    cursor_page: int = 0
    cursor_passes: int = 0
    pending_left: int = 0  # deals in `pending` after the run, every source

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["stats"] = {**asdict(self.stats), "tokens_total": self.stats.tokens_total}
        return out


@dataclass
class Run:
    """The live bookkeeping of one run (`begin` writes its `runs` row)."""

    ctx: HarvestContext
    task: str
    id: int
    started_s: int
    started_clock_s: float
    stats: RunStats = field(default_factory=RunStats)
    # Deals this run put in `pending`: those still there at the end were deferred.
    added: set[tuple[str, int]] = field(default_factory=set)

    @classmethod
    def begin(cls, ctx: HarvestContext, task: str) -> Run:
        started_clock_s = ctx.clock.now()
        started_s = int(started_clock_s)
        with transaction(ctx.conn):
            run_id = start_run(ctx.conn, task, started_s)
        return cls(ctx, task, run_id, started_s, started_clock_s)

    def check(self) -> None:
        """Between batches: stop when asked to, or when the run has lasted long enough."""
        stop = requested_stop(self.ctx)
        if stop is not None:
            raise stop
        elapsed_s = self.ctx.clock.now() - self.started_clock_s
        if elapsed_s >= self.ctx.settings.harvest_max_run_s:
            raise StopRun(StopReason.MAX_DURATION, f"ran {elapsed_s:.0f}s")

    def add_tokens(self, stage: Stage | None, tokens: int) -> None:
        """Tokens Keepa charged (`tokensConsumed`); stage None: a deal page."""
        if stage is None:
            self.stats.tokens_discovery += tokens
        elif stage is Stage.COMMIT:
            self.stats.tokens_commit += tokens
        else:
            self.stats.tokens_peek += tokens

    def save(self) -> None:
        """The counts so far; call it inside each batch's transaction."""
        update_run(self.ctx.conn, self.id, self.stats)

    def finish(self, reason: StopReason, detail: str = "", error: str | None = None) -> RunSummary:
        conn = self.ctx.conn
        self.stats.deals_deferred = sum(1 for a, d in self.added if is_pending(conn, a, d))
        ended_s = max(self.started_s, self.ctx.now_s())
        with transaction(conn):
            finish_run(conn, self.id, self.stats, str(reason), ended_s, error=error)
        pending_left = int(conn.execute("SELECT COUNT(*) FROM pending").fetchone()[0])
        cursor = get_cursor(conn)
        return RunSummary(
            task=self.task,
            run_id=self.id,
            started_s=self.started_s,
            ended_s=ended_s,
            stop_reason=str(reason),
            stats=self.stats,
            detail=detail,
            error=error,
            watermark_s=get_watermark(conn),
            cursor_page=cursor.page,
            cursor_passes=cursor.passes,
            pending_left=pending_left,
        )


TaskBody = Callable[[HarvestContext, Run], StopReason]


def run_task(ctx: HarvestContext | None, task: str, body: TaskBody) -> RunSummary:
    """Run `body` as one recorded run of `task`. With no context, one is built from the
    environment and closed afterwards. An unexpected exception is recorded on the run
    (stop reason `error`) and raised again: the batch it interrupted was rolled back,
    and the next run resumes from what was committed."""
    own = ctx is None
    context = HarvestContext.from_settings(Settings.from_env()) if ctx is None else ctx
    try:
        run = Run.begin(context, task)
        try:
            reason, detail = body(context, run), ""
        except StopRun as stop:
            reason, detail = stop.reason, stop.detail
        except BaseException as exc:
            try:
                run.finish(StopReason.ERROR, error=redact(f"{type(exc).__name__}: {exc}"))
            except Exception:  # the original error matters more than its record
                log.exception("%s run %d: could not record the failure", task, run.id)
            raise
        summary = run.finish(reason, detail)
        log.info(
            "%s run %d stopped (%s%s): %d tokens, %d seen, %d accepted, %d rejected, %d pending",
            task,
            run.id,
            reason,
            f": {detail}" if detail else "",
            summary.stats.tokens_total,
            summary.stats.deals_seen,
            summary.stats.deals_accepted,
            summary.stats.deals_rejected,
            summary.pending_left,
        )
        return summary
    finally:
        if own:
            context.close()
