"""`python -m keepa_deals.virtual_time`: the same command as `keepa-deals simulate`."""

from keepa_deals.virtual_time.cli import simulate_command

if __name__ == "__main__":
    simulate_command(prog_name="python -m keepa_deals.virtual_time")
