"""What one simulation is asked to do: command-line options over the scenario's values
over the defaults, and the settings they make.

Settings start from the built-in defaults, not from `.env` or the environment: a
simulation must replay the same way on every machine. Scenario settings apply first,
then each `--set NAME=VALUE`, through `Settings.with_overrides`, so every name and value
is checked exactly as at start-up (ConfigError names what is wrong).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from keepa_deals.config import Settings
from keepa_deals.errors import ConfigError
from keepa_deals.keepa_sim import DEFAULT_CATALOGUE_SIZE
from keepa_deals.virtual_time.scenario import Scenario, ScenarioError
from keepa_deals.virtual_time.stack import OWNED_SETTINGS

DEFAULT_HOURS = 48.0
DEFAULT_REFILL_RATE = 5
DEFAULT_SEED = 1

T = TypeVar("T")


@dataclass(frozen=True)
class SimulationOptions:
    hours: float | None = None
    refill_rate: int | None = None
    seed: int | None = None
    catalogue_size: int | None = None
    deal_rate: float | None = None
    initial_tokens: int | None = None
    overrides: Mapping[str, str] = field(default_factory=dict)  # --set, applied last
    scenario: Scenario | None = None
    redis_url: str | None = None
    db_path: Path | None = None

    def resolved(self) -> ResolvedOptions:
        """Options first, then the scenario, then the defaults."""
        sc = self.scenario
        shape = sc.simulator if sc is not None else None
        return ResolvedOptions(
            hours=_first(self.hours, sc.hours if sc else None, DEFAULT_HOURS),
            refill_rate=_first(
                self.refill_rate, sc.refill_rate if sc else None, DEFAULT_REFILL_RATE
            ),
            seed=_first(self.seed, sc.seed if sc else None, DEFAULT_SEED),
            catalogue_size=_first(
                self.catalogue_size,
                shape.catalogue_size if shape else None,
                DEFAULT_CATALOGUE_SIZE,
            ),
            deal_rate=_first(self.deal_rate, shape.deal_rate if shape else None, 1.0),
            initial_tokens=self.initial_tokens
            if self.initial_tokens is not None
            else (shape.initial_tokens if shape else None),
            settings=build_settings([sc.settings if sc else {}, self.overrides], where=_where(sc)),
            changed={**(sc.settings if sc else {}), **self.overrides},
            refused=verify_refusals(sc) if sc is not None else [],
        )


@dataclass(frozen=True)
class ResolvedOptions:
    hours: float
    refill_rate: int
    seed: int
    catalogue_size: int
    deal_rate: float
    initial_tokens: int | None
    settings: Settings
    changed: dict[str, str]  # every NAME=VALUE applied, scenario's and --set's
    refused: list[dict[str, Any]]  # the scenario's `refuse` entries and why each was


def parse_assignments(pairs: Iterable[str]) -> dict[str, str]:
    """`NAME=VALUE` strings (repeatable `--set`) to a dict; the last one of a name wins."""
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ConfigError(
                "--set", "<hidden>", "must be NAME=VALUE with NAME as in .env.example"
            )
        out[name] = value
    return out


def build_settings(layers: Iterable[Mapping[str, str]], where: str = "--set") -> Settings:
    """Default settings with each layer of NAME=VALUE applied in turn."""
    settings = Settings()
    for layer in layers:
        owned = sorted(set(layer) & set(OWNED_SETTINGS))
        if owned:
            raise ConfigError(
                owned[0],
                "<hidden>",
                f"is set by the simulation itself ({where}); use --redis-url or --db",
            )
        if layer:
            settings = settings.with_overrides(layer)
    return settings


def verify_refusals(scenario: Scenario) -> list[dict[str, Any]]:
    """Each `refuse` entry must be refused at start-up, with the reason ConfigError
    gives; one that is accepted is a scenario failure (a failure mode the project promised to
    make impossible has become possible again)."""
    out: list[dict[str, Any]] = []
    for entry in scenario.refuse:
        try:
            build_settings([scenario.settings, entry], where=_where(scenario))
        except ConfigError as exc:
            out.append({"settings": dict(entry), "refused": str(exc)})
            continue
        shown = ", ".join(f"{k}={v}" for k, v in entry.items())
        raise ScenarioError(
            f"{_where(scenario)}: expected the settings {shown} to be refused at start-up, "
            "but they were accepted"
        )
    return out


def _where(scenario: Scenario | None) -> str:
    return f"scenario {scenario.name}" if scenario is not None else "--set"


def _first(*values: T | None) -> T:
    for value in values:
        if value is not None:
            return value
    raise ValueError("no value and no default")
