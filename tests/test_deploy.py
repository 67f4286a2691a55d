"""The systemd units in deploy/: what they promise the service on stop."""

from __future__ import annotations

from pathlib import Path

from keepa_deals.config import Settings
from keepa_deals.service.shutdown import longest_stop_s

UNITS = Path(__file__).resolve().parent.parent / "deploy" / "systemd"


def service_section(name: str) -> dict[str, str]:
    """[Service] of a unit (systemd's syntax: `Key=value`, `#` comments, no repeats
    that matter here)."""
    values: dict[str, str] = {}
    section = ""
    for raw in (UNITS / name).read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
        elif section == "Service":
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def test_the_worker_unit_sends_sigterm_to_the_main_process_alone() -> None:
    """The default KillMode (control-group) also sends SIGTERM to the pool's processes,
    where it ends the running run at once, mid-call: no warm shutdown for it."""
    unit = service_section("keepa-deals-worker.service")
    assert unit["KillSignal"] == "SIGTERM"
    assert unit["KillMode"] == "mixed"


def test_the_worker_unit_waits_longer_than_a_run_takes_to_reach_its_next_check() -> None:
    timeout_s = float(service_section("keepa-deals-worker.service")["TimeoutStopSec"])
    assert timeout_s > longest_stop_s(Settings())
