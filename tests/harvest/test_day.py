"""A simulated day at 5 tokens a minute: the upserter every 15 minutes, the backfiller
every minute, as beat runs them. Every deal published during the day that was on the
deal pages when the upserter looked ends up evaluated (a deal row, a rejection, a
quarantine) or pending; none twice; and the runs account for every token Keepa charged."""

from __future__ import annotations

from tests.support.harness import (
    START_S,
    HarnessFactory,
    accounted_asins,
    all_accounted,
    observable,
    run_tokens,
)

DAY_MIN = 24 * 60


def test_deals_published_during_a_day_all_end_up_evaluated_or_pending(
    make_harness: HarnessFactory,
) -> None:
    h = make_harness(catalogue_size=5000, query={"singleVariation": False})
    looks: list[float] = []
    watermarks: list[int] = []
    for minute in range(DAY_MIN + 1):
        h.at(minute * 60)
        if minute % 15 == 0:
            looked_at = h.clock.now()
            upsert = h.upsert()
            assert upsert.stop_reason in ("done", "tokens"), upsert
            if upsert.watermark_s is not None and (
                not watermarks or upsert.watermark_s > watermarks[-1]
            ):
                looks.append(looked_at)
                watermarks.append(upsert.watermark_s)
        backfill = h.backfill()
        assert backfill.stop_reason in ("done", "tokens"), backfill
    assert len(looks) > 80  # the watermark moved nearly every run
    published = observable(h, START_S, looks[-1], looks)
    assert len(published) > 200
    where = accounted_asins(h.conn)
    assert not published - all_accounted(h.conn)
    evaluated = where["deals"] | where["rejections"] | where["quarantine"]
    assert len(published & evaluated) >= 0.95 * len(published)
    charged = h.endpoint_tokens()
    tokens = run_tokens(h.conn)
    assert tokens["discovery"] == charged["deal"]
    assert tokens["peek"] + tokens["commit"] == charged["product"]
