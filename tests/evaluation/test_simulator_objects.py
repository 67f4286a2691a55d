"""Evaluation of the Keepa simulator's real product and deal objects."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from keepa_deals.evaluation.stages import (
    commit,
    parse_deal,
    peek,
    screen_deal,
)
from keepa_deals.evaluation.verdicts import (
    Accepted,
    Rejected,
    Stage,
)
from keepa_deals.infra.clock import ManualClock
from keepa_deals.keepa.client import KeepaClient
from keepa_deals.keepa_sim import KeepaSimulator
from tests.support.keepa_objects import S

# --- the simulator's own objects ----------------------------------------------------------


@pytest.fixture(scope="module")
def client() -> Iterator[KeepaClient]:
    sim = KeepaSimulator(seed=7, refill_rate=100_000, clock=ManualClock(1_767_225_600.0))
    sim.start()
    keepa = KeepaClient("evaluatetestkey0001", sim.url)
    try:
        yield keepa
    finally:
        keepa.session.close()
        sim.stop()


def test_the_simulators_deals_and_products_go_through_every_stage(client: KeepaClient) -> None:
    selection = json.loads(S.deal_query_path.read_text())
    deals: list[dict[str, Any]] = []
    for page in range(20):
        found = client.deals({**selection, "page": page}).deals
        deals += found
        if len(found) < 150:
            break
    verdicts: Counter[tuple[str, str]] = Counter()
    survivors = []
    for record in deals:
        screened = screen_deal(parse_deal(record), S)
        if screened is None:
            survivors.append(record["asin"])
        else:
            verdicts[(screened.stage, screened.reason)] += 1
    committed = []
    for start in range(0, len(survivors), 100):
        for p in client.products(survivors[start : start + 100], stats=90, history=False).products:
            assert p["csv"] is None  # history=0 keeps csv as null: parsed all the same
            peeked = peek(p, S)
            if isinstance(peeked, Rejected):
                verdicts[(peeked.stage, peeked.reason)] += 1
            else:
                committed.append(p["asin"])
    accepted: list[Accepted] = []
    for start in range(0, len(committed), 20):
        batch = committed[start : start + 20]
        for p in client.products(batch, stats=90, offers=20).products:
            final = commit(p, S)
            if isinstance(final, Rejected):
                verdicts[(final.stage, final.reason)] += 1
            else:
                accepted.append(final)
    assert sum(verdicts.values()) + len(accepted) == len(deals) > 500
    # Most deals are ruled out for free (failure mode: paying to reject), and some survive to be
    # accepted.
    free = sum(n for (stage, _), n in verdicts.items() if stage == Stage.FREE)
    assert free > 0.8 * len(deals)
    assert any(stage == Stage.COMMIT for stage, _ in verdicts) and accepted
    for a in accepted:
        e = a.economics
        assert e.profit_cents == e.sell_price_cents - e.buy_price_cents - e.fees.fees_cents
        assert e.profit_cents >= S.min_profit_cents and e.roi_bps >= S.min_roi_percent * 100
        assert a.facts.title and a.facts.sales_rank and a.facts.avg90_price_cents
