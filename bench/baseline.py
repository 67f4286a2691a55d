"""keepa-deals against the naive baseline: deals accepted per token and per hour.

    python bench/baseline.py [--hours 24] [--rate 5] [--catalogue 30000] [--seeds 1,2,3]
                             [--poll-min 15] [--json] [--check]

The baseline is the harvester most people would write: the `keepa` PyPI client
(`keepa.Keepa(key)`, every call with `wait=True`, so it sleeps on a 429 until its
tokens are back), sequential, polling the same deal query (the packaged default,
newest first, page 0) every `--poll-min` minutes and fetching `stats`, the history and
`offers=20` for every deal on the page that it has not fetched before, 100 ASINs a
request. Each product is then judged by keepa_deals.evaluation.stages's stage-2 `commit()` with
the default settings, so "accepted" is the same rule keepa-deals applies last (the
baseline never runs the cheaper stages 0 and 1: that is the point of the comparison).

Both systems run in this one process, one after the other, each against its own
simulator with the same seed, catalogue and plan (`--rate` tokens/min, bucket full at
the start), for the same simulated time, on a ManualClock:

- keepa-deals as bench/harvest_cost.py runs it (`_shared.run_keepa_deals`: real
  upserter, backfiller and TokenManager, its own redis-server, the simulator over HTTP);
- the baseline in-process: the `keepa` module's `requests.get` goes to a
  `requests.Session` with the simulator's adapter mounted on https://api.keepa.com/,
  and its `time` module is replaced by one whose `time()` reads the ManualClock and
  whose `sleep()` advances it (the package calls only `time.time()` and `time.sleep()`),
  so its waits cost no wall time. A sleep that would pass the end of the run ends it.

Tokens are what each simulator charged (its own counters), so both are counted the
same way. `--check` exits 1 unless keepa-deals accepts at least 5x as many deals per
token (the goal in issue 6).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import types
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast

import keepa
import requests
from _shared import START_S, machine, run_keepa_deals, settled_state
from keepa import keepa_sync

from keepa_deals.config import Settings
from keepa_deals.evaluation.stages import commit, parse_deal, peek, screen_deal
from keepa_deals.evaluation.verdicts import Accepted, PeekPassed
from keepa_deals.infra.clock import ManualClock
from keepa_deals.keepa.deal_query import load_deal_query
from keepa_deals.keepa_sim import KeepaSimulator

KEY = "benchnaivebaseline0123456789"
REQUEST_LIMIT = 100  # ASINs per /product request, as the package sends them
STATS_DAYS = 90
OFFERS = 20
GOAL_RATIO = 5.0


class OutOfTime(Exception):
    """The baseline asked to sleep past the end of the run."""


class VirtualTime:
    """Stands in for the `time` module inside `keepa.keepa_sync`."""

    def __init__(self, clock: ManualClock, end_s: float) -> None:
        self.clock = clock
        self.end_s = end_s
        self.sleeps = 0
        self.slept_s = 0.0

    def time(self) -> float:
        now: float = self.clock.now()
        return now

    def sleep(self, seconds: float) -> None:
        seconds = max(0.0, seconds)
        now = self.clock.now()
        if now + seconds >= self.end_s:
            self.clock.set(max(now, self.end_s))
            raise OutOfTime
        self.sleeps += 1
        self.slept_s += seconds
        self.clock.advance(seconds)


@contextmanager
def keepa_on_simulator(
    sim: KeepaSimulator, clock: ManualClock, end_s: float
) -> Iterator[VirtualTime]:
    """Point the `keepa` package at the simulator (in-process) on virtual time."""
    session = requests.Session()
    session.mount("https://api.keepa.com/", sim.adapter())
    virtual = VirtualTime(clock, end_s)
    saved = {name: getattr(keepa_sync, name) for name in ("requests", "time")}
    setattr(keepa_sync, "requests", types.SimpleNamespace(get=session.get))  # noqa: B010
    setattr(keepa_sync, "time", virtual)  # noqa: B010
    try:
        yield virtual
    finally:
        for name, module in saved.items():
            setattr(keepa_sync, name, module)
        session.close()


def run_baseline(
    hours: float, rate: int, catalogue: int, seed: int, poll_min: float
) -> dict[str, Any]:
    clock = ManualClock(START_S)
    sim = KeepaSimulator(seed=seed, refill_rate=rate, clock=clock, catalogue_size=catalogue)
    settings = Settings()  # the defaults keepa-deals runs with: same acceptance rules
    selection = load_deal_query(settings.deal_query_path)
    end_s = START_S + hours * 3600
    poll_s = poll_min * 60
    seen: set[tuple[str, int]] = set()
    accepted: list[tuple[str, int]] = []
    accepted_all_stages = 0
    rejected: dict[str, int] = {}
    ages_s: list[float] = []  # accepted deals: from the deal's creation to its verdict
    polls = 0
    wall_start = time.perf_counter()
    with keepa_on_simulator(sim, clock, end_s) as virtual:
        api = keepa.Keepa(KEY, logging_level="ERROR")
        next_poll_s = START_S
        try:
            while True:
                if clock.now() < next_poll_s:
                    virtual.sleep(next_poll_s - clock.now())
                while next_poll_s <= clock.now():
                    next_poll_s += poll_s
                page = cast(dict[str, Any], api.deals(selection, wait=True))
                polls += 1
                fresh = [d for d in page["dr"] if (d["asin"], d["creationDate"]) not in seen]
                for start in range(0, len(fresh), REQUEST_LIMIT):
                    batch = fresh[start : start + REQUEST_LIMIT]
                    products = cast(
                        list[dict[str, Any]],
                        api.query(
                            [d["asin"] for d in batch],
                            stats=STATS_DAYS,
                            history=True,
                            offers=OFFERS,
                            progress_bar=False,
                            wait=True,
                        ),
                    )
                    by_asin = {p["asin"]: p for p in products}
                    for deal in batch:
                        key = (deal["asin"], deal["creationDate"])
                        seen.add(key)
                        product = by_asin.get(deal["asin"])
                        if product is None:
                            rejected["missing_from_reply"] = (
                                rejected.get("missing_from_reply", 0) + 1
                            )
                            continue
                        verdict = commit(product, settings)
                        if isinstance(verdict, Accepted):
                            accepted.append(key)
                            ages_s.append(clock.now() - parse_deal(deal).created_s)
                            if screen_deal(parse_deal(deal), settings) is None and isinstance(
                                peek(product, settings), PeekPassed
                            ):
                                accepted_all_stages += 1
                        else:
                            reason = str(verdict.reason)
                            rejected[reason] = rejected.get(reason, 0) + 1
        except OutOfTime:
            pass
    wall_s = time.perf_counter() - wall_start
    state = settled_state(sim)
    evaluated = len(accepted) + sum(rejected.values())
    return {
        "system": "naive baseline",
        "simulated_h": round((clock.now() - START_S) / 3600, 3),
        "wall_s": round(wall_s, 1),
        "tokens_spent": int(state["totals"]["tokens_charged"]),
        "tokens_by_endpoint": {
            "deal": int(state["endpoints"]["deal"]["tokens"]),
            "product": int(state["endpoints"]["product"]["tokens"]),
        },
        "tokens_lost_to_cap": int(state["totals"]["tokens_lost_to_cap"]),
        "http_429": int(state["totals"]["rejected_429"]),
        "calls": {name: int(e["calls"]) for name, e in state["endpoints"].items()},
        "deals_published": int(state["deals"]["published_default_selection"]),
        "balance_at_end": sum(int(k["tokens_left"]) for k in state["keys"].values()),
        "deals_evaluated": evaluated,
        "deals_accepted": len(accepted),
        "deals_accepted_passing_all_stages": accepted_all_stages,
        "deals_rejected": sum(rejected.values()),
        "rejected_by_reason": dict(sorted(rejected.items(), key=lambda kv: -kv[1])),
        "deal_page_polls": polls,
        "sleeps": virtual.sleeps,
        "slept_h": round(virtual.slept_s / 3600, 2),
        "accepted_age_at_verdict_median_h": (
            round(statistics.median(ages_s) / 3600, 2) if ages_s else None
        ),
    }


def rates(result: dict[str, Any]) -> dict[str, Any]:
    tokens, accepted, hours = (
        result["tokens_spent"],
        result["deals_accepted"],
        result["simulated_h"],
    )
    result["accepted_per_1000_tokens"] = round(1000 * accepted / tokens, 2) if tokens else 0.0
    result["accepted_per_hour"] = round(accepted / hours, 3) if hours else 0.0
    return result


def _ratio(a: float, b: float) -> float:
    return round(a / b, 2) if b else float("inf")


def pooled(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The sum of the numeric figures of several runs (seeds), rates recomputed."""
    total: dict[str, Any] = {"system": results[0]["system"]}
    for key, value in results[0].items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            total[key] = round(sum(r[key] for r in results), 3)
        elif isinstance(value, dict):  # counts by name: summed name by name
            merged: dict[str, int] = {}
            for r in results:
                for name, n in r[key].items():
                    merged[name] = merged.get(name, 0) + n
            total[key] = merged
    if "accepted_age_at_verdict_median_h" in total:  # a median: one per run, not a sum
        total["accepted_age_at_verdict_median_h"] = [
            r["accepted_age_at_verdict_median_h"] for r in results
        ]
    return rates(total)


