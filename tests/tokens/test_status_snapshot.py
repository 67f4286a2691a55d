"""TokenManager.status() is typed; its JSON form (`status --json`) keeps every key."""

from __future__ import annotations

from typing import Any

from keepa_deals.tokens.status import MissingTokenState, TokenSnapshot, status_from_script

SCRIPT_REPLY: dict[str, Any] = {
    "now_ms": 1_000_000,
    "balance": 120,
    "server_balance": 118,
    "last_seen_ms": 997_500,
    "capacity": 300,
    "rate": 5,
    "floor": -180,
    "min_balance": 3,
    "next_tick_ms": 1_004_250,
    "inflight": 1,
    "inflight_cost": 6,
    "held": 4,
    "rate_ignored": 0,
    "stamps_ahead": 2,
    "recharge": {
        "active": True,
        "since_ms": 990_000,
        "target": 280,
        "low": 20,
        "timeout_at_ms": 4_590_000,
        "blocked_until_ms": None,
        "last_exit": "timeout",
        "entries": 2,
    },
    "classes": {
        "backfill": {
            "threshold": 60,
            "priority": 2,
            "share": 0.2,
            "gated": True,
            "waiting": True,
            "waiting_since_ms": 995_000,
            "wait_ms": 12_000,
            "reason": "recharge",
            "target": 60,
            "last_cost": 5,
            "admissible": 0,
            "credit": 1.23456,
            "claim": None,
            "starvation_bound_ms": -1,
            "granted_last_hour": 40,
            "granted_total": 400,
        }
    },
}


def test_the_json_form_has_the_keys_and_values_status_json_always_printed() -> None:
    snap = status_from_script(SCRIPT_REPLY)
    assert isinstance(snap, TokenSnapshot)
    assert snap.as_dict() == {
        "state": "ok",
        "now": 1000.0,
        "balance": 120,
        "server_balance": 118,
        "server_balance_age_s": 2.5,
        "capacity": 300,
        "rate_per_min": 5,
        "floor": -180,
        "min_balance": 3,
        "next_refill_in_s": 4.25,
        "grants_in_flight": 1,
        "tokens_in_flight": 6,
        "tokens_held": 4,
        "keepa_rate_ignored": 0,
        "keepa_stamps_rejected": 2,
        "recharge": {
            "active": True,
            "since": 990.0,
            "target": 280,
            "low": 20,
            "timeout_at": 4590.0,
            "rearm_blocked_until": None,
            "last_exit": "timeout",
            "entries": 2,
        },
        "classes": {
            "backfill": {
                "threshold": 60,
                "priority": 2,
                "min_share": 0.2,
                "recharge_gated": True,
                "waiting": True,
                "waiting_since": 995.0,
                "wait_s": 12.0,
                "reason": "recharge",
                "target": 60,
                "last_cost": 5,
                "admissible_now": 0,
                "credit": 1.235,
                "claim": None,
                "starvation_bound_s": None,  # negative: unbounded
                "tokens_granted_last_hour": 40,
                "tokens_granted_total": 400,
            }
        },
    }
    # The order operators' scripts and the JSON output have always had.
    assert list(snap.as_dict())[:3] == ["state", "now", "balance"]


def test_no_state_yet_is_its_own_type() -> None:
    snap = status_from_script({"missing": 1, "now_ms": 5_000})
    assert isinstance(snap, MissingTokenState)
    assert snap.as_dict() == {
        "state": "missing",
        "now": 5.0,
        "detail": "no token state in Redis; the next call syncs from /token",
    }
