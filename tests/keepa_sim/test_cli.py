"""The command line: `python -m keepa_deals.keepa_sim` serves until stopped."""

from __future__ import annotations

import re
import subprocess
import sys

import requests
from click.testing import CliRunner

from keepa_deals.keepa_sim.cli import simulator_command


def test_help_lists_the_options() -> None:
    result = CliRunner().invoke(simulator_command, ["--help"])
    assert result.exit_code == 0
    for option in (
        "--host",
        "--port",
        "--seed",
        "--refill-rate",
        "--clock",
        "--time-scale",
        "--key",
        "--initial-tokens",
        "--catalogue-size",
        "--refill-mode",
    ):
        assert option in result.output


def test_bad_options_are_refused() -> None:
    assert CliRunner().invoke(simulator_command, ["--clock", "sundial"]).exit_code == 2
    assert CliRunner().invoke(simulator_command, ["--refill-rate", "0"]).exit_code == 2


def test_the_module_serves_and_prints_where() -> None:
    key = "cli-secret-key-991"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "keepa_deals.keepa_sim",
            "--port",
            "0",
            "--clock",
            "manual",
            "--seed",
            "3",
            "--catalogue-size",
            "500",
            "--refill-rate",
            "7",
            "--key",
            key,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = re.search(r"listening on (http://127\.0\.0\.1:\d+)", line)
        assert match, line
        assert key not in line
        url = match.group(1)
        body = requests.get(f"{url}/token", params={"key": key}, timeout=10).json()
        assert (body["tokensLeft"], body["refillRate"]) == (420, 7)
        assert requests.get(f"{url}/token", params={"key": "other"}, timeout=10).status_code == 400
        requests.post(f"{url}/_sim/advance", params={"seconds": 60}, timeout=10)
        assert requests.get(f"{url}/_sim/state", timeout=10).json()["now_s"] > 0
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=10)
    assert key not in stderr
