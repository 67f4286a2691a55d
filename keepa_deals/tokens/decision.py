"""What the TokenManager answers."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Grant:
    """Permission for one Keepa call. Settle it with the response's token fields."""

    id: str
    cls: str
    cost: int
    granted_at_ms: int


@dataclass(frozen=True, slots=True)
class Decision:
    granted: bool
    # Time until this request could be admitted if nothing else happens. `inf` means
    # only another class's action (its request expiring or being served) can admit it.
    wait_s: float
    # "ok", "threshold", "hard_stop", "deficit_floor", "recharge",
    # "yield_to_priority" or "yield_to_share"; "syncing" while another worker asks
    # /token; "rate_unconfirmed" when the request would be impossible at a refill rate
    # a reply named and /token has not confirmed it yet.
    reason: str
    balance: int
    target: int
    grant: Grant | None = None
