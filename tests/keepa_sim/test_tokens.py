"""Token accounting over real HTTP: costs, ticks, the cap, deficits, 429s, plan changes."""

from __future__ import annotations

import pytest

from keepa_deals.infra.clock import ManualClock
from tests.keepa_sim.conftest import USED_BOOKS, Api, SimFactory, catalogue_asins


def test_token_is_free_and_reports_a_full_bucket(api: Api) -> None:
    body = api.token()
    assert body["tokensLeft"] == 300
    assert body["tokensConsumed"] == 0
    assert body["refillRate"] == 5
    assert body["tokenFlowReduction"] == 0.0
    assert 0 <= body["refillIn"] < 60_000
    assert api.token()["tokensLeft"] == 300


def test_each_deal_page_costs_five(api: Api) -> None:
    for page, left in ((0, 295), (1, 290), (0, 285)):  # a cached page is charged too
        body = api.deal({**USED_BOOKS, "page": page}).json()
        assert (body["tokensConsumed"], body["tokensLeft"]) == (5, left)


def test_ticks_add_the_rate_every_minute_from_first_use(
    make_sim: SimFactory, clock: ManualClock
) -> None:
    sim = make_sim(initial_tokens=0)
    api = Api(sim.url)
    assert api.token()["tokensLeft"] == 0
    clock.advance(59)
    body = api.token()
    assert (body["tokensLeft"], body["refillIn"]) == (0, 1_000)
    clock.advance(1)
    assert api.token()["tokensLeft"] == 5
    clock.advance(60 * 10 + 30)
    body = api.token()
    assert (body["tokensLeft"], body["refillIn"]) == (55, 30_000)


def test_the_balance_is_capped_at_an_hour_of_refills(
    sim: object, api: Api, clock: ManualClock
) -> None:
    api.deal(USED_BOOKS)  # 295
    clock.advance(3600)
    assert api.token()["tokensLeft"] == 300
    state = api.admin("GET", "state").json()
    assert state["totals"]["tokens_refilled"] == 5
    assert state["totals"]["tokens_lost_to_cap"] == 295  # 60 ticks of 5, 5 fitted


def test_a_request_runs_at_any_positive_balance_and_may_go_negative(
    make_sim: SimFactory, clock: ManualClock
) -> None:
    sim = make_sim(initial_tokens=3)
    api = Api(sim.url)
    body = api.product(catalogue_asins(sim, 100)).json()
    assert (body["tokensConsumed"], body["tokensLeft"]) == (100, -97)
    assert len(body["products"]) == 100


def test_at_zero_or_below_paid_requests_get_429_and_nothing_is_charged(
    make_sim: SimFactory, clock: ManualClock
) -> None:
    sim = make_sim(initial_tokens=5)
    api = Api(sim.url)
    assert api.deal(USED_BOOKS).json()["tokensLeft"] == 0
    clock.advance(20)
    for response in (api.deal(USED_BOOKS), api.product(catalogue_asins(sim, 2))):
        assert response.status_code == 429
        body = response.json()
        assert body["error"]["type"] == "NOT_ENOUGH_TOKEN"
        assert (body["tokensLeft"], body["tokensConsumed"], body["refillIn"]) == (0, 0, 40_000)
        assert body["refillRate"] == 5
    assert api.token()["tokensLeft"] == 0  # /token is never refused
    clock.advance(40)
    assert api.deal(USED_BOOKS).status_code == 200
    state = sim.state()
    assert state["endpoints"]["deal"] == {"calls": 3, "tokens": 10, "rejected_429": 1, "errors": 0}
    assert state["endpoints"]["product"] == {
        "calls": 1,
        "tokens": 0,
        "rejected_429": 1,
        "errors": 0,
    }
    assert state["endpoints"]["token"]["calls"] == 1


def test_after_a_deficit_the_key_waits_for_refills(
    make_sim: SimFactory, clock: ManualClock
) -> None:
    sim = make_sim(initial_tokens=1)
    api = Api(sim.url)
    assert api.product(catalogue_asins(sim, 12)).json()["tokensLeft"] == -11
    clock.advance(120)
    assert api.deal(USED_BOOKS).status_code == 429  # -1
    clock.advance(60)
    assert api.deal(USED_BOOKS).json()["tokensLeft"] == -1  # 4 - 5


def test_each_key_has_its_own_bucket_and_tick_phase(
    sim: object, api: Api, clock: ManualClock
) -> None:
    api.deal(USED_BOOKS)
    clock.advance(30)
    other = api.get("token", key="another-key").json()
    assert (other["tokensLeft"], other["refillIn"]) == (300, 59_999)
    mine = api.token()
    assert (mine["tokensLeft"], mine["refillIn"]) == (295, 30_000)


def test_a_plan_change_takes_effect_at_once(sim: object, api: Api, clock: ManualClock) -> None:
    api.deal(USED_BOOKS)  # 295
    assert api.admin("POST", "plan", params={"refill_rate": 20}).status_code == 200
    body = api.token()
    assert (body["refillRate"], body["tokensLeft"]) == (20, 295)
    clock.advance(60)
    assert api.token()["tokensLeft"] == 315
    api.admin("POST", "plan", params={"refill_rate": 2})
    body = api.token()
    assert (body["refillRate"], body["tokensLeft"]) == (2, 120)
    state = api.admin("GET", "state").json()
    assert (state["refill_rate"], state["capacity"]) == (2, 120)
    assert state["totals"]["tokens_lost_to_cap"] == 195


def test_continuous_refill_adds_tokens_second_by_second(
    make_sim: SimFactory, clock: ManualClock
) -> None:
    sim = make_sim(refill_rate=6, refill_mode="continuous", initial_tokens=0)
    api = Api(sim.url)
    api.token()
    clock.advance(25)
    body = api.token()
    assert (body["tokensLeft"], body["refillIn"]) == (2, 5_000)
    clock.advance(35)
    assert api.token()["tokensLeft"] == 6


@pytest.mark.parametrize("mode", ["tick", "continuous"])
def test_concurrent_requests_are_accounted_exactly(make_sim: SimFactory, mode: str) -> None:
    from concurrent.futures import ThreadPoolExecutor

    sim = make_sim(initial_tokens=50, refill_mode=mode)
    clients = [Api(sim.url) for _ in range(20)]
    with ThreadPoolExecutor(max_workers=20) as pool:
        statuses = list(pool.map(lambda c: c.deal(USED_BOOKS).status_code, clients))
    assert sorted(statuses) == [200] * 10 + [429] * 10
    assert sim.state()["keys"][next(iter(sim.state()["keys"]))]["tokens_left"] == 0


def test_state_balance_includes_refills_since_the_last_request(
    make_sim: SimFactory, clock: ManualClock
) -> None:
    sim = make_sim(initial_tokens=0)
    api = Api(sim.url)
    try:
        api.token()  # the key exists with 0 tokens
        clock.advance(10 * 60)
        key = next(iter(sim.state()["keys"].values()))
        assert key["tokens_refilled"] == 50
        assert key["tokens_left"] == 50  # not the stale 0 of the last request
    finally:
        api.close()
