"""Each token scheduling failure mode in `scenarios/` replayed against the real stack, with the
invariants every run must keep and what each scenario must show on top.

Invariants (all scenarios):
- no run raised, and the three token counts agree (simulator, runs table, TokenManager);
- no 429 storm: at most one 429 per drift that hid a deficit from the TokenManager;
- the balance after every charge stays at or above the floor, less what Keepa charged
  beyond its estimates (the deep-deficit scenario's surprises);
- no deal the tasks read is lost; every class is granted, and its longest wait stays
  within the bound status() computes, widened by what the scenario does on Keepa's
  side (see `wait_allowance_s`);
- with a backlog, at least 80 % of the tokens Keepa supplied are spent.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from keepa_deals.config import Settings
from keepa_deals.virtual_time.options import build_settings
from keepa_deals.virtual_time.scenario import Scenario, load_scenario
from tests.virtual_time.conftest import SCENARIOS, Simulate

Report = dict[str, Any]
FILES = sorted([*SCENARIOS.glob("*.json"), *SCENARIOS.glob("*.toml")])
TICK_S = 60  # Keepa refills once a minute: a computed wait ends on a tick


def test_there_is_one_scenario_per_failure_mode() -> None:
    assert {path.stem for path in FILES} == set(SPECIFIC)


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_scenario(path: Path, simulate: Simulate) -> None:
    scenario = load_scenario(path)
    settings = build_settings([scenario.settings])
    report = simulate(scenario=scenario)
    check_invariants(report, scenario, settings)
    SPECIFIC[scenario.name](report, scenario, settings)


def check_invariants(report: Report, scenario: Scenario, settings: Settings) -> None:
    assert report["events_not_reached"] == 0
    assert report["runs"]["errors"] == 0, report["runs"]["error_samples"]
    assert report["cross_check"]["agree"], report["cross_check"]
    hidden_deficits = sum(1 for e in scenario.events if (e.drift_tokens or 0) < 0)
    assert report["http_429"] <= hidden_deficits, "a 429 the TokenManager could have avoided"
    floor = settings.deficit_floor
    largest = max(report["largest_grant_by_class"].values())
    surprise = round((scenario.max_cost_factor - 1) * largest)
    assert report["min_balance"] >= floor - surprise
    assert report["deals_lost"] == 0, report["lost_examples"]
    assert report["deals_evaluated"] > 0
    for cls in ("upsert", "backfill"):
        assert report["grants_by_class"][cls] > 0, f"{cls} was never granted"
        assert report["wait_bound_s_by_class"][cls] is not None, f"{cls} is unbounded"
        waited_s = report["longest_wait_s_by_class"][cls]
        allowance_s = wait_allowance_s(report, scenario, settings, cls)
        # Whatever the beat period: a run that stopped for tokens keeps its class's
        # demand alive until the next run (Settings.effective_demand_ttl_s).
        assert waited_s <= allowance_s, (cls, waited_s, allowance_s)
    if report["backlog_hours"] >= 1:
        assert report["utilization_backlog"] >= 0.8


def period_s(settings: Settings, cls: str) -> int:
    return settings.upsert_every_s if cls == "upsert" else settings.backfill_every_s


def wait_allowance_s(report: Report, scenario: Scenario, settings: Settings, cls: str) -> float:
    """status()'s bound assumes grants cost what they were estimated at, a balance no
    lower than the floor, and a class that asks continuously. Widened by:
    - the cost factor: a class's credit is spent at the estimate, so when Keepa charges k
      times as much, every token the bound counts can cost k;
    - the recovery from a balance below the floor (a drift, or a surprise) at the
      slowest rate of the run;
    - the class's own beat period (it asks only when beat runs it), its inline wait,
      and one refill tick."""
    bound_s = float(report["wait_bound_s_by_class"][cls]) * scenario.max_cost_factor
    lowest: int | None = report["min_balance_any"]
    below_floor = max(0, settings.deficit_floor - lowest) if lowest is not None else 0
    rates: list[int] = [report["refill_rate"], *(e.set_plan for e in scenario.events if e.set_plan)]
    recovery_s = below_floor * TICK_S / min(rates)
    return bound_s + recovery_s + period_s(settings, cls) + settings.harvest_inline_wait_s + TICK_S


# --- what each scenario must show on top -----------------------------------------------


def deadlock_480(report: Report, scenario: Scenario, settings: Settings) -> None:
    """Failure mode "unreachable wait": the settings behind a 480-token wait are refused at
    start-up, and a 480-token demand is sized to what the TokenManager admits."""
    assert len(report["refused"]) == len(scenario.refuse) == 3
    for refusal in report["refused"]:
        assert "capacity" in refusal["refused"] and "300" in refusal["refused"]
    ceiling = settings.plan_capacity - settings.deficit_floor  # 300 + 100: the most admitted
    largest = report["largest_grant_by_class"]
    assert max(largest.values()) <= ceiling
    # Batches above the default 10 products (120 tokens) formed and were admitted.
    assert max(largest.values()) > 12 * 10
    assert report["min_balance"] >= settings.deficit_floor
    assert report["deals_accepted"] >= 20


def livelock_150_vs_50(report: Report, scenario: Scenario, settings: Settings) -> None:
    """Failure mode "starved class": the backfiller waits for 150 while an every-minute upserter at
    50 would spend every refill; its share still gets it granted, every hour."""
    by_class = report["tokens_spent_by_class"]
    share = settings.min_share_backfill * report["tokens_refilled"]
    assert by_class["backfill"] >= 0.75 * share
    assert by_class["upsert"] > by_class["backfill"]  # priority still holds
    assert all(h["spent_by_class"]["backfill"] > 0 for h in report["hourly"])
    assert report["runs"]["count"]["upsert"] == 60 * report["hours"]


def upsert_every_minute(report: Report, scenario: Scenario, settings: Settings) -> None:
    """An upserter every minute reads one page a run (the watermark stops it) and never
    draws a 429; every deal it reads is answered within minutes."""
    runs = report["runs"]["count"]["upsert"]
    assert runs == 60 * report["hours"]
    # One 5-token page a run, plus the backfiller's pass over the query's few pages.
    assert report["tokens_spent_by_stage"]["discovery"] <= 5 * (runs + 5)
    assert report["http_429"] == 0
    assert report["deals_pending"] == 0
    assert report["freshness_p95_s"] <= 3 * settings.upsert_every_s


def plan_upgrade(report: Report, scenario: Scenario, settings: Settings) -> None:
    """Failure mode "a refill rate fixed in code": after the upgrade the TokenManager follows
    Keepa's rate and capacity, and the larger budget is spent on the backlog."""
    manager = report["token_manager"]
    assert (manager["rate_per_min"], manager["capacity"]) == (25, 1500)
    upgraded_h = next(e.at_s for e in scenario.events if e.set_plan) / 3600
    full_hours = [h for h in report["hourly"] if h["hour"] - 1 >= upgraded_h]
    assert full_hours
    # Over the full hours together, not each alone: the upserter's demand outlives its
    # stopped runs, so after the upgrade the backfiller leaves it a reserve at the new
    # scale once (a level banked, not a rate lost: nothing is lost to the cap).
    spent = sum(h["tokens_spent"] for h in full_hours)
    assert spent >= 0.9 * 25 * 60 * len(full_hours), full_hours
    for hour in full_hours:
        assert hour["tokens_spent"] >= 0.8 * 25 * 60, hour
        assert hour["tokens_lost_to_cap"] == 0
    assert report["hourly"][0]["tokens_spent"] <= 300 + 5 * 60  # a full bucket + an hour


