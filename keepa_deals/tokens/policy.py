"""The token policy's parameters, as the Lua scripts receive them.

The policy itself lives only in the scripts (lua/lib.lua): there is no Python twin to
drift from them. This module turns Settings into the config the scripts read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from keepa_deals.config import TOKEN_CLASSES, Settings

# Lower number, higher priority. The order also fixes the KEYS layout of the scripts.
CLASS_PRIORITY = {"upsert": 0, "backfill": 1}
# How far ahead of our clock (Redis TIME) a Keepa timestamp may be and still be applied.
# Keepa stamps an answer before it reaches us, so only a clock error puts one ahead; a
# stamp applied 10 minutes ahead made every correct answer after it "stale". NTP keeps
# both clocks within milliseconds; a minute leaves room for a host without it.
STAMP_AHEAD_MAX_S = 60


@dataclass(frozen=True)
class ClassPolicy:
    name: str
    priority: int
    threshold: int
    share: float = 0.0
    gated: bool = False


@dataclass(frozen=True)
class TokenPolicy:
    classes: tuple[ClassPolicy, ...]
    floor: int = -180
    recharge_low: int = 20
    recharge_high: int = 280
    recharge_timeout_s: int = 3600
    grant_ttl_s: int = 300
    demand_ttl_s: int = 300
    sync_interval_s: int = 1800
    # KEEPA_PLAN_RATE: the rate decided on while Keepa has named none that can be a plan.
    plan_rate: int = 5
    stamp_ahead_max_s: int = STAMP_AHEAD_MAX_S
    _json: str = field(default="", init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        payload = {
            "floor": self.floor,
            "low": self.recharge_low,
            "high": self.recharge_high,
            "timeout_ms": self.recharge_timeout_s * 1000,
            "grant_ttl_ms": self.grant_ttl_s * 1000,
            "demand_ttl_ms": self.demand_ttl_s * 1000,
            "sync_interval_ms": self.sync_interval_s * 1000,
            "plan_rate": self.plan_rate,
            "stamp_ahead_ms": self.stamp_ahead_max_s * 1000,
            "classes": [
                {
                    "name": c.name,
                    "priority": c.priority,
                    "threshold": c.threshold,
                    "share": c.share,
                    "gated": c.gated,
                }
                for c in self.classes
            ],
        }
        # Serialised once: every decision passes it to the script unchanged.
        object.__setattr__(self, "_json", json.dumps(payload, separators=(",", ":")))

    @property
    def config_json(self) -> str:
        return self._json

    @property
    def class_names(self) -> list[str]:
        return [c.name for c in self.classes]

    def get(self, name: str) -> ClassPolicy | None:
        return next((c for c in self.classes if c.name == name), None)

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenPolicy:
        classes = tuple(
            ClassPolicy(
                name=name,
                priority=CLASS_PRIORITY[name],
                threshold=settings.threshold(name),
                share=settings.min_share(name),
                gated=name in settings.recharge_gated_classes,
            )
            for name in TOKEN_CLASSES
        )
        return cls(
            classes=classes,
            floor=settings.deficit_floor,
            recharge_low=settings.recharge_low,
            recharge_high=settings.recharge_high,
            recharge_timeout_s=settings.recharge_timeout_s,
            grant_ttl_s=settings.grant_ttl_s,
            demand_ttl_s=settings.effective_demand_ttl_s,
            sync_interval_s=settings.token_sync_interval_s,
            plan_rate=settings.plan_rate,
        )
