"""The `keepa-deals` command, one module per group of verbs (`entry` holds the group)."""

from keepa_deals.cli.entry import main

__all__ = ["main"]