def compare(
    hours: float, rate: int, catalogue: int, seeds: list[int], poll_min: float
) -> dict[str, Any]:
    """Both systems for each seed, one after the other; the verdict on the totals."""
    per_seed: list[dict[str, Any]] = []
    for seed in seeds:
        ours = rates(run_keepa_deals(hours, rate, catalogue, seed))
        naive = rates(run_baseline(hours, rate, catalogue, seed, poll_min))
        per_seed.append(
            {
                "seed": seed,
                "keepa_deals": ours,
                "baseline": naive,
                "ratio_per_token": _ratio(
                    ours["accepted_per_1000_tokens"], naive["accepted_per_1000_tokens"]
                ),
                "ratio_per_hour": _ratio(ours["accepted_per_hour"], naive["accepted_per_hour"]),
            }
        )
    ours = pooled([r["keepa_deals"] for r in per_seed])
    naive = pooled([r["baseline"] for r in per_seed])
    per_token = _ratio(ours["accepted_per_1000_tokens"], naive["accepted_per_1000_tokens"])
    return {
        "run": {
            "hours": hours,
            "rate_per_min": rate,
            "catalogue": catalogue,
            "seeds": seeds,
            "baseline_poll_min": poll_min,
        },
        "keepa_deals": ours,
        "baseline": naive,
        "ratio_per_token": per_token,
        "ratio_per_hour": _ratio(ours["accepted_per_hour"], naive["accepted_per_hour"]),
        "goal_per_token_at_least": GOAL_RATIO,
        "goal_met": per_token >= GOAL_RATIO,
        "per_seed": per_seed,
    }


