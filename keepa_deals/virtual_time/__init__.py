"""`keepa-deals simulate`: days of harvesting on a virtual clock, measured.

    keepa-deals simulate [--hours 48] [--refill-rate 5] [--seed 1] [--set NAME=VALUE ...]
                         [--scenario FILE] [--catalogue-size N] [--deal-rate X]
                         [--redis-url URL] [--db PATH] [--json]

The production upserter, backfiller and TokenManager (Lua scripts in a real Redis: a
private redis-server unless --redis-url) run against the Keepa simulator in-process, on
one ManualClock. The clock jumps to the next event: a beat tick of either task
(UPSERT_EVERY_S, BACKFILL_EVERY_S) or a scenario event; inside a run it moves only when
the TokenManager waits its computed time. 48 hours at the default plan take well under a
minute (docs/benchmarks.md, "Scaling").

Module map: `stack.py` builds the stack, `schedule.py` is beat's schedule, `runner.py`
the event loop, `observe.py` the recording KeepaClient and TokenManager, `ledger.py` the
simulator's token accounting, `tracker.py` the fate of every published deal,
`sampling.py` the per-tick samples, `metrics.py` the report, `render.py` its text form,
`scenario.py` the scenario files, `options.py` options and settings, `cli.py` the
command.

Scenario files (JSON, or TOML with the same fields); every field is optional:

    {
      "name": "plan-upgrade",      # default: the file name without its extension
      "story": "a refill rate fixed in code",  # the failure mode it replays (free text,
                                   # docs/failure-modes.md)
      "description": "...",
      "hours": 8,                  # defaults for --hours, --refill-rate, --seed
      "refill_rate": 5,
      "seed": 1,
      "simulator": {"catalogue_size": 30000, "deal_rate": 1.0, "initial_tokens": 300},
      "settings": {"UPSERT_EVERY_S": 60},   # NAME: VALUE as in .env.example; --set wins
      "refuse": [{"TOKEN_THRESHOLD_BACKFILL": 480}],
                                   # settings (over "settings") that start-up must
                                   # refuse; one that is accepted fails the scenario
      "events": [                  # each: at_h (hours from the start) + >= 1 action
        {"at_h": 2, "set_plan": 25},           # the plan's refill rate, tokens/min
        {"at_h": 3, "faults": {"storm_429": 3}},  # the simulator's fault schema
                                   # (keepa_deals.keepa_sim.faults); latency_ms and
                                   # timeout_mode "stall" are refused: they block the
                                   # wall clock, and timeouts are always "drop"
        {"at_h": 4, "clear_faults": true},
        {"at_h": 5, "drift_tokens": -200},     # Keepa's balance moves behind the
                                               # TokenManager's back (capped at capacity)
        {"at_h": 6, "product_cost_factor": 3}  # every /product answer costs 3x Keepa's
                                               # price list until set back to 1
      ]
    }

Several actions in one event apply in the order set_plan, clear_faults, faults,
drift_tokens, product_cost_factor. An event due while a run is going applies when the
run ends (its `applied_at_h` says when).

`--json` prints one object. Token figures are the simulator's own accounting:

- tokens_refilled, tokens_spent, tokens_lost_to_cap; tokens_spent_by_class (charged
  while each task ran); tokens_spent_by_stage (discovery, peek, commit: the runs table);
- utilization = spent / refilled; utilization_backlog = spent / (refilled + lost to the
  cap) over the time deals were pending (backlog_hours);
- http_429; min_balance: the lowest balance right after a charge (min_balance_any also
  counts scenario drifts); balance_end;
- deals_published (the simulator's, for the deal query, during the run) =
  deals_evaluated + deals_pending + deals_lost + deals_unseen (see `tracker.py`);
  deals_seen; deals_accepted and deals_rejected are verdicts from the runs table;
  accepted_per_hour, accepted_per_hour_backlog;
- longest_wait_s_by_class (from a refused decision to the class's next grant),
  longest_wait_began_at_h_by_class, wait_bound_s_by_class (the largest starvation bound
  status() gave; null: unbounded), grants_by_class, largest_grant_by_class;
- freshness_p50_s, freshness_p95_s, freshness_max_s: deal creation to its answer;
- recharge_time_s (sampled at each tick), recharge_entries, recharge_last_exit;
- runs (counts, stop reasons, errors), events, events_not_reached, refused, hourly,
  token_manager (its final view), cross_check (simulator vs runs table vs TokenManager),
  and the run's parameters (hours, refill_rate, seed, catalogue_size, deal_rate,
  settings, settings_changed, scenario, story, wall_s).
"""

from keepa_deals.virtual_time.options import SimulationOptions
from keepa_deals.virtual_time.scenario import Scenario, ScenarioError, load_scenario
from keepa_deals.virtual_time.simulate import run_simulation

__all__ = ["Scenario", "ScenarioError", "SimulationOptions", "load_scenario", "run_simulation"]
