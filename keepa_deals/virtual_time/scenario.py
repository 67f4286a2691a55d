"""Scenario files: what a simulation changes mid-run, read and checked before it starts.

The schema is documented in the package docstring (`keepa_deals.virtual_time`). Every
problem is a ScenarioError naming the file and the field, raised before any token is
spent, so a typo never turns into a run that silently tests nothing.
"""

from __future__ import annotations

import json
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from keepa_deals.errors import KeepaDealsError
from keepa_deals.keepa_sim.faults import FaultConfig

TOP_LEVEL = frozenset(
    {
        "name",
        "story",
        "description",
        "hours",
        "refill_rate",
        "seed",
        "simulator",
        "settings",
        "refuse",
        "events",
    }
)
SIMULATOR_FIELDS = frozenset({"catalogue_size", "deal_rate", "initial_tokens"})
# Applied in this order when one event carries several actions.
ACTIONS = ("set_plan", "clear_faults", "faults", "drift_tokens", "product_cost_factor")
# The simulator is answered in-process; these faults would block the process for
# wall-clock seconds (the adapter sleeps them), which virtual time cannot absorb.
WALL_CLOCK_FAULTS = ("latency_ms",)


class ScenarioError(KeepaDealsError, ValueError):
    """A scenario file is unreadable or breaks the schema."""


@dataclass(frozen=True)
class ScenarioEvent:
    """One timed change. Unset actions are None (clear_faults: False)."""

    at_s: float  # offset from the start of the run, simulated seconds
    set_plan: int | None = None
    clear_faults: bool = False
    faults: Mapping[str, Any] | None = None
    drift_tokens: int | None = None
    product_cost_factor: float | None = None

    def actions(self) -> list[str]:
        present = {
            "set_plan": self.set_plan is not None,
            "clear_faults": self.clear_faults,
            "faults": self.faults is not None,
            "drift_tokens": self.drift_tokens is not None,
            "product_cost_factor": self.product_cost_factor is not None,
        }
        return [name for name in ACTIONS if present[name]]


@dataclass(frozen=True)
class SimulatorShape:
    catalogue_size: int | None = None
    deal_rate: float | None = None
    initial_tokens: int | None = None


@dataclass(frozen=True)
class Scenario:
    name: str
    story: str = ""
    description: str = ""
    hours: float | None = None
    refill_rate: int | None = None
    seed: int | None = None
    simulator: SimulatorShape = field(default_factory=SimulatorShape)
    settings: Mapping[str, str] = field(default_factory=dict)
    refuse: tuple[Mapping[str, str], ...] = ()
    events: tuple[ScenarioEvent, ...] = ()

    @property
    def max_cost_factor(self) -> float:
        """The largest `product_cost_factor` any event sets (1.0 when none does)."""
        factors = [e.product_cost_factor for e in self.events if e.product_cost_factor]
        return max([1.0, *factors])


def load_scenario(path: str | Path) -> Scenario:
    """Read a .json or .toml scenario file and check it against the schema."""
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(f"{source}: cannot read the scenario: {exc.strerror}") from None
    try:
        raw: Any = tomllib.loads(text) if source.suffix == ".toml" else json.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        kind = "TOML" if source.suffix == ".toml" else "JSON"
        raise ScenarioError(f"{source}: not valid {kind}: {exc}") from None
    return parse_scenario(raw, name=source.stem, where=str(source))


def parse_scenario(raw: Any, *, name: str = "scenario", where: str = "scenario") -> Scenario:
    if not isinstance(raw, Mapping):
        raise ScenarioError(f"{where}: the top level must be an object")
    unknown = sorted(set(raw) - TOP_LEVEL)
    if unknown:
        raise ScenarioError(f"{where}: unknown field {unknown[0]!r}; known: {sorted(TOP_LEVEL)}")
    hours = raw.get("hours")
    if hours is not None:
        hours = _positive_number(where, "hours", hours)
    refill_rate = raw.get("refill_rate")
    if refill_rate is not None:
        refill_rate = _int_at_least(where, "refill_rate", refill_rate, 1)
    seed = raw.get("seed")
    if seed is not None:
        seed = _int_at_least(where, "seed", seed, 0)
    events = raw.get("events", [])
    if not isinstance(events, list):
        raise ScenarioError(f"{where}: events must be a list")
    parsed = tuple(_event(f"{where}: events[{i}]", e) for i, e in enumerate(events))
    refuse = raw.get("refuse", [])
    if not isinstance(refuse, list):
        raise ScenarioError(f"{where}: refuse must be a list of settings objects")
    return Scenario(
        name=_text(where, "name", raw.get("name", name)),
        story=_text(where, "story", str(raw.get("story", ""))),
        description=_text(where, "description", raw.get("description", "")),
        hours=hours,
        refill_rate=refill_rate,
        seed=seed,
        simulator=_simulator(where, raw.get("simulator", {})),
        settings=_settings(f"{where}: settings", raw.get("settings", {})),
        refuse=tuple(_settings(f"{where}: refuse[{i}]", r) for i, r in enumerate(refuse)),
        # Stable sort: events at the same offset keep the file's order.
        events=tuple(sorted(parsed, key=lambda e: e.at_s)),
    )


