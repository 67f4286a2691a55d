"""`python -m keepa_deals.simulator`: the same command as `keepa-deals simulator`."""

from keepa_deals.simulator.cli import simulator_command

if __name__ == "__main__":
    simulator_command(prog_name="python -m keepa_deals.simulator")
