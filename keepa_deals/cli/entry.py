"""The `keepa-deals` command: one click group, one subcommand per operator task."""

from __future__ import annotations

import json
import sys

import click

from keepa_deals import __version__
from keepa_deals.cli.dashboard import dashboard_command
from keepa_deals.cli.ops import (
    backfill_command,
    doctor_command,
    migrate_command,
    pause_command,
    reset_watermark_command,
    resume_command,
    status_command,
)
from keepa_deals.cli.run import run_command
from keepa_deals.cli.service import beat_command, worker_command
from keepa_deals.cli.simulate import simulate_command
from keepa_deals.config import Settings, env_example
from keepa_deals.errors import ConfigError
from keepa_deals.infra.redact import install_log_redaction
from keepa_deals.keepa_sim.cli import simulator_command

HELP_OPTIONS = {"help_option_names": ["-h", "--help"]}


@click.group(context_settings=HELP_OPTIONS)
@click.version_option(__version__, prog_name="keepa-deals")
def main() -> None:
    """Harvest Keepa deals into SQLite under one shared token budget."""
    install_log_redaction()


@main.command("config")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--example", is_flag=True, help="Print the documented .env.example instead.")
def config_command(as_json: bool, example: bool) -> None:
    """Check the settings (from .env and the environment) and print them, key masked."""
    if example:
        click.echo(env_example(), nl=False)
        return
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    shown = settings.masked()
    if as_json:
        click.echo(json.dumps(shown, indent=2, sort_keys=True))
        return
    for name, value in shown.items():
        click.echo(f"{name}={value}")


main.add_command(simulator_command)
main.add_command(simulate_command)
main.add_command(worker_command)
main.add_command(beat_command)
main.add_command(run_command)
main.add_command(dashboard_command)
for _command in (
    status_command,
    doctor_command,
    migrate_command,
    pause_command,
    resume_command,
    reset_watermark_command,
    backfill_command,
):
    main.add_command(_command)
# On each command too, not only inherited from the group: click caches a command's help
# option the first time it builds one, so a command once run on its own (as the
# simulator's tests do) would otherwise keep answering only --help.
for _command in main.commands.values():
    _command.context_settings = {**HELP_OPTIONS, **_command.context_settings}


if __name__ == "__main__":
    main(prog_name="keepa-deals")