def recharge_drifted(report: Report, scenario: Scenario, settings: Settings) -> None:
    """Failure mode "recharge with no exit": with Keepa's balance moved behind its back, recharge is
    entered and always left (by refill or timeout), and the backfiller works again afterwards."""
    drifts = [e["drift_tokens"] for e in report["events"]]
    assert drifts[0]["to"] < 0 < drifts[1]["to"]
    assert report["min_balance_any"] == drifts[0]["to"]
    entries = report["recharge_entries"]
    assert entries >= 1
    # Each recharge ends by its timeout at the latest (+ one sample interval).
    assert report["recharge_time_s"] <= entries * (
        settings.recharge_timeout_s + settings.backfill_every_s
    )
    assert report["recharge_last_exit"] in ("refilled", "timeout")
    last_hours = report["hourly"][-2:]
    assert all(h["spent_by_class"]["backfill"] > 0 for h in last_hours)
    assert report["token_manager"]["estimate_error_max"] >= 250  # the drift was real


def deep_deficit(report: Report, scenario: Scenario, settings: Settings) -> None:
    """Failure mode "deep deficit": when answers cost three times their estimate, no request starts
    from a balance Keepa would refuse, the TokenManager learns every real cost, and the budget
    recovers once costs are back to normal."""
    assert report["http_429"] == 0
    # Its own lowest estimate is Keepa's lowest balance: it learnt each real charge.
    assert report["token_manager"]["min_estimate"] == report["min_balance"]
    assert report["min_balance"] < settings.deficit_floor + 60  # the surprises bit
    restored_h = max(e.at_s for e in scenario.events) / 3600
    after = [h for h in report["hourly"] if h["hour"] - 1 >= restored_h]
    assert after and all(h["accepted"] > 0 for h in after)
    assert report["balance_end"] is not None and report["balance_end"] > settings.deficit_floor


SPECIFIC: dict[str, Callable[[Report, Scenario, Settings], None]] = {
    "480-deadlock": deadlock_480,
    "150-vs-50-livelock": livelock_150_vs_50,
    "upsert-every-minute": upsert_every_minute,
    "plan-upgrade-5-to-25": plan_upgrade,
    "recharge-drifted-count": recharge_drifted,
    "deep-deficit-surprises": deep_deficit,
}
