"""A simulation end to end: its report adds up, replays exactly, and catches a loss."""

from __future__ import annotations

from keepa_deals.config import Settings
from keepa_deals.infra.redis_server import RedisServerProcess
from keepa_deals.keepa.keepa_time import keepa_minutes_to_unix_s
from keepa_deals.virtual_time.runner import Simulation
from keepa_deals.virtual_time.scenario import parse_scenario
from keepa_deals.virtual_time.stack import START_S, SimulationStack
from tests.virtual_time.conftest import FEE_FREE, Simulate

REQUIRED_KEYS = {
    "tokens_refilled",
    "tokens_spent",
    "tokens_spent_by_class",
    "tokens_spent_by_stage",
    "tokens_lost_to_cap",
    "utilization",
    "http_429",
    "min_balance",
    "deals_published",
    "deals_evaluated",
    "deals_accepted",
    "deals_pending",
    "deals_lost",
    "longest_wait_s_by_class",
    "freshness_p50_s",
    "freshness_p95_s",
    "recharge_time_s",
}


def test_the_report_has_every_key_and_its_accounts_balance(simulate: Simulate) -> None:
    report = simulate(hours=2, catalogue_size=2000)
    assert set(report) >= REQUIRED_KEYS
    # Keepa refilled 5 tokens a minute for 120 minutes: kept or lost to the full bucket.
    assert report["tokens_refilled"] + report["tokens_lost_to_cap"] == 600
    spent = report["tokens_spent"]
    assert spent == sum(report["tokens_spent_by_class"].values())
    assert spent == sum(report["tokens_spent_by_stage"].values())
    assert report["cross_check"]["agree"] is True
    assert report["utilization"] == round(spent / report["tokens_refilled"], 4)
    deals = ("deals_evaluated", "deals_pending", "deals_lost", "deals_unseen")
    assert report["deals_published"] == sum(report[k] for k in deals)
    assert report["deals_published"] > 10
    assert report["deals_lost"] == 0
    # Beat's rhythm: the upserter at 0, 15, ..., 105 min; the backfiller every minute.
    assert report["runs"]["count"] == {"upsert": 8, "backfill": 120}
    assert report["runs"]["errors"] == 0
    assert report["http_429"] == 0
    assert report["freshness_p50_s"] is not None
    assert report["freshness_p50_s"] <= report["freshness_p95_s"] <= report["freshness_max_s"]
    assert [h["hour"] for h in report["hourly"]] == [1, 2]
    assert sum(h["tokens_spent"] for h in report["hourly"]) == spent


def test_the_same_seed_replays_the_same_run(simulate: Simulate) -> None:
    first = simulate(hours=1.5, catalogue_size=2000, seed=4)
    second = simulate(hours=1.5, catalogue_size=2000, seed=4)
    other = simulate(hours=1.5, catalogue_size=2000, seed=5)
    for report in (first, second, other):
        report.pop("wall_s")
    assert first == second
    assert other["deals_published"] != first["deals_published"]


def test_scenario_events_apply_at_their_offsets(simulate: Simulate) -> None:
    scenario = parse_scenario(
        {
            "settings": FEE_FREE,
            "events": [
                {"at_h": 0.5, "set_plan": 10},
                {"at_h": 1, "faults": {"storm_429": 2}},
                {"at_h": 1.5, "clear_faults": True, "drift_tokens": -100},
                {"at_h": 9, "set_plan": 20},
            ],
        },
        name="events",
    )
    report = simulate(hours=2, catalogue_size=2000, scenario=scenario)
    applied = [(e["at_h"], e["applied_at_h"]) for e in report["events"]]
    assert applied == [(0.5, 0.5), (1.0, 1.0), (1.5, 1.5)]
    assert report["events"][2]["clear_faults"] is True
    assert report["events"][2]["drift_tokens"]["by"] == -100
    assert report["events_not_reached"] == 1
    assert report["token_manager"]["rate_per_min"] == 10
    # The storm's two 429s (and any a drift causes) stop runs; none is an error.
    assert report["http_429"] >= 2
    stops = report["runs"]["stop_reasons"]
    assert stops["upsert"].get("http_429", 0) + stops["backfill"].get("http_429", 0) >= 2
    assert report["runs"]["errors"] == 0
    assert report["deals_lost"] == 0


def test_a_pending_deal_removed_without_an_answer_is_counted_lost(
    redis_server: RedisServerProcess,
) -> None:
    """The tracker is not vacuous: a deal that leaves `pending` with no verdict anywhere
    (failure mode "skipping watermark"'s watermark skipping) is reported lost."""
    settings = Settings().with_overrides(FEE_FREE)
    with SimulationStack.start(
        settings,
        refill_rate=5,
        seed=2,
        catalogue_size=2000,
        deal_rate=4,  # more deals than an hour of tokens evaluates: some stay pending
        redis_url=redis_server.url,
    ) as stack:
        simulation = Simulation(stack, hours=1)
        simulation.run()
        published = stack.sim.deals_published(stack.ctx.selection, START_S, stack.clock.now())
        conn = stack.ctx.conn
        unanswered = {
            asin: created_s
            for asin, created_s in conn.execute(
                "SELECT asin, deal_created_s FROM pending"
                " WHERE asin NOT IN (SELECT asin FROM rejections)"
                " AND asin NOT IN (SELECT asin FROM deals WHERE status <> 'candidate')"
            )
        }
        victims = [a for a, m in published if unanswered.get(a) == keepa_minutes_to_unix_s(m)]
        assert victims, "the hour must leave published deals pending"
        before = simulation.tracker.outcomes(published)
        conn.execute("DELETE FROM pending WHERE asin = ?", (victims[0],))
        simulation.tracker.run_ended(stack.clock.now())
        after = simulation.tracker.outcomes(published)
    assert before.lost == 0
    assert after.lost == 1
    assert after.pending == before.pending - 1
    assert after.lost_examples[0][0] == victims[0]
