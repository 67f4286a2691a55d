"""The report of a simulation as one JSON-able dict (the keys are listed in the package
docstring).

Token figures are the simulator's own accounting (its bucket and counters): what Keepa
would have refilled, charged, thrown away at the cap and refused with 429. The `runs`
table, which the tasks write from Keepa's `tokensConsumed`, and the TokenManager's
per-class totals are checked against them in `cross_check`.
"""

from __future__ import annotations

import itertools
import math
import sqlite3
from collections.abc import Sequence
from typing import Any

from keepa_deals.config import Settings
from keepa_deals.virtual_time.runner import RunRecord, SimulationResult
from keepa_deals.virtual_time.sampling import Sample

CLASSES = ("upsert", "backfill")


def build_report(result: SimulationResult, conn: sqlite3.Connection) -> dict[str, Any]:
    totals, outcomes = result.totals, result.outcomes
    by_class = {c: sum(r.tokens_charged for r in result.runs if r.task == c) for c in CLASSES}
    by_stage = _stage_tokens(conn)
    backlog = backlog_window(result.samples)
    status = result.final_status
    accepted = sum(r.accepted for r in result.runs)
    rejected = int(conn.execute("SELECT COALESCE(SUM(deals_rejected), 0) FROM runs").fetchone()[0])
    return {
        "hours": result.hours,
        "wall_s": round(result.wall_s, 1),
        "tokens_refilled": totals.refilled,
        "tokens_spent": totals.charged,
        "tokens_spent_by_class": by_class,
        "tokens_spent_by_stage": by_stage,
        "tokens_lost_to_cap": totals.lost_to_cap,
        "utilization": _ratio(totals.charged, totals.refilled),
        "utilization_backlog": backlog["utilization"],
        "backlog_hours": backlog["hours"],
        "http_429": totals.rejected_429,
        "min_balance": result.min_balance,
        "min_balance_any": result.min_balance_any,
        "balance_end": totals.balance,
        "deals_published": outcomes.published,
        "deals_seen": outcomes.seen,
        "deals_evaluated": outcomes.evaluated,
        "deals_accepted": accepted,
        "deals_rejected": rejected,
        "deals_pending": outcomes.pending,
        "deals_lost": outcomes.lost,
        "deals_unseen": outcomes.unseen,
        "lost_examples": [list(x) for x in outcomes.lost_examples],
        "accepted_per_hour": round(accepted / result.hours, 2),
        "accepted_per_hour_backlog": backlog["accepted_per_hour"],
        "longest_wait_s_by_class": {
            c: round(result.waits[c].longest_s(result.end_s), 1) for c in CLASSES
        },
        "longest_wait_began_at_h_by_class": {
            c: _offset_h(result.waits[c].longest(result.end_s)[1], result.start_s) for c in CLASSES
        },
        "wait_bound_s_by_class": {
            c: None if c in result.unbounded else result.wait_bound_s.get(c) for c in CLASSES
        },
        "grants_by_class": {c: result.waits[c].grants for c in CLASSES},
        "largest_grant_by_class": {c: result.waits[c].largest_grant for c in CLASSES},
        "freshness_p50_s": percentile(outcomes.freshness_s, 0.50),
        "freshness_p95_s": percentile(outcomes.freshness_s, 0.95),
        "freshness_max_s": max(outcomes.freshness_s, default=None),
        "recharge_time_s": round(result.recharge_time_s, 1),
        "recharge_entries": status.get("recharge", {}).get("entries", 0),
        "recharge_last_exit": status.get("recharge", {}).get("last_exit"),
        "runs": _runs(result),
        "events": [
            {"at_h": e.at_s / 3600, "applied_at_h": round(e.applied_s / 3600, 4), **e.actions}
            for e in result.events
        ],
        "events_not_reached": result.events_not_reached,
        "hourly": hourly(result),
        "token_manager": {
            "state": status.get("state"),
            "rate_per_min": status.get("rate_per_min"),
            "capacity": status.get("capacity"),
            "floor": status.get("floor"),
            "balance_estimate": status.get("balance"),
            "min_estimate": status.get("min_balance"),
            "estimate_error_max": result.estimate_error_max,
        },
        "cross_check": _cross_check(result, by_class, by_stage, status),
    }


