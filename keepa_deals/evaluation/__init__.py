"""Judging a deal in three stages, cheapest first, and the types the store keeps of it.
Pure functions over Keepa's JSON and the settings: no HTTP, no Redis, no SQLite."""
