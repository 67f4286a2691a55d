"""Plumbing every layer may use: clocks, redaction, durations, Redis clients, key names,
Redis checks and the private redis-server helper. Imports nothing of ours above it."""
