"""Injected faults, deterministic given the seed.

Set with `POST /_sim/faults` (or `KeepaSimulator.set_faults`), cleared with
`DELETE /_sim/faults`. Setting replaces the whole configuration and restarts its
counters. Every field is optional:

    {
      "endpoints": ["deal", "product"],  # paid endpoints the faults apply to
      "storm_429": 0,           # the next N paid requests get 429 NOT_ENOUGH_TOKEN
                                #   whatever the balance; nothing is charged
      "error_5xx_next": 0,      # the next N paid requests get a 5xx; nothing is charged
      "error_5xx_rate": 0.0,    # and this share of the later ones
      "error_5xx_status": 500,  # 500, 502 or 503
      "error_5xx_body": "json", # "json": Keepa's error body with the token fields;
                                #   "html": a proxy's page
      "latency_ms": 0,          # wall-clock delay added to each answer of `endpoints`
      "timeout_after_charge": 0,  # the next N paid requests are charged, then not answered
      "timeout_mode": "stall",  # "stall": hold the connection `stall_s`, then close it;
                                #   "drop": close it at once (the client sees a reset)
      "stall_s": 30.0,
      "malformed_body": 0,      # the next N paid requests are charged and answered 200
                                #   with a body that is not JSON
      "truncated_body": 0,      # the next N paid requests are charged and their body is
                                #   cut in half under the full Content-Length
      "drop_products_rate": 0.0,  # share of known products left out of /product replies
                                  #   (only returned products are charged)
      "null_rate": 0.0,         # share of returned products with nulls inside their
                                #   csv and stats arrays
      "offers_fail_rate": 0.0   # share of products whose offer fetch fails (offers=):
                                #   offersSuccessful false, 1 token
    }

"next N" faults count down in request order; rates are drawn from hash(seed, fault,
n) where n counts that fault's draws since it was set, so a run replays exactly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from keepa_deals.keepa_sim.hashing import mix, text_key, unit
from keepa_deals.keepa_sim.wire import RawJSON, Response

_COUNTDOWNS = (
    "storm_429",
    "error_5xx_next",
    "timeout_after_charge",
    "malformed_body",
    "truncated_body",
)
_RATES = ("error_5xx_rate", "drop_products_rate", "null_rate", "offers_fail_rate")


@dataclass(frozen=True)
class FaultConfig:
    endpoints: tuple[str, ...] = ("deal", "product")
    storm_429: int = 0
    error_5xx_next: int = 0
    error_5xx_rate: float = 0.0
    error_5xx_status: int = 500
    error_5xx_body: str = "json"
    latency_ms: int = 0
    timeout_after_charge: int = 0
    timeout_mode: str = "stall"
    stall_s: float = 30.0
    malformed_body: int = 0
    truncated_body: int = 0
    drop_products_rate: float = 0.0
    null_rate: float = 0.0
    offers_fail_rate: float = 0.0

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> FaultConfig:
        if not isinstance(raw, Mapping):
            raise ValueError("faults must be a JSON object")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ValueError(f"unknown fault {unknown[0]!r}; known: {sorted(known)}")
        values: dict[str, Any] = {}
        for name in (*_COUNTDOWNS, "latency_ms"):
            if name in raw:
                values[name] = _non_negative_int(name, raw[name])
        for name in _RATES:
            if name in raw:
                rate = raw[name]
                if (
                    isinstance(rate, bool)
                    or not isinstance(rate, int | float)
                    or not (0.0 <= rate <= 1.0)
                ):
                    raise ValueError(f"{name} must be a number within 0..1")
                values[name] = float(rate)
        if "endpoints" in raw:
            endpoints = raw["endpoints"]
            if not isinstance(endpoints, list) or not set(endpoints) <= {"deal", "product"}:
                raise ValueError('endpoints must be a list drawn from "deal", "product"')
            values["endpoints"] = tuple(endpoints)
        if "error_5xx_status" in raw:
            if raw["error_5xx_status"] not in (500, 502, 503):
                raise ValueError("error_5xx_status must be 500, 502 or 503")
            values["error_5xx_status"] = raw["error_5xx_status"]
        for name, allowed in (
            ("error_5xx_body", ("json", "html")),
            ("timeout_mode", ("stall", "drop")),
        ):
            if name in raw:
                if raw[name] not in allowed:
                    raise ValueError(f"{name} must be one of {allowed}")
                values[name] = raw[name]
        if "stall_s" in raw:
            stall = raw["stall_s"]
            if isinstance(stall, bool) or not isinstance(stall, int | float) or stall < 0:
                raise ValueError("stall_s must be a non-negative number")
            values["stall_s"] = float(stall)
        return cls(**values)


def _non_negative_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer")
    return value


class Faults:
    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.config = FaultConfig()
        self._left: dict[str, int] = {}
        self._draws: dict[str, int] = {}
        self.injected: dict[str, int] = {}

    def set(self, raw: Mapping[str, Any]) -> None:
        self.config = FaultConfig.from_mapping(raw)
        self._left = {name: getattr(self.config, name) for name in _COUNTDOWNS}
        self._draws = {}

    def clear(self) -> None:
        self.set({})

    def applies(self, endpoint: str) -> bool:
        return endpoint in self.config.endpoints

    def take(self, name: str) -> bool:
        """Use up one of the next-N of a countdown fault."""
        if self._left.get(name, 0) > 0:
            self._left[name] -= 1
            self.injected[name] = self.injected.get(name, 0) + 1
            return True
        return False

    def draw(self, name: str) -> bool:
        """A deterministic Bernoulli draw at the configured rate of `name`."""
        rate = float(getattr(self.config, name))
        if rate <= 0.0:
            return False
        n = self._draws.get(name, 0)
        self._draws[name] = n + 1
        hit = rate >= 1.0 or unit(mix(self.seed, text_key(name), n)) < rate
        if hit:
            self.injected[name] = self.injected.get(name, 0) + 1
        return hit

    def after_charge(self, response: Response) -> None:
        """Spoil a charged answer: never deliver it, or deliver garbage."""
        if self.take("timeout_after_charge"):
            response.after = "stall" if self.config.timeout_mode == "stall" else "drop"
            response.stall_s = self.config.stall_s
        elif self.take("malformed_body"):
            response.body = b"<html><body>Service temporarily overloaded</body></html>"
            response.headers = {"Content-Type": "text/html"}
        elif self.take("truncated_body"):
            response.after = "truncate"

    def snapshot(self) -> dict[str, Any]:
        config = asdict(self.config)
        config["endpoints"] = list(self.config.endpoints)
        return {"config": config, "remaining": dict(self._left), "injected": dict(self.injected)}


def _parsed(container: dict[str, Any], name: str) -> Any:
    value = container.get(name)
    if isinstance(value, RawJSON):
        value = container[name] = value.parse()
    return value


def inject_nulls(product: dict[str, Any]) -> None:
    """Nulls where a careless parser trips: inside csv series and stats arrays."""
    csv = _parsed(product, "csv")
    if isinstance(csv, list):
        used = csv[2]
        if isinstance(used, list) and len(used) >= 2:
            used[1] = None
        csv[3] = None
    stats = product.get("stats")
    if isinstance(stats, dict):
        for name in ("current", "avg90", "min"):
            values = _parsed(stats, name)
            if isinstance(values, list):
                values[2] = None
