"""`run_simulation`: options in, report out; everything it starts is stopped again.

report = run_simulation(SimulationOptions(hours=48, refill_rate=5))
"""

from __future__ import annotations

from typing import Any

from keepa_deals.virtual_time.metrics import build_report, run_settings
from keepa_deals.virtual_time.options import SimulationOptions
from keepa_deals.virtual_time.runner import Simulation
from keepa_deals.virtual_time.stack import SimulationStack


def run_simulation(options: SimulationOptions) -> dict[str, Any]:
    """Run the simulation the options describe and return its report (a JSON-able
    dict). Raises ConfigError or ScenarioError before anything starts when the settings
    or the scenario are wrong."""
    resolved = options.resolved()
    with SimulationStack.start(
        resolved.settings,
        refill_rate=resolved.refill_rate,
        seed=resolved.seed,
        catalogue_size=resolved.catalogue_size,
        deal_rate=resolved.deal_rate,
        initial_tokens=resolved.initial_tokens,
        redis_url=options.redis_url,
        db_path=options.db_path,
    ) as stack:
        result = Simulation(stack, resolved.hours, options.scenario).run()
        report = build_report(result, stack.ctx.conn)
    scenario = options.scenario
    return {
        "scenario": None if scenario is None else scenario.name,
        "story": None if scenario is None else scenario.story,
        "refill_rate": resolved.refill_rate,
        "seed": resolved.seed,
        "catalogue_size": resolved.catalogue_size,
        "deal_rate": resolved.deal_rate,
        "settings_changed": resolved.changed,
        "settings": run_settings(resolved.settings),
        "refused": resolved.refused,
        **report,
    }
