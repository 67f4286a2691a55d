"""Operator commands: status, doctor, migrate, pause, resume, reset-watermark, backfill.

Controls that change state say exactly what they changed.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from typing import Any

import click
import redis

from keepa_deals.cli.common import fail, load_settings
from keepa_deals.config import Settings
from keepa_deals.errors import KeepaDealsError
from keepa_deals.harvest.backfiller import restart_pass
from keepa_deals.infra.checks import Check
from keepa_deals.infra.durations import duration
from keepa_deals.infra.redis_client import CLI, redis_client
from keepa_deals.infra.redis_failure import short_reason
from keepa_deals.service.doctor import run_doctor
from keepa_deals.service.status import TASKS, gather
from keepa_deals.service.timebase import now_s, service_clock
from keepa_deals.store import get_watermark, open_from_settings, transaction
from keepa_deals.store.state import WATERMARK, advance_watermark
from keepa_deals.tokens import TokenManager
from keepa_deals.tokens.errors import TokenScriptError
from keepa_deals.tokens.manager import TokenStateMissing
from keepa_deals.tokens.status import TokenSnapshot


def _fmt_old(seconds: float | None) -> str:
    return "none yet" if seconds is None else f"{duration(seconds)} old"


@click.command("status")
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
def status_command(as_json: bool) -> None:
    """Tokens, recharge, locks, last runs and why they stopped, and progress."""
    settings = load_settings()
    report = gather(settings)
    if as_json:
        click.echo(json.dumps(report, indent=2, sort_keys=True, default=str))
        return
    _print_status(report)


def _print_status(report: dict[str, Any]) -> None:
    tokens = report["tokens"]
    if tokens.get("state") == "ok":
        rc = tokens["recharge"]
        seen = duration(tokens["server_balance_age_s"], "never")
        click.echo(
            f"tokens: {tokens['balance']} of {tokens['capacity']} (+{tokens['rate_per_min']}/min), "
            f"Keepa said {tokens['server_balance']} {seen} ago, "
            f"{tokens['grants_in_flight']} grants in flight"
        )
        state = "on" if rc["active"] else "off"
        click.echo(
            f"recharge: {state} (target {rc['target']}, last exit {rc['last_exit'] or 'none yet'})"
        )
        for name, c in tokens["classes"].items():
            wait = (
                ""
                if not c["waiting"]
                else f", waits {duration(c['wait_s'], 'until another class acts')} ({c['reason']})"
            )
            if c.get("claim") is not None:
                wait += f", holds {c['claim']} tokens for its share"
            click.echo(
                f"  {name}: {c['tokens_granted_last_hour']} tokens in the last hour{wait}, "
                f"bound {duration(c['starvation_bound_s'], 'unbounded')}"
            )
    elif tokens.get("state") == "unknown":
        click.echo(f"tokens: unknown ({tokens['error']})")
    else:
        click.echo(f"tokens: {tokens.get('detail') or tokens.get('error')}")
    _print_locks(report["locks"])
    db = report["database"]
    if db.get("state") != "ok":
        click.echo(f"database: {db.get('state')} {db.get('error', db.get('path', ''))}")
        return
    click.echo(
        f"progress: newest deal {_fmt_old(db['newest_deal_age_s'])}, watermark "
        f"{_fmt_old(db['watermark_age_s'])}, {db['deals_per_hour_24h']} new deals/hour "
        f"(24h), {db['pending']} pending, deals by status {db['deals_by_status']}"
    )
    for run in db["last_runs"][:6]:
        started = datetime.fromtimestamp(run["started_s"], UTC).strftime("%Y-%m-%d %H:%M:%S")
        click.echo(
            f"  run {run['task']} {started}Z: {run['tokens_total']} tokens, "
            f"{run['deals_accepted']} accepted, {run['deals_rejected']} rejected, "
            f"{run['deals_deferred']} deferred; stopped: {run['stop_reason'] or 'running'}"
        )


def _print_locks(locks: dict[str, Any]) -> None:
    """Free only when Redis said so: a lock that could not be read is unknown."""
    for task in TASKS:
        holder = locks.get(task, {"state": "unknown", "cause": "error"})
        if holder is None:
            click.echo(f"lock {task}: free")
        elif "owner" in holder:
            click.echo(f"lock {task}: held by {holder['owner']} ({holder['ttl_left_s']:.0f}s left)")
        else:
            click.echo(f"lock {task}: unknown ({short_reason(str(holder.get('cause')))})")


@click.command("doctor")
@click.option("--json", "as_json", is_flag=True)
@click.option(
    "--wait-s",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Retry failing checks until they pass or this many seconds have passed "
    "(after a restart the worker needs a moment before it answers pings).",
)
def doctor_command(as_json: bool, wait_s: float) -> None:
    """Every check; exit 0 when all pass, 1 otherwise."""
    settings = load_settings()

    def waiting(failing: list[Check], left_s: float) -> None:
        # stderr: `--json` keeps stdout one JSON document.
        names = ", ".join(c.name for c in failing)
        click.echo(f"doctor: waiting for {names} ({left_s:.0f}s left)", err=True)

    checks = run_doctor(settings, wait_s=wait_s, on_retry=waiting)
    if as_json:
        click.echo(json.dumps([c.__dict__ for c in checks], indent=2))
    else:
        marks = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL"}
        for check in checks:
            click.echo(f"[{marks[check.outcome]}] {check.name}: {check.detail}")
    raise SystemExit(1 if any(c.outcome == "fail" for c in checks) else 0)


def _open_db(settings: Settings) -> sqlite3.Connection:
    """The migrated database, or one line naming the file and what to do, and exit 2:
    no file that cannot be used (no database, damaged, not writable) is a traceback."""
    try:
        return open_from_settings(settings)
    except KeepaDealsError as exc:
        fail(str(exc))
    except (sqlite3.Error, OSError) as exc:
        fail(f"{settings.deals_db_path}: {exc}")


@click.command("migrate")
def migrate_command() -> None:
    """Create or upgrade the deals database in place."""
    settings = load_settings()
    conn = _open_db(settings)
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    conn.close()
    click.echo(f"database {settings.deals_db_path}: schema v{version}")


def _manager() -> TokenManager:
    settings = load_settings()
    client = redis_client(settings.redis_url, CLI)
    return TokenManager.from_settings(settings, redis=client, clock=service_clock(settings))


@click.command("pause")
def pause_command() -> None:
    """Turn recharge on by hand: gated classes wait until resume or RECHARGE_TIMEOUT_S."""
    try:
        st = _manager().set_recharge(True)
    except (TokenStateMissing, TokenScriptError, redis.RedisError) as exc:
        fail(str(exc), code=1)
    # set_recharge raises when there is no state, and a pause always has a timeout.
    assert isinstance(st, TokenSnapshot) and st.recharge.timeout_at is not None
    timeout_at = datetime.fromtimestamp(st.recharge.timeout_at, UTC)
    click.echo(f"recharge is now ON (by hand); it ends on resume or at {timeout_at:%H:%M:%S}Z")


@click.command("resume")
def resume_command() -> None:
    """Turn recharge off by hand."""
    try:
        _manager().set_recharge(False)
    except (TokenStateMissing, TokenScriptError, redis.RedisError) as exc:
        fail(str(exc), code=1)
    click.echo("recharge is now OFF (by hand); automatic re-entry is blocked for one timeout")


def _parse_time(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        fail(f"--to {text!r}: give unix seconds or an ISO time such as 2026-11-23T12:00:00Z")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())


@click.command("reset-watermark")
@click.option("--to", "to", required=True, help="Unix seconds or ISO time (UTC).")
def reset_watermark_command(to: str) -> None:
    """Move the upserter's watermark, backwards too: deals after it are fetched again."""
    target_s = _parse_time(to)
    settings = load_settings()
    conn = _open_db(settings)
    try:
        before = get_watermark(conn)
        with transaction(conn):
            # The ratchet refuses backwards moves; an operator's reset is the one
            # deliberate exception, so it replaces the row instead.
            conn.execute("DELETE FROM system_state WHERE key = ?", (WATERMARK,))
            advance_watermark(conn, target_s, int(now_s(settings)))
    finally:
        conn.close()
    shown = "none" if before is None else datetime.fromtimestamp(before, UTC).isoformat()
    click.echo(
        f"watermark moved from {shown} to {datetime.fromtimestamp(target_s, UTC).isoformat()}"
    )


@click.command("backfill")
@click.option(
    "--restart",
    is_flag=True,
    required=True,
    help="Start a fresh pass at page 0 at the next backfill run, skipping the pass pause.",
)
def backfill_command(restart: bool) -> None:
    """Backfill controls: `--restart` starts the backfill over from page 0 now."""
    settings = load_settings()
    conn = _open_db(settings)
    try:
        before, after = restart_pass(conn, int(now_s(settings)))
    finally:
        conn.close()
    click.echo(
        f"backfill restarted: cursor moved from page {before.page} to page {after.page} "
        f"(completed passes stay {after.passes}); the next backfill run reads page 0 at "
        f"once, without the BACKFILL_PASS_PAUSE_S={settings.backfill_pass_pause_s} pause"
    )
