"""`python -m keepa_deals.keepa_sim`: the same command as `keepa-deals simulator`."""

from keepa_deals.keepa_sim.cli import simulator_command

if __name__ == "__main__":
    simulator_command(prog_name="python -m keepa_deals.keepa_sim")
