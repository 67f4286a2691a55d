"""`keepa-deals simulate` as a user runs it: one JSON object, a readable report, and
exit status 2 with one clear line for anything wrong before the run."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from keepa_deals.cli.simulate import simulate_command
from keepa_deals.infra.redis_server import RedisServerProcess

SHORT = ["--hours", "1", "--catalogue-size", "2000"]


def invoke(args: list[str]) -> tuple[int, str, str]:
    result = CliRunner().invoke(simulate_command, args)
    return result.exit_code, result.stdout, result.stderr


def test_json_prints_one_object(redis_server: RedisServerProcess, tmp_path: Path) -> None:
    db = tmp_path / "kept.db"
    code, out, _ = invoke(
        [
            *SHORT,
            "--redis-url",
            redis_server.url,
            "--db",
            str(db),
            "--json",
            "--set",
            "UPSERT_EVERY_S=600",
            "--seed",
            "3",
        ]
    )
    assert code == 0
    report = json.loads(out)
    assert report["settings"]["UPSERT_EVERY_S"] == 600
    assert report["settings_changed"] == {"UPSERT_EVERY_S": "600"}
    assert report["seed"] == 3
    assert report["runs"]["count"]["upsert"] == 6
    assert db.is_file()  # --db keeps the database


def test_without_json_it_prints_a_readable_report(redis_server: RedisServerProcess) -> None:
    code, out, _ = invoke([*SHORT, "--redis-url", redis_server.url])
    assert code == 0
    assert out.startswith("Simulated 1 h at 5 tokens/min (seed 1, catalogue 2000")
    for heading in ("Tokens (the simulator's own accounting)", "Classes", "Deals", "Runs"):
        assert f"\n{heading}" in out
    assert "Cross-check" in out and ": agree" in out


def test_bad_settings_exit_2_with_the_reason() -> None:
    code, out, err = invoke([*SHORT, "--set", "TOKEN_THRESHOLD_BACKFILL=480"])
    assert (code, out) == (2, "")
    assert err.startswith("error: TOKEN_THRESHOLD_BACKFILL=480: a balance above capacity")
    code, _, err = invoke([*SHORT, "--set", "NOT_A_SETTING=1"])
    assert code == 2
    assert "NOT_A_SETTING=<hidden>: is not a keepa-deals setting" in err
    code, _, err = invoke([*SHORT, "--set", "UPSERT_EVERY_S"])
    assert code == 2
    assert "must be NAME=VALUE" in err


def test_a_bad_scenario_exits_2_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "typo.json"
    path.write_text(json.dumps({"events": [{"at_h": 1, "set_plan": "25"}]}))
    code, _, err = invoke([*SHORT, "--scenario", str(path)])
    assert code == 2
    assert err == f"error: {path}: events[0]: set_plan must be a whole number\n"
    code, _, err = invoke([*SHORT, "--scenario", str(tmp_path / "missing.json")])
    assert code == 2
    assert "cannot read the scenario" in err


def test_an_existing_database_is_not_reused(tmp_path: Path) -> None:
    db = tmp_path / "deals.db"
    db.write_text("")
    code, _, err = invoke([*SHORT, "--db", str(db)])
    assert code == 2
    assert "the file exists" in err
