"""`keepa-deals simulator`: serve the Keepa simulator until interrupted."""

from __future__ import annotations

import logging
import sys
import threading

import click

from keepa_deals.keepa_sim.bucket import REFILL_MODES
from keepa_deals.keepa_sim.simulator import DEFAULT_CATALOGUE_SIZE, KeepaSimulator
from keepa_deals.keepa_sim.timesource import CLOCK_NAMES


@click.command("simulator")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
@click.option(
    "--port",
    default=8765,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port to listen on (0: any free port).",
)
@click.option(
    "--seed",
    default=0,
    show_default=True,
    type=int,
    help="Catalogue, deals and faults are a function of the seed.",
)
@click.option(
    "--refill-rate",
    default=5,
    show_default=True,
    type=click.IntRange(min=1),
    help="Tokens per minute (the plan); the cap is 60x this.",
)
@click.option(
    "--refill-mode",
    type=click.Choice(REFILL_MODES),
    default="tick",
    show_default=True,
    help="A tick of refill-rate tokens a minute, or a steady flow.",
)
@click.option(
    "--clock",
    type=click.Choice(CLOCK_NAMES),
    default="wall",
    show_default=True,
    help="manual: time moves only via POST /_sim/advance.",
)
@click.option(
    "--time-scale",
    default=1.0,
    show_default=True,
    type=click.FloatRange(min=0.0, min_open=True),
    help="With --clock scaled: simulated seconds per wall second.",
)
@click.option(
    "--key",
    "keys",
    multiple=True,
    envvar="KEEPA_SIM_KEYS",
    help="Accept only these API keys (repeatable). Default: accept any key.",
)
@click.option(
    "--initial-tokens",
    type=int,
    default=None,
    help="A key's balance at first use (default: a full bucket).",
)
@click.option(
    "--catalogue-size",
    default=DEFAULT_CATALOGUE_SIZE,
    show_default=True,
    type=click.IntRange(min=1),
    help="Number of simulated products.",
)
@click.option(
    "--deal-rate",
    default=1.0,
    show_default=True,
    type=click.FloatRange(min=0.0, min_open=True),
    help="Scales how often products change, and so the deals an hour.",
)
@click.option(
    "--sort-jitter",
    default=0.05,
    show_default=True,
    type=click.FloatRange(0.0, 1.0),
    help="How loosely /deal pages are sorted.",
)
@click.option(
    "--log-level",
    default="WARNING",
    show_default=True,
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"]),
)
def simulator_command(
    host: str,
    port: int,
    seed: int,
    refill_rate: int,
    refill_mode: str,
    clock: str,
    time_scale: float,
    keys: tuple[str, ...],
    initial_tokens: int | None,
    catalogue_size: int,
    deal_rate: float,
    sort_jitter: float,
    log_level: str,
) -> None:
    """Serve a simulated Keepa API (/token, /product, /deal; admin under /_sim/)."""
    logging.basicConfig(level=log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    sim = KeepaSimulator(
        seed=seed,
        refill_rate=refill_rate,
        clock=clock,
        time_scale=time_scale,
        refill_mode="continuous" if refill_mode == "continuous" else "tick",
        initial_tokens=initial_tokens,
        catalogue_size=catalogue_size,
        deal_rate=deal_rate,
        sort_jitter=sort_jitter,
        accept_any_key=not keys,
        keys=keys,
    ).start(host, port)
    click.echo(
        f"Keepa simulator listening on {sim.url} (seed={seed}, refill_rate={refill_rate}/min, "
        f"clock={clock}, keys={'any' if not keys else len(keys)})"
    )
    sys.stdout.flush()  # a parent process waits for this line on a pipe
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()
