"""keepa-deals: harvest Keepa deals into SQLite under one shared token budget."""

__version__ = "0.1.0"
