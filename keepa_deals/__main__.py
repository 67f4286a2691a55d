"""`python -m keepa_deals` is the `keepa-deals` command."""

from keepa_deals.cli import main

if __name__ == "__main__":
    main(prog_name="keepa-deals")
