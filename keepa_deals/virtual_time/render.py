"""The readable report `keepa-deals simulate` prints without --json."""

from __future__ import annotations

from typing import Any


def render_report(report: dict[str, Any]) -> str:
    r = report
    lines = [_headline(r), ""]
    lines += _section(
        "Tokens (the simulator's own accounting)",
        [
            f"refilled {r['tokens_refilled']}, spent {r['tokens_spent']}, lost to the cap "
            f"{r['tokens_lost_to_cap']}; utilization {_pct(r['utilization'])} overall, "
            f"{_pct(r['utilization_backlog'])} over {r['backlog_hours']} h with a backlog",
            f"spent by class: {_pairs(r['tokens_spent_by_class'])}; by stage: "
            f"{_pairs(r['tokens_spent_by_stage'])}",
            f"HTTP 429: {r['http_429']}; lowest balance after a charge: {r['min_balance']} "
            f"(floor {r['token_manager']['floor']}); balance at the end: {r['balance_end']}",
            f"recharge: {r['recharge_entries']} entries, {_duration(r['recharge_time_s'])} "
            f"in recharge, last exit: {r['recharge_last_exit'] or '-'}",
        ],
    )
    waits = r["longest_wait_s_by_class"]
    bounds = r["wait_bound_s_by_class"]
    lines += _section(
        "Classes (longest wait from a refusal to the next grant, against status()'s bound)",
        [
            f"{c}: {r['grants_by_class'][c]} grants, largest {r['largest_grant_by_class'][c]}"
            f" tokens; longest wait {_duration(waits[c])} (bound "
            f"{'unbounded' if bounds[c] is None else _duration(bounds[c])})"
            for c in waits
        ],
    )
    lines += _section(
        "Deals",
        [
            f"published {r['deals_published']}: evaluated {r['deals_evaluated']}, pending "
            f"{r['deals_pending']}, lost {r['deals_lost']}, never on a page a task read "
            f"{r['deals_unseen']}",
            f"verdicts: {r['deals_accepted']} accepted, {r['deals_rejected']} rejected; "
            f"{r['accepted_per_hour']} accepted/h ({r['accepted_per_hour_backlog']}/h "
            "with a backlog)",
            f"freshness (creation to answer): p50 {_duration(r['freshness_p50_s'])}, p95 "
            f"{_duration(r['freshness_p95_s'])}, max {_duration(r['freshness_max_s'])}",
        ],
    )
    runs = r["runs"]
    run_lines = [
        f"{task}: {runs['count'][task]} runs, stopped {_pairs(runs['stop_reasons'][task])}"
        for task in runs["count"]
    ]
    run_lines.append(
        f"errors: {runs['errors']}; beat ticks skipped (expired while a run was going): "
        f"{_pairs(runs['ticks_skipped'])}"
    )
    run_lines += [f"  {line}" for line in runs["error_samples"]]
    lines += _section("Runs", run_lines)
    if r["events"] or r["events_not_reached"] or r["refused"]:
        lines += _section("Scenario", _scenario_lines(r))
    check = r["cross_check"]
    lines += _section(
        "Cross-check",
        [
            f"simulator charged {check['simulator_charged']}, runs table "
            f"{check['runs_table_total']}, TokenManager by class "
            f"{_pairs(check['token_manager_by_class'])}: "
            + ("agree" if check["agree"] else "DIFFER (charged requests with no answer?)")
        ],
    )
    return "\n".join(lines).rstrip() + "\n"


def _headline(r: dict[str, Any]) -> str:
    scenario = f"scenario {r['scenario']}, " if r["scenario"] else ""
    return (
        f"Simulated {r['hours']:g} h at {r['refill_rate']} tokens/min ({scenario}seed "
        f"{r['seed']}, catalogue {r['catalogue_size']}, deal rate {r['deal_rate']:g}) in "
        f"{r['wall_s']} s of wall time"
        + (f"; settings changed: {_pairs(r['settings_changed'])}" if r["settings_changed"] else "")
    )


def _scenario_lines(r: dict[str, Any]) -> list[str]:
    out = [f"refused at start-up, as required: {x['refused']}" for x in r["refused"]]
    for event in r["events"]:
        actions = {k: v for k, v in event.items() if k not in ("at_h", "applied_at_h")}
        out.append(f"at {event['at_h']:g} h (applied {event['applied_at_h']:g} h): {actions}")
    if r["events_not_reached"]:
        out.append(f"{r['events_not_reached']} event(s) lie beyond the end of the run")
    return out


def _section(title: str, body: list[str]) -> list[str]:
    return [title, *[f"  {line}" for line in body], ""]


def _pairs(values: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in values.items()) or "-"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"