def run_settings(settings: Settings) -> dict[str, Any]:
    """The settings a run used that matter to it, for the report's header."""
    return {
        "UPSERT_EVERY_S": settings.upsert_every_s,
        "BACKFILL_EVERY_S": settings.backfill_every_s,
        "TOKEN_THRESHOLD_UPSERT": settings.threshold_upsert,
        "TOKEN_THRESHOLD_BACKFILL": settings.threshold_backfill,
        "TOKEN_MIN_SHARE_BACKFILL": settings.min_share_backfill,
        "TOKEN_DEFICIT_FLOOR": settings.deficit_floor,
        "HARVEST_COMMIT_BATCH": settings.harvest_commit_batch,
        "HARVEST_INLINE_WAIT_S": settings.harvest_inline_wait_s,
    }


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (None for no values)."""
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[max(0, math.ceil(q * len(ordered)) - 1)], 1)


def backlog_window(samples: Sequence[Sample]) -> dict[str, Any]:
    """Intervals between samples with deals pending at both ends. Utilization here is
    tokens spent / tokens supplied (refilled + lost to the cap): with work waiting,
    every token Keepa hands out should be spent, and one lost to a full bucket counts
    as unused. What was neither spent nor lost is still in the bucket at the window's
    end (`balance_change`), which bounds how far a short window can be from the long
    run."""
    spent = supplied = lost = accepted = balance_change = 0
    seconds = 0.0
    for before, after in itertools.pairwise(samples):
        if before.pending > 0 and after.pending > 0:
            d = after.totals.minus(before.totals)
            spent += d.charged
            supplied += d.refilled + d.lost_to_cap
            lost += d.lost_to_cap
            accepted += after.accepted - before.accepted
            balance_change += (after.totals.balance or 0) - (before.totals.balance or 0)
            seconds += after.at_s - before.at_s
    hours = seconds / 3600
    return {
        "hours": round(hours, 2),
        "utilization": _ratio(spent, supplied),
        "accepted_per_hour": round(accepted / hours, 2) if hours else None,
        "spent": spent,
        "supplied": supplied,
        "lost_to_cap": lost,
        "balance_change": balance_change,
        "accepted": accepted,
        "seconds": seconds,
    }


def hourly(result: SimulationResult) -> list[dict[str, Any]]:
    """Per simulated hour: tokens (simulator), spent by class (runs started in it),
    accept verdicts, and the backlog at its end."""
    out: list[dict[str, Any]] = []
    previous: Sample | None = None
    for hour in range(1, math.ceil(result.hours) + 1):
        end_s = min(hour * 3600.0, result.hours * 3600)
        upto = [s for s in result.samples if s.at_s <= end_s]
        if not upto:
            continue
        last = upto[-1]
        d = last.totals if previous is None else last.totals.minus(previous.totals)
        runs = [r for r in result.runs if (hour - 1) * 3600 <= r.started_s < hour * 3600]
        out.append(
            {
                "hour": hour,
                "tokens_spent": d.charged,
                "tokens_refilled": d.refilled,
                "tokens_lost_to_cap": d.lost_to_cap,
                "spent_by_class": {
                    c: sum(r.tokens_charged for r in runs if r.task == c) for c in CLASSES
                },
                "accepted": last.accepted - (previous.accepted if previous else 0),
                "pending_at_end": last.pending,
                "http_429": d.rejected_429,
            }
        )
        previous = last
    return out


def _runs(result: SimulationResult) -> dict[str, Any]:
    reasons: dict[str, dict[str, int]] = {c: {} for c in CLASSES}
    for r in result.runs:
        reasons[r.task][r.stop_reason] = reasons[r.task].get(r.stop_reason, 0) + 1
    errors: list[RunRecord] = [r for r in result.runs if r.error is not None]
    return {
        "count": {c: sum(1 for r in result.runs if r.task == c) for c in CLASSES},
        "stop_reasons": reasons,
        "errors": len(errors),
        "error_samples": [f"{r.task} at {r.started_s / 3600:.2f} h: {r.error}" for r in errors[:5]],
        "ticks_skipped": result.ticks_skipped,
    }


def _stage_tokens(conn: sqlite3.Connection) -> dict[str, int]:
    row = conn.execute(
        "SELECT COALESCE(SUM(tokens_discovery), 0), COALESCE(SUM(tokens_peek), 0),"
        " COALESCE(SUM(tokens_commit), 0) FROM runs"
    ).fetchone()
    return {"discovery": int(row[0]), "peek": int(row[1]), "commit": int(row[2])}


def _cross_check(
    result: SimulationResult,
    by_class: dict[str, int],
    by_stage: dict[str, int],
    status: dict[str, Any],
) -> dict[str, Any]:
    """The same tokens counted three ways. They differ only when Keepa charged a
    request whose answer never arrived (a timeout or a garbled body): the runs table
    cannot know what it cost, and the TokenManager keeps its estimate."""
    endpoints = result.sim_state.get("endpoints", {})
    deal_tokens = int(endpoints.get("deal", {}).get("tokens", 0))
    product_tokens = int(endpoints.get("product", {}).get("tokens", 0))
    manager = {
        c: int(info.get("tokens_granted_total", 0)) for c, info in status.get("classes", {}).items()
    }
    runs_total = sum(by_stage.values())
    return {
        "simulator_charged": result.totals.charged,
        "simulator_by_endpoint": {"deal": deal_tokens, "product": product_tokens},
        "runs_table_total": runs_total,
        "runs_table_by_stage": by_stage,
        "token_manager_by_class": manager,
        "agree": runs_total == result.totals.charged
        and by_stage["discovery"] == deal_tokens
        and by_stage["peek"] + by_stage["commit"] == product_tokens
        and all(manager.get(c) == by_class[c] for c in CLASSES),
    }


def _offset_h(at_s: float | None, start_s: float) -> float | None:
    return None if at_s is None else round((at_s - start_s) / 3600, 3)


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None
