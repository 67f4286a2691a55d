"""Durations as the operator reads them, in every CLI, doctor and the Diagnostics."""

from __future__ import annotations

import math


def duration(seconds: float | None, missing: str = "n/a") -> str:
    """45s, 12min, 3.1h. `missing` stands for None; an infinite duration (nothing but
    another class's action ends that wait) reads as such."""
    if seconds is None:
        return missing
    if math.isinf(seconds):
        return "until another class acts"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}min"
    return f"{seconds / 3600:.1f}h"
