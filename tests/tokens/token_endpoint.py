"""Keepa's free /token over a model bucket, for a TokenManager that must sync.

Answers what the bucket holds at the clock's time, stamped on that clock, and counts
the calls (Keepa asks clients not to poll /token). `rate_shown` replaces the refill
rate the answers report (a Keepa answer that names a wrong rate).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from keepa_deals.infra.clock import ManualClock
from keepa_deals.keepa.envelope import TokenEnvelope
from keepa_deals.keepa.replies import KeepaReply
from tests.tokens.model import KeepaBucket


@dataclass
class TokenEndpoint:
    bucket: KeepaBucket
    clock: ManualClock
    rate_shown: int | None = None
    calls: int = 0

    def token(self) -> KeepaReply:
        self.calls += 1
        body: dict[str, Any] = self.bucket.envelope(self.clock.now(), 0)
        if self.rate_shown is not None:
            body["refillRate"] = self.rate_shown
        return KeepaReply("token", TokenEnvelope.from_body(body), body, self.clock.now())
