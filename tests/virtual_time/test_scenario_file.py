"""Scenario files are checked before anything starts, with errors that say where."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from keepa_deals.virtual_time.scenario import ScenarioError, load_scenario, parse_scenario


def write(tmp_path: Path, body: Any, name: str = "s.json") -> Path:
    path = tmp_path / name
    path.write_text(body if isinstance(body, str) else json.dumps(body))
    return path


def test_a_full_scenario_reads_back_sorted_with_settings_as_text(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        {
            "story": 10,
            "hours": 8,
            "refill_rate": 5,
            "simulator": {"catalogue_size": 4000, "deal_rate": 2},
            "settings": {"UPSERT_EVERY_S": 60, "REFERRAL_FEE_PERCENT": 8.25},
            "refuse": [{"TOKEN_THRESHOLD_BACKFILL": 480}],
            "events": [
                {"at_h": 4, "clear_faults": True},
                {"at_h": 2, "set_plan": 25},
                {"at_h": 3, "faults": {"storm_429": 2}, "drift_tokens": -50},
                {"at_h": 5, "product_cost_factor": 3},
            ],
        },
        "upgrade.json",
    )
    scenario = load_scenario(path)
    assert scenario.name == "upgrade"
    assert scenario.story == "10"
    assert scenario.settings == {"UPSERT_EVERY_S": "60", "REFERRAL_FEE_PERCENT": "8.25"}
    assert scenario.refuse == ({"TOKEN_THRESHOLD_BACKFILL": "480"},)
    assert [e.at_s for e in scenario.events] == [7200, 10800, 14400, 18000]
    assert scenario.events[1].actions() == ["faults", "drift_tokens"]
    assert scenario.simulator.catalogue_size == 4000
    assert scenario.max_cost_factor == 3.0


def test_toml_files_use_the_same_fields(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "hours = 6\n[settings]\nUPSERT_EVERY_S = 60\n[[events]]\nat_h = 1.5\nset_plan = 20\n",
        "plan.toml",
    )
    scenario = load_scenario(path)
    assert scenario.hours == 6
    assert scenario.events[0].set_plan == 20
    assert scenario.events[0].at_s == 5400


def test_a_timeout_fault_is_made_to_drop_instead_of_stalling(tmp_path: Path) -> None:
    scenario = parse_scenario({"events": [{"at_h": 1, "faults": {"timeout_after_charge": 2}}]})
    faults = scenario.events[0].faults
    assert faults is not None
    assert faults["timeout_mode"] == "drop"


STALLING = {"timeout_after_charge": 1, "timeout_mode": "stall"}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ([], "the top level must be an object"),
        ({"hourz": 3}, "unknown field 'hourz'"),
        ({"hours": 0}, "hours must be above 0"),
        ({"refill_rate": 2.5}, "refill_rate must be a whole number"),
        ({"events": {"at_h": 1}}, "events must be a list"),
        ({"events": [{"set_plan": 20}]}, "events[0]: at_h (hours from the start) is required"),
        ({"events": [{"at_h": -1, "set_plan": 20}]}, "at_h must not be negative"),
        ({"events": [{"at_h": "2", "set_plan": 20}]}, "at_h must be a number"),
        ({"events": [{"at_h": 1}]}, "needs at least one of set_plan"),
        ({"events": [{"at_h": 1, "set_plan": 0}]}, "set_plan must be at least 1"),
        ({"events": [{"at_h": 1, "plan": 20}]}, "unknown field 'plan'"),
        ({"events": [{"at_h": 1, "faults": {"storm": 3}}]}, "faults: unknown fault 'storm'"),
        ({"events": [{"at_h": 1, "faults": {"null_rate": 2}}]}, "null_rate must be a number"),
        ({"events": [{"at_h": 1, "faults": {"latency_ms": 50}}]}, "latency_ms delays answers"),
        ({"events": [{"at_h": 1, "faults": STALLING}]}, 'timeout_mode "stall"'),
        ({"events": [{"at_h": 1, "clear_faults": "yes"}]}, "clear_faults must be true or false"),
        ({"events": [{"at_h": 1, "drift_tokens": 1.5}]}, "drift_tokens must be a whole number"),
        ({"events": [{"at_h": 1, "product_cost_factor": 0}]}, "product_cost_factor must be above"),
        ({"settings": {"UPSERT_EVERY_S": True}}, "write the value as a number or a string"),
        ({"settings": ["UPSERT_EVERY_S=60"]}, "settings: must be an object"),
        ({"refuse": {"TOKEN_THRESHOLD_BACKFILL": 480}}, "refuse must be a list"),
        ({"simulator": {"catalogue": 10}}, "simulator: unknown field 'catalogue'"),
        ({"simulator": {"catalogue_size": 5}}, "catalogue_size must be at least 100"),
    ],
)
def test_schema_errors_name_the_field(raw: Any, message: str) -> None:
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(raw, where="x.json")
    assert str(caught.value).startswith("x.json")
    assert message in str(caught.value)


def test_unreadable_and_malformed_files_are_scenario_errors(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="cannot read the scenario"):
        load_scenario(tmp_path / "missing.json")
    with pytest.raises(ScenarioError, match="not valid JSON"):
        load_scenario(write(tmp_path, "{"))
    with pytest.raises(ScenarioError, match="not valid TOML"):
        load_scenario(write(tmp_path, "hours = ", "bad.toml"))