ROWS: tuple[tuple[str, str], ...] = (
    ("simulated hours", "simulated_h"),
    ("wall time, s", "wall_s"),
    ("deals published for the query (simulator)", "deals_published"),
    ("tokens spent (simulator charged)", "tokens_spent"),
    ("tokens: deal pages / products", "tokens_by_endpoint"),
    ("tokens lost to the cap", "tokens_lost_to_cap"),
    ("token balance at the end", "balance_at_end"),
    ("HTTP 429 answers", "http_429"),
    ("deals evaluated (accepted + rejected)", "deals_evaluated"),
    ("deals accepted", "deals_accepted"),
    ("deals accepted per 1 000 tokens", "accepted_per_1000_tokens"),
    ("deals accepted per simulated hour", "accepted_per_hour"),
)


def _cell(value: Any) -> str:
    if isinstance(value, dict) and set(value) == {"deal", "product"}:
        return f"{value['deal']} / {value['product']}"
    return str(value)


def render(report: dict[str, Any]) -> str:
    run, ours, naive = report["run"], report["keepa_deals"], report["baseline"]
    lines = [
        f"{run['hours']:g} h simulated at {run['rate_per_min']} tokens/min, catalogue "
        f"{run['catalogue']}, seeds {run['seeds']} (totals over the seeds; the baseline "
        f"polls every {run['baseline_poll_min']:g} min)",
        "",
        "| | keepa-deals | naive baseline |",
        "|---|---:|---:|",
    ]
    lines += [f"| {label} | {_cell(ours[k])} | {_cell(naive[k])} |" for label, k in ROWS]
    lines += [
        "",
        f"keepa-deals / baseline: {report['ratio_per_token']}x per token, "
        f"{report['ratio_per_hour']}x per hour (goal: >= {report['goal_per_token_at_least']}x "
        f"per token: {'met' if report['goal_met'] else 'NOT met'})",
        f"keepa-deals: rejected by stage {ours['rejected_by_stage']}, "
        f"{ours['products_committed']} products committed, dashboard rows "
        f"{ours['dashboard_rows']}, pending at the end {ours['pending_at_end']}",
        f"baseline: rejected by reason {naive['rejected_by_reason']}; accepted that would "
        f"also pass stages 0 and 1: {naive['deals_accepted_passing_all_stages']}; "
        f"{naive['deal_page_polls']} deal-page polls, {naive['sleeps']} sleeps "
        f"({naive['slept_h']} h); median age of an accepted deal at its verdict "
        f"{naive['accepted_age_at_verdict_median_h']} h",
    ]
    if len(report["per_seed"]) > 1:
        lines += [
            "",
            "| seed | keepa-deals accepted / tokens | per 1 000 | per h "
            "| baseline accepted / tokens | per 1 000 | per h | ratio per token | per h |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in report["per_seed"]:
            o, n = r["keepa_deals"], r["baseline"]
            lines.append(
                f"| {r['seed']} | {o['deals_accepted']} / {o['tokens_spent']} "
                f"| {o['accepted_per_1000_tokens']} | {o['accepted_per_hour']} "
                f"| {n['deals_accepted']} / {n['tokens_spent']} "
                f"| {n['accepted_per_1000_tokens']} | {n['accepted_per_hour']} "
                f"| {r['ratio_per_token']} | {r['ratio_per_hour']} |"
            )
    lines.append(f"machine: {report['machine']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--rate", type=int, default=5, help="tokens/min (the plan)")
    parser.add_argument("--catalogue", type=int, default=30_000)
    parser.add_argument(
        "--seeds", default="1", help="comma-separated; the verdict is on the totals"
    )
    parser.add_argument(
        "--poll-min", type=float, default=15.0, help="the baseline's deal-page interval"
    )
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--check", action="store_true", help="exit 1 when the goal is missed")
    args = parser.parse_args(argv)
    seeds = [int(x) for x in args.seeds.split(",") if x.strip()]
    report = compare(args.hours, args.rate, args.catalogue, seeds, args.poll_min)
    report["machine"] = machine()
    print(json.dumps(report, indent=2) if args.json else render(report))
    return 1 if args.check and not report["goal_met"] else 0


if __name__ == "__main__":
    sys.exit(main())
