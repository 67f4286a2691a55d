"""The token fields Keepa puts on every response, errors included."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class TokenEnvelope:
    tokens_left: int
    refill_in_ms: int
    refill_rate: int
    tokens_consumed: int
    token_flow_reduction: float
    timestamp_ms: int
    processing_time_ms: int = 0

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> TokenEnvelope:
        """Parse the token fields; raises KeyError/TypeError/ValueError when absent or
        not numbers (the client turns that into MalformedResponse)."""

        def num(name: str, default: float | None = None) -> float:
            value = body.get(name, default)
            if (
                value is None
                or isinstance(value, bool)
                or not isinstance(value, int | float)
                or (isinstance(value, float) and not math.isfinite(value))  # NaN, Infinity
            ):
                raise ValueError(f"token field {name!r} is missing or not a number: {value!r}")
            return value

        return cls(
            tokens_left=int(num("tokensLeft")),
            refill_in_ms=int(num("refillIn")),
            refill_rate=int(num("refillRate")),
            tokens_consumed=int(num("tokensConsumed", 0)),
            token_flow_reduction=float(num("tokenFlowReduction", 0.0)),
            timestamp_ms=int(num("timestamp")),
            processing_time_ms=int(num("processingTimeInMs", 0)),
        )

    def to_body(self) -> dict[str, Any]:
        """Keepa's own field names, as `settle`/`observe` also accept."""
        return {
            "tokensLeft": self.tokens_left,
            "refillIn": self.refill_in_ms,
            "refillRate": self.refill_rate,
            "tokensConsumed": self.tokens_consumed,
            "tokenFlowReduction": self.token_flow_reduction,
            "timestamp": self.timestamp_ms,
            "processingTimeInMs": self.processing_time_ms,
        }
