"""The systemd units in deploy/: what they promise the service on stop."""

from __future__ import annotations

from pathlib import Path

from keepa_deals.config import Settings
from keepa_deals.keepa_api import longest_backoff_s

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
    """The default KillMode (control-group) sends SIGTERM to the pool's processes too,
    and they die at once, mid-run: no warm shutdown at all."""
    unit = service_section("keepa-deals-worker.service")
    assert unit["KillSignal"] == "SIGTERM"
    assert unit["KillMode"] == "mixed"


def test_the_worker_unit_waits_longer_than_a_run_takes_to_reach_its_next_check() -> None:
    """After SIGTERM a run stops at its next check: at worst after an inline token wait
    and one Keepa call that uses every timeout and retry (at the defaults)."""
    s = Settings()
    one_call_s = s.keepa_connect_timeout_s + s.keepa_read_timeout_s
    # Retries follow refused connections and 5xx answers, which fail within the
    # connect timeout; a read timeout is never retried.
    retries_s = s.keepa_max_retries * s.keepa_connect_timeout_s + longest_backoff_s(
        s.keepa_max_retries
    )
    worst_s = s.harvest_inline_wait_s + one_call_s + retries_s
    timeout_s = float(service_section("keepa-deals-worker.service")["TimeoutStopSec"])
    assert timeout_s > worst_s, (timeout_s, worst_s)
