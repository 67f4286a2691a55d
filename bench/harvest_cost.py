"""What a deal costs: one simulated day of harvesting, in virtual time.

    python bench/harvest_cost.py [--hours 24] [--rate 5] [--catalogue 30000] [--seed 1]
                                 [--json] [--check]

Runs the service's rhythm on `keepa-deals simulate`'s machinery (keepa_deals.virtual_time):
its own redis-server, the Keepa simulator answering in-process on a ManualClock shared
with the TokenManager and the tasks, and beat's schedule: the upserter every 15 minutes,
the backfiller every minute. Time moves only between runs and when the TokenManager
waits its computed time, so a day takes seconds. Settings are the defaults (used
books); the plan is `--rate` tokens/min, the simulator's bucket starting full.

Reported, from the `runs` and `rejections` tables and the simulator's own counters:

- tokens by stage (discovery = deal pages, peek = stage 1, commit = stage 2), and per
  evaluated deal (a deal that got a verdict: accepted or rejected);
- a rejected deal's own cost, on average: what its rejection cost (`tokens_spent`:
  0 at stage 0, 1 at stage 1, its peek and commit share at stage 2) plus its share of
  discovery (deal-page tokens / evaluated deals);
- an accepted deal's own cost: discovery share + average peek + average commit;
- deals accepted per 1 000 tokens (all tokens, rejections included).

Goals (issue 4): a rejected deal costs <= 1.2 tokens on average, discovery included;
an accepted deal costs <= its commit cost + 2. `--check` exits 1 when one is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import sys
from pathlib import Path
from typing import Any

from keepa_deals.config import Settings
from keepa_deals.virtual_time.runner import Simulation
from keepa_deals.virtual_time.stack import SimulationStack

GOAL_REJECTED = 1.2
GOAL_ACCEPTED_OVER_COMMIT = 2.0


def machine() -> dict[str, Any]:
    model = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def simulate(hours: float, rate: int, catalogue: int, seed: int) -> dict[str, Any]:
    settings = Settings(plan_rate=min(rate, 5))
    with SimulationStack.start(
        settings, refill_rate=rate, seed=seed, catalogue_size=catalogue
    ) as stack:
        result = Simulation(stack, hours).run()
        report = measure(stack.ctx.conn, result.sim_state)
    stops: dict[str, int] = {}
    for run in result.runs:
        key = f"{run.task}:{run.stop_reason}"
        stops[key] = stops.get(key, 0) + 1
    report["run"] = {
        "hours": hours,
        "rate_per_min": rate,
        "catalogue": catalogue,
        "seed": seed,
        "wall_s": round(result.wall_s, 1),
        "stops": stops,
    }
    return report


def _one(conn: sqlite3.Connection, sql: str) -> int:
    return int(conn.execute(sql).fetchone()[0] or 0)


def measure(conn: sqlite3.Connection, sim_state: dict[str, Any]) -> dict[str, Any]:
    totals = conn.execute(
        "SELECT SUM(tokens_discovery), SUM(tokens_peek), SUM(tokens_commit),"
        " SUM(deals_peeked), SUM(deals_committed), SUM(deals_accepted), SUM(deals_rejected),"
        " SUM(deals_failed) FROM runs"
    ).fetchone()
    discovery, peek, commit, peeked, committed, accepted, rejected, failed = (
        int(v or 0) for v in totals
    )
    tokens = discovery + peek + commit
    evaluated = accepted + rejected
    by_stage = {
        str(r[0]): {"deals": int(r[1]), "tokens": int(r[2])}
        for r in conn.execute(
            "SELECT stage, SUM(times), SUM(tokens_spent) FROM rejections GROUP BY stage"
        )
    }
    reasons: dict[str, dict[str, int]] = {}
    for stage, reason, count in conn.execute(
        "SELECT stage, reason, SUM(times) FROM rejections GROUP BY stage, reason"
    ):
        reasons.setdefault(str(stage), {})[str(reason)] = int(count)
    rejection_tokens = sum(s["tokens"] for s in by_stage.values())
    share = discovery / evaluated if evaluated else 0.0
    peek_each = peek / peeked if peeked else 0.0
    commit_each = commit / committed if committed else 0.0
    rejected_cost = (rejection_tokens / rejected + share) if rejected else 0.0
    accepted_cost = share + peek_each + commit_each
    endpoints = sim_state["endpoints"]
    return {
        "tokens": {"discovery": discovery, "peek": peek, "commit": commit, "total": tokens},
        "keepa_charged": {
            "deal": endpoints["deal"]["tokens"],
            "product": endpoints["product"]["tokens"],
            "lost_to_cap": sim_state["totals"]["tokens_lost_to_cap"],
            "rejected_429": sim_state["totals"]["rejected_429"],
        },
        "deals": {
            "evaluated": evaluated,
            "accepted": accepted,
            "rejected": rejected,
            "rejected_by_stage": by_stage,
            "rejected_by_reason": reasons,
            "peeked": peeked,
            "committed": committed,
            "failed": failed,
            "pending_at_end": _one(conn, "SELECT COUNT(*) FROM pending"),
            "quarantined": _one(
                conn, "SELECT COUNT(*) FROM quarantine WHERE quarantined_s IS NOT NULL"
            ),
            "dashboard_rows": _one(conn, "SELECT COUNT(*) FROM dashboard_deals"),
        },
        "per_evaluated_deal": {
            "discovery": round(share, 3),
            "peek": round(peek / evaluated, 3) if evaluated else 0.0,
            "commit": round(commit / evaluated, 3) if evaluated else 0.0,
            "total": round(tokens / evaluated, 3) if evaluated else 0.0,
        },
        "per_rejected_deal": round(rejected_cost, 3),
        "per_accepted_deal": {
            "discovery": round(share, 3),
            "peek": round(peek_each, 3),
            "commit": round(commit_each, 3),
            "total": round(accepted_cost, 3),
            "all_tokens_per_accepted": round(tokens / accepted, 1) if accepted else None,
        },
        "accepted_per_1000_tokens": round(1000 * accepted / tokens, 2) if tokens else 0.0,
        "goals": {
            "rejected_at_most_1_2": rejected_cost <= GOAL_REJECTED,
            "accepted_at_most_commit_plus_2": accepted_cost
            <= commit_each + GOAL_ACCEPTED_OVER_COMMIT,
        },
    }


def render(report: dict[str, Any]) -> str:
    t, d, run = report["tokens"], report["deals"], report["run"]
    e, a = report["per_evaluated_deal"], report["per_accepted_deal"]
    lines = [
        f"{run['hours']:g} h simulated at {run['rate_per_min']} tokens/min, catalogue "
        f"{run['catalogue']}, seed {run['seed']}: {run['wall_s']} s wall",
        f"tokens: discovery {t['discovery']}, peek {t['peek']}, commit {t['commit']}, "
        f"total {t['total']} (Keepa charged: {report['keepa_charged']})",
        f"deals: {d['evaluated']} evaluated = {d['accepted']} accepted + {d['rejected']} "
        f"rejected; {d['peeked']} peeked, {d['committed']} committed, {d['failed']} "
        f"failed; {d['pending_at_end']} pending and {d['quarantined']} quarantined at the end",
        f"rejected by stage: {d['rejected_by_stage']}",
        f"rejected by reason: {d['rejected_by_reason']}",
        f"per evaluated deal: discovery {e['discovery']}, peek {e['peek']}, commit "
        f"{e['commit']}, total {e['total']}",
        f"per rejected deal (own cost + discovery share): {report['per_rejected_deal']}",
        f"per accepted deal: discovery {a['discovery']} + peek {a['peek']} + commit "
        f"{a['commit']} = {a['total']} (all tokens / accepted: "
        f"{a['all_tokens_per_accepted']})",
        f"accepted per 1000 tokens: {report['accepted_per_1000_tokens']}",
        f"goals: {report['goals']}",
        f"stops: {run['stops']}",
        f"machine: {report['machine']}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--rate", type=int, default=5, help="tokens/min (the plan)")
    parser.add_argument("--catalogue", type=int, default=30_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--check", action="store_true", help="exit 1 when a goal is missed")
    args = parser.parse_args(argv)
    report = simulate(args.hours, args.rate, args.catalogue, args.seed)
    report["machine"] = machine()
    print(json.dumps(report, indent=2) if args.json else render(report))
    return 1 if args.check and not all(report["goals"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
