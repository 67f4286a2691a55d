"""Talking to Keepa: the HTTP client, token envelopes, Keepa time, the deal query and
Keepa's errors. Knows nothing of tokens, the store, the harvest, the service or the CLI."""
