"""Options over the scenario over the defaults; settings checked as at start-up."""

from __future__ import annotations

import pytest

from keepa_deals.errors import ConfigError
from keepa_deals.keepa_sim import DEFAULT_CATALOGUE_SIZE
from keepa_deals.virtual_time.options import (
    DEFAULT_HOURS,
    SimulationOptions,
    build_settings,
    parse_assignments,
)
from keepa_deals.virtual_time.scenario import ScenarioError, parse_scenario


def test_assignments_split_on_the_first_equals_sign_and_the_last_wins() -> None:
    pairs = ["UPSERT_EVERY_S=60", "DEAL_QUERY_PATH=a=b.json", "UPSERT_EVERY_S=120"]
    assert parse_assignments(pairs) == {"UPSERT_EVERY_S": "120", "DEAL_QUERY_PATH": "a=b.json"}


@pytest.mark.parametrize("pair", ["UPSERT_EVERY_S", "=60", ""])
def test_an_assignment_without_a_name_and_value_is_refused(pair: str) -> None:
    with pytest.raises(ConfigError, match="must be NAME=VALUE"):
        parse_assignments([pair])


def test_unknown_names_and_bad_values_are_refused_as_at_start_up() -> None:
    with pytest.raises(ConfigError, match="not a keepa-deals setting"):
        build_settings([{"TOKEN_THRESHOLD_BACKFIL": "150"}])
    with pytest.raises(ConfigError, match="UPSERT_EVERY_S=often: must be a whole number"):
        build_settings([{"UPSERT_EVERY_S": "often"}])
    with pytest.raises(ConfigError, match="priority inversion"):
        build_settings([{"TOKEN_THRESHOLD_UPSERT": "100"}])


def test_settings_the_simulation_owns_cannot_be_set() -> None:
    with pytest.raises(ConfigError, match="set by the simulation itself"):
        build_settings([{"REDIS_URL": "redis://elsewhere:6379/0"}])
    with pytest.raises(ConfigError) as caught:
        build_settings([{"KEEPA_API_KEY": "realkey0123456789abcdef"}])
    assert "realkey" not in str(caught.value)


def test_layers_apply_in_order() -> None:
    settings = build_settings([{"UPSERT_EVERY_S": "60"}, {"UPSERT_EVERY_S": "120"}])
    assert settings.upsert_every_s == 120


def test_options_win_over_the_scenario_which_wins_over_the_defaults() -> None:
    scenario = parse_scenario(
        {
            "hours": 6,
            "refill_rate": 20,
            "simulator": {"catalogue_size": 4000},
            "settings": {"UPSERT_EVERY_S": 60, "BACKFILL_EVERY_S": 30},
        }
    )
    resolved = SimulationOptions(
        refill_rate=25, overrides={"UPSERT_EVERY_S": "300"}, scenario=scenario
    ).resolved()
    assert resolved.hours == 6
    assert resolved.refill_rate == 25
    assert resolved.catalogue_size == 4000
    assert resolved.settings.upsert_every_s == 300
    assert resolved.settings.backfill_every_s == 30
    assert resolved.changed == {"UPSERT_EVERY_S": "300", "BACKFILL_EVERY_S": "30"}
    plain = SimulationOptions().resolved()
    assert (plain.hours, plain.refill_rate, plain.seed) == (DEFAULT_HOURS, 5, 1)
    assert plain.catalogue_size == DEFAULT_CATALOGUE_SIZE


def test_refusals_are_checked_and_reported_with_their_reasons() -> None:
    scenario = parse_scenario({"refuse": [{"TOKEN_THRESHOLD_BACKFILL": 480}]}, name="dl")
    refused = SimulationOptions(scenario=scenario).resolved().refused
    assert refused == [
        {
            "settings": {"TOKEN_THRESHOLD_BACKFILL": "480"},
            "refused": "TOKEN_THRESHOLD_BACKFILL=480: a balance above capacity can never be "
            "reached; capacity is 300 at KEEPA_PLAN_RATE=5 (60 x rate)",
        }
    ]


def test_a_refusal_that_start_up_accepts_fails_the_scenario() -> None:
    scenario = parse_scenario({"refuse": [{"TOKEN_THRESHOLD_BACKFILL": 250}]}, name="dl")
    with pytest.raises(ScenarioError, match="expected the settings TOKEN_THRESHOLD_BACKFILL=250"):
        SimulationOptions(scenario=scenario).resolved()
