"""Deterministic pseudo-randomness keyed by what is being drawn, never by call order.

Every fact in the simulated catalogue is `mix(seed, product, cycle, ...)`, so two
simulators with one seed agree whatever order they are asked in, and nothing depends
on a shared RNG consumed by requests.
"""

from __future__ import annotations

import hashlib

MASK64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15


def fmix(value: int) -> int:
    """splitmix64's finaliser: a fast, well-mixed 64-bit permutation."""
    value = (value ^ (value >> 30)) * 0xBF58476D1CE4E5B9 & MASK64
    value = (value ^ (value >> 27)) * 0x94D049BB133111EB & MASK64
    return value ^ (value >> 31)


def mix(*parts: int) -> int:
    """One 64-bit hash of several integers (negative ones too)."""
    acc = _GOLDEN
    for part in parts:
        acc = fmix((acc + (part & MASK64) + _GOLDEN) & MASK64)
    return acc


def text_key(text: str) -> int:
    """A stable 64-bit number for a string (Python's `hash` is salted per process)."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def unit(value: int, shift: int = 0) -> float:
    """16 bits of `value` from `shift` as a float in [0, 1)."""
    return ((value >> shift) & 0xFFFF) / 65536.0


def lerp(low: float, high: float, fraction: float) -> float:
    return low + (high - low) * fraction


def pick(value: int, options: tuple[str, ...], shift: int = 0) -> str:
    return options[((value >> shift) & 0xFFFF) % len(options)]
