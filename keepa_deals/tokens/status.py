"""The TokenManager's status, typed: what the status script reports, in seconds.

`TokenManager.status()` returns a `TokenSnapshot` (a budget exists) or a
`MissingTokenState` (none yet: the next call syncs it from Keepa's free /token).
`as_dict()` is the JSON form `keepa-deals status --json` prints; its keys and values
are the operator's contract and do not change with the dataclasses.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal


def _s(ms: float | None) -> float | None:
    return None if ms is None else ms / 1000


def _wait_s(ms: float | None) -> float | None:
    # A negative wait is the script's "unbounded": only another class's action ends it.
    if ms is None:
        return None
    return None if ms < 0 else ms / 1000


@dataclass(frozen=True)
class ClassStatus:
    threshold: int
    priority: int
    min_share: float
    recharge_gated: bool
    waiting: bool
    waiting_since: float | None
    wait_s: float | None
    reason: str | None
    target: int | None
    last_cost: int
    admissible_now: int
    credit: float
    # The balance an entitled class holds back for the requests its credit pays for,
    # between asks too (None when it holds none).
    claim: int | None
    starvation_bound_s: float | None
    tokens_granted_last_hour: int
    tokens_granted_total: int

    @classmethod
    def from_script(cls, c: dict[str, Any]) -> ClassStatus:
        return cls(
            threshold=c["threshold"],
            priority=c["priority"],
            min_share=c["share"],
            recharge_gated=c["gated"],
            waiting=c["waiting"],
            waiting_since=_s(c.get("waiting_since_ms")),
            wait_s=_wait_s(c["wait_ms"]),
            reason=c["reason"],
            target=c.get("target"),
            last_cost=c["last_cost"],
            admissible_now=c["admissible"],
            credit=round(float(c["credit"]), 3),
            claim=c.get("claim"),
            starvation_bound_s=_wait_s(c["starvation_bound_ms"]),
            tokens_granted_last_hour=c["granted_last_hour"],
            tokens_granted_total=c["granted_total"],
        )


@dataclass(frozen=True)
class RechargeStatus:
    active: bool
    since: float | None
    target: int
    low: int
    timeout_at: float | None
    rearm_blocked_until: float | None
    last_exit: str | None
    entries: int

    @classmethod
    def from_script(cls, rc: dict[str, Any]) -> RechargeStatus:
        return cls(
            active=rc["active"],
            since=_s(rc.get("since_ms")),
            target=rc["target"],
            low=rc["low"],
            timeout_at=_s(rc.get("timeout_at_ms")),
            rearm_blocked_until=_s(rc.get("blocked_until_ms")),
            last_exit=rc.get("last_exit"),
            entries=rc["entries"],
        )


@dataclass(frozen=True)
class MissingTokenState:
    now: float
    state: Literal["missing"] = "missing"
    detail: str = "no token state in Redis; the next call syncs from /token"

    def as_dict(self) -> dict[str, Any]:
        return {"state": self.state, "now": self.now, "detail": self.detail}


@dataclass(frozen=True)
class TokenSnapshot:
    now: float
    balance: int
    server_balance: int | None
    server_balance_age_s: float | None
    capacity: int
    rate_per_min: int
    floor: int
    min_balance: int | None
    next_refill_in_s: float
    grants_in_flight: int
    tokens_in_flight: int
    # Tokens that answers not applied (stale, or stamped too far ahead) said they
    # consumed: in the estimate until an answer sent after them is applied.
    tokens_held: int
    # A refillRate Keepa reported that is no plan (0 or less), while the budget keeps
    # the last good one; None once Keepa reports a positive rate again.
    keepa_rate_ignored: int | float | None
    # Answers not applied for a timestamp too far ahead of our clock, in total.
    keepa_stamps_rejected: int
    recharge: RechargeStatus
    classes: dict[str, ClassStatus]
    state: Literal["ok"] = "ok"

    @classmethod
    def from_script(cls, snap: dict[str, Any]) -> TokenSnapshot:
        now_s = snap["now_ms"] / 1000
        last_seen = _s(snap.get("last_seen_ms"))
        return cls(
            now=now_s,
            balance=snap["balance"],
            server_balance=snap["server_balance"],
            server_balance_age_s=None if last_seen is None else round(now_s - last_seen, 3),
            capacity=snap["capacity"],
            rate_per_min=snap["rate"],
            floor=snap["floor"],
            min_balance=snap.get("min_balance"),
            next_refill_in_s=round((snap["next_tick_ms"] - snap["now_ms"]) / 1000, 3),
            grants_in_flight=snap["inflight"],
            tokens_in_flight=snap["inflight_cost"],
            tokens_held=snap.get("held", 0),
            keepa_rate_ignored=snap.get("rate_ignored"),
            keepa_stamps_rejected=snap.get("stamps_ahead", 0),
            recharge=RechargeStatus.from_script(snap["recharge"]),
            classes={name: ClassStatus.from_script(c) for name, c in snap["classes"].items()},
        )

    def as_dict(self) -> dict[str, Any]:
        # The JSON form puts `state` first, as operators' scripts have always read it.
        body = asdict(self)
        return {"state": body.pop("state"), **body}


TokenStatus = TokenSnapshot | MissingTokenState


def status_from_script(snap: dict[str, Any]) -> TokenStatus:
    if snap.get("missing"):
        return MissingTokenState(now=snap["now_ms"] / 1000)
    return TokenSnapshot.from_script(snap)
