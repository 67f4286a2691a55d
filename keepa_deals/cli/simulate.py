"""`keepa-deals simulate`: days of harvesting in seconds, on a virtual clock."""

from __future__ import annotations

import json
from pathlib import Path

import click

from keepa_deals.cli.common import fail, setup_logging
from keepa_deals.errors import ConfigError
from keepa_deals.infra.redis_server import RedisServerError
from keepa_deals.virtual_time.options import (
    DEFAULT_HOURS,
    DEFAULT_REFILL_RATE,
    DEFAULT_SEED,
    SimulationOptions,
    parse_assignments,
)
from keepa_deals.virtual_time.render import render_report
from keepa_deals.virtual_time.scenario import ScenarioError, load_scenario
from keepa_deals.virtual_time.simulate import run_simulation


@click.command("simulate")
@click.option(
    "--hours",
    type=click.FloatRange(min=0, min_open=True, max=24 * 365),
    help=f"Simulated hours [default: the scenario's, else {DEFAULT_HOURS:g}].",
)
@click.option(
    "--refill-rate",
    type=click.IntRange(1, 100_000),
    help=f"The plan: tokens/min [default: the scenario's, else {DEFAULT_REFILL_RATE}].",
)
@click.option(
    "--seed",
    type=click.IntRange(min=0),
    help=f"Simulator seed; a run replays exactly [default: {DEFAULT_SEED}].",
)
@click.option(
    "--set",
    "assignments",
    multiple=True,
    metavar="NAME=VALUE",
    help="A setting, NAME as in .env.example (repeatable), e.g. TOKEN_THRESHOLD_BACKFILL=150.",
)
@click.option(
    "--scenario",
    "scenario_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Scenario file (.json or .toml): settings, plan changes and faults mid-run.",
)
@click.option(
    "--catalogue-size",
    type=click.IntRange(min=100),
    help="Simulated products [default: the scenario's, else 30000].",
)
@click.option(
    "--deal-rate",
    type=click.FloatRange(min=0, min_open=True),
    help="Scales how often products change, so the deals published an hour [default: 1].",
)
@click.option(
    "--redis-url",
    help="Use this Redis (keys under a one-off prefix, deleted after) instead of "
    "starting a private redis-server.",
)
@click.option(
    "--db",
    "db_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Keep the deals database here (a new file) instead of a temporary one.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--loglevel", default="WARNING", show_default=True, help="Harvest log level.")
def simulate_command(
    hours: float | None,
    refill_rate: int | None,
    seed: int | None,
    assignments: tuple[str, ...],
    scenario_path: Path | None,
    catalogue_size: int | None,
    deal_rate: float | None,
    redis_url: str | None,
    db_path: Path | None,
    as_json: bool,
    loglevel: str,
) -> None:
    """Run the real upserter, backfiller and TokenManager against the in-process Keepa
    simulator on a virtual clock that jumps from one beat tick to the next, and report
    what the plan's tokens turned into.

    Exit status: 0 after a run, 2 for bad settings, a bad scenario or bad options.
    """
    setup_logging(loglevel)
    if db_path is not None and db_path.exists():
        fail(f"--db {db_path}: the file exists; give a new path (a run starts empty)")
    try:
        options = SimulationOptions(
            hours=hours,
            refill_rate=refill_rate,
            seed=seed,
            catalogue_size=catalogue_size,
            deal_rate=deal_rate,
            overrides=parse_assignments(assignments),
            scenario=load_scenario(scenario_path) if scenario_path is not None else None,
            redis_url=redis_url,
            db_path=db_path,
        )
        report = run_simulation(options)
    except (ConfigError, ScenarioError) as exc:
        fail(str(exc))
    except RedisServerError as exc:
        fail(f"cannot start a private redis-server: {exc}", code=1)
    click.echo(json.dumps(report, indent=2) if as_json else render_report(report).rstrip("\n"))
