"""What deals cost: cheap checks first and the heavy fetch only for survivors (failure mode: paying
to reject), and every token a run reports is a token Keepa charged."""

from __future__ import annotations

from keepa_deals.store import recent_runs
from tests.support.harness import Harness, HarnessFactory, run_tokens


def _day_part(h: Harness, hours: int) -> None:
    """The service's rhythm: the upserter every 15 minutes, the backfiller every minute."""
    for minute in range(hours * 60):
        h.at(minute * 60)
        if minute % 15 == 0:
            h.upsert()
        h.backfill()


def test_a_deal_the_peek_rules_out_never_takes_the_heavy_path(
    make_harness: HarnessFactory,
) -> None:
    # Every product fails stage 1 (too few sales): nothing may reach stage 2.
    h = make_harness(min_rank_drops_90=1_000_000, min_percent_drop=0, min_profit_cents=0)
    h.upsert()
    h.backfill()
    tokens = run_tokens(h.conn)
    assert tokens["commit"] == 0 and tokens["peek"] > 0
    stages = dict(
        h.conn.execute("SELECT stage, SUM(tokens_spent) FROM rejections GROUP BY stage").fetchall()
    )
    peeked = h.conn.execute("SELECT COUNT(*) FROM rejections WHERE stage = 'peek'").fetchone()[0]
    assert stages.get("free", 0) == 0 and stages["peek"] == peeked  # one token each
    assert h.endpoint_tokens()["product"] == tokens["peek"]


def test_rejected_deals_cost_at_most_1_2_tokens_on_average(
    make_harness: HarnessFactory,
) -> None:
    h = make_harness(catalogue_size=30_000)
    _day_part(h, 3)
    conn = h.conn
    rejected, spent = conn.execute(
        "SELECT COALESCE(SUM(times), 0), COALESCE(SUM(tokens_spent), 0) FROM rejections"
    ).fetchone()
    accepted = conn.execute("SELECT COUNT(*) FROM deals WHERE status = 'accepted'").fetchone()[0]
    tokens = run_tokens(conn)
    discovery_share = tokens["discovery"] * rejected / (rejected + accepted)
    assert rejected > 500
    assert (spent + discovery_share) / rejected <= 1.2
    # Stage 2 ran only for what stage 1 let through: each commit ends in a verdict.
    runs = recent_runs(conn, limit=10_000)
    committed = sum(r.deals_committed for r in runs)
    commit_rejections = conn.execute(
        "SELECT COUNT(*) FROM rejections WHERE stage = 'commit'"
    ).fetchone()[0]
    assert committed == accepted + commit_rejections + sum(r.deals_failed for r in runs)
    free = conn.execute("SELECT MAX(tokens_spent) FROM rejections WHERE stage = 'free'")
    assert free.fetchone()[0] == 0
    peek = conn.execute(
        "SELECT MIN(tokens_spent), MAX(tokens_spent) FROM rejections WHERE stage = 'peek'"
    ).fetchone()
    assert peek[0] is None or tuple(peek) == (1, 1)


def test_tokens_reported_by_stage_are_exactly_what_keepa_charged(
    make_harness: HarnessFactory,
) -> None:
    h = make_harness(deal_rate=2.0, min_percent_drop=10, min_profit_cents=100)
    for n in range(12):
        h.at(n * 600)
        if n == 3:
            h.sim.set_faults({"storm_429": 1})
        if n == 6:
            h.sim.set_faults({"drop_products_rate": 0.3, "offers_fail_rate": 0.3})
        if n == 9:
            h.sim.set_faults({"error_5xx_next": 1, "endpoints": ["product"]})
        upsert = h.upsert()
        assert n != 3 or upsert.stop_reason == "http_429"
        h.backfill()
        h.sim.clear_faults()
    charged = h.endpoint_tokens()
    reported = run_tokens(h.conn)
    assert reported["discovery"] == charged["deal"] > 0
    assert reported["peek"] + reported["commit"] == charged["product"] > 0
    assert h.sim.state()["totals"]["rejected_429"] == 1
