"""How runs and the service behave: run lengths, time scale, beat periods, limits."""

from __future__ import annotations

from dataclasses import dataclass

from keepa_deals.settings.evaluation import EvaluationSettings
from keepa_deals.settings.parsers import integer, number, setting


@dataclass(frozen=True, repr=False)
class RuntimeSettings(EvaluationSettings):
    harvest_inline_wait_s: float = setting(
        "HARVEST_INLINE_WAIT_S",
        20.0,
        number(0, 300),
        "Longest a run waits inline for tokens (the TokenManager computes the wait); a "
        "longer wait ends the run, and the next scheduled run carries on.",
    )
    harvest_max_run_s: int = setting(
        "HARVEST_MAX_RUN_S",
        600,
        integer(10, 86_400),
        "A run ends after this long even with work and tokens left, so every run ends "
        "(keep it below TASK_SOFT_TIME_LIMIT_S).",
    )
    harvest_commit_batch: int = setting(
        "HARVEST_COMMIT_BATCH",
        10,
        integer(1, 100),
        "Most products per stage-2 request (history + offers=20: up to 12 tokens each).",
    )
    upsert_first_lookback_s: int = setting(
        "UPSERT_FIRST_LOOKBACK_S",
        3600,
        integer(0, 43_200),
        "With no watermark yet, the upserter takes deals this recent only; older ones "
        "are left to the backfiller.",
    )
    backfill_pass_pause_s: int = setting(
        "BACKFILL_PASS_PAUSE_S",
        21_600,
        integer(0, 86_400),
        "After a pass over every page of the deal query, the backfiller waits this long "
        "before it starts again at page 0 (each page costs 5 tokens; 0: at once).",
    )
    time_scale: float = setting(
        "KEEPA_TIME_SCALE",
        1.0,
        number(1, 10_000),
        "Simulator only: service time runs this many times faster than the wall clock "
        "(token refills, beat, lock TTLs, waits). Must match the simulator's.",
    )
    time_origin_s: float = setting(
        "KEEPA_TIME_ORIGIN_S",
        0.0,
        number(0),
        "Simulator only: the wall moment (unix s) where scaled time starts, shared by "
        "every process and the simulator. Required when KEEPA_TIME_SCALE is not 1.",
    )
    upsert_every_s: int = setting(
        "UPSERT_EVERY_S",
        900,
        integer(5, 86_400),
        "Beat runs the upserter this often.",
    )
    backfill_every_s: int = setting(
        "BACKFILL_EVERY_S",
        60,
        integer(5, 86_400),
        "Beat runs the backfiller this often.",
    )
    worker_concurrency: int = setting(
        "WORKER_CONCURRENCY",
        2,
        integer(1, 64),
        "Celery worker processes (one per queue is enough: each task runs once at a time).",
    )
    task_soft_time_limit_s: int = setting(
        "TASK_SOFT_TIME_LIMIT_S",
        900,
        integer(10),
        "A run is asked to stop (and saves its progress) after this long.",
    )
    task_time_limit_s: int = setting(
        "TASK_TIME_LIMIT_S",
        1020,
        integer(20),
        "A run is killed after this long (its lock then expires within LOCK_TTL_S).",
    )
    lock_ttl_s: int = setting(
        "LOCK_TTL_S",
        60,
        integer(3, 3600),
        "Task lock lifetime, renewed every third of it while the run lives.",
    )

    @property
    def effective_demand_ttl_s(self) -> int:
        """How long a class's last ask keeps it waiting, as the TokenManager applies it.

        A run that cannot get its tokens soon stops, and beat brings the next one a
        period later. Were the demand to lapse in between, the other class would stop
        yielding for the rest of the period and the stopped class's wait would outgrow
        the starvation bound status() reports (which assumes a class that keeps asking).
        So the demand outlives the gap between two runs' asks: one period, plus a
        minute for beat's tick and the queue.
        """
        longest_period_s = max(self.upsert_every_s, self.backfill_every_s)
        return max(self.demand_ttl_s, longest_period_s + 60)