def _event(where: str, raw: Any) -> ScenarioEvent:
    if not isinstance(raw, Mapping):
        raise ScenarioError(f"{where}: an event must be an object")
    known = {"at_h", *ACTIONS}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ScenarioError(f"{where}: unknown field {unknown[0]!r}; known: {sorted(known)}")
    if "at_h" not in raw:
        raise ScenarioError(f"{where}: at_h (hours from the start) is required")
    at_h = raw["at_h"]
    if isinstance(at_h, bool) or not isinstance(at_h, int | float) or not math.isfinite(at_h):
        raise ScenarioError(f"{where}: at_h must be a number of hours")
    if at_h < 0:
        raise ScenarioError(f"{where}: at_h must not be negative")
    faults = raw.get("faults")
    if faults is not None:
        faults = _faults(where, faults)
    clear = raw.get("clear_faults", False)
    if not isinstance(clear, bool):
        raise ScenarioError(f"{where}: clear_faults must be true or false")
    plan = raw.get("set_plan")
    drift = raw.get("drift_tokens")
    factor = raw.get("product_cost_factor")
    event = ScenarioEvent(
        at_s=float(at_h) * 3600,
        set_plan=None if plan is None else _int_at_least(where, "set_plan", plan, 1),
        clear_faults=clear,
        faults=faults,
        drift_tokens=None if drift is None else _int(where, "drift_tokens", drift),
        product_cost_factor=None
        if factor is None
        else _positive_number(where, "product_cost_factor", factor),
    )
    if not event.actions():
        raise ScenarioError(f"{where}: an event needs at least one of {', '.join(ACTIONS)}")
    return event


def _faults(where: str, raw: Any) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise ScenarioError(f"{where}: faults must be an object (the simulator's fault schema)")
    try:
        config = FaultConfig.from_mapping(raw)
    except ValueError as exc:
        raise ScenarioError(f"{where}: faults: {exc}") from None
    for name in WALL_CLOCK_FAULTS:
        if getattr(config, name):
            raise ScenarioError(
                f"{where}: faults: {name} delays answers in wall-clock time, which a "
                "virtual-time simulation cannot absorb; leave it out"
            )
    if config.timeout_after_charge and config.timeout_mode == "stall" and "timeout_mode" in raw:
        raise ScenarioError(
            f'{where}: faults: timeout_mode "stall" holds the connection for wall-clock '
            'seconds; use "drop" (the client sees the same charged, unanswered request)'
        )
    out = dict(raw)
    if config.timeout_after_charge:
        out["timeout_mode"] = "drop"  # see above: same effect on the client, no wall wait
    return out


def _simulator(where: str, raw: Any) -> SimulatorShape:
    if not isinstance(raw, Mapping):
        raise ScenarioError(f"{where}: simulator must be an object")
    unknown = sorted(set(raw) - SIMULATOR_FIELDS)
    if unknown:
        raise ScenarioError(
            f"{where}: simulator: unknown field {unknown[0]!r}; known: {sorted(SIMULATOR_FIELDS)}"
        )
    size = raw.get("catalogue_size")
    rate = raw.get("deal_rate")
    initial = raw.get("initial_tokens")
    return SimulatorShape(
        catalogue_size=None if size is None else _int_at_least(where, "catalogue_size", size, 100),
        deal_rate=None if rate is None else _positive_number(where, "deal_rate", rate),
        initial_tokens=None if initial is None else _int(where, "initial_tokens", initial),
    )


def _settings(where: str, raw: Any) -> dict[str, str]:
    """NAME: VALUE pairs as `--set` takes them; numbers and booleans become text."""
    if not isinstance(raw, Mapping):
        raise ScenarioError(f"{where}: must be an object of NAME: VALUE settings")
    out: dict[str, str] = {}
    for name, value in raw.items():
        if isinstance(value, bool):
            raise ScenarioError(f"{where}: {name}: write the value as a number or a string")
        if not isinstance(value, str | int | float):
            raise ScenarioError(f"{where}: {name}: the value must be a string or a number")
        out[str(name)] = str(value)
    return out


def _text(where: str, name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ScenarioError(f"{where}: {name} must be a string")
    return value


def _int(where: str, name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ScenarioError(f"{where}: {name} must be a whole number")
    return value


def _int_at_least(where: str, name: str, value: Any, lowest: int) -> int:
    number = _int(where, name, value)
    if number < lowest:
        raise ScenarioError(f"{where}: {name} must be at least {lowest}")
    return number


def _positive_number(where: str, name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ScenarioError(f"{where}: {name} must be a number")
    if value <= 0:
        raise ScenarioError(f"{where}: {name} must be above 0")
    return float(value)
