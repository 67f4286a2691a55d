"""What a Keepa call returns: the body with the TokenEnvelope Keepa charged it under."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from keepa_deals.keepa.envelope import TokenEnvelope


@dataclass(frozen=True)
class KeepaReply:
    endpoint: str
    envelope: TokenEnvelope
    body: dict[str, Any] = field(repr=False)
    sent_at_s: float  # local time the request left, for ordering against grants


@dataclass(frozen=True)
class DealPage(KeepaReply):
    deals: list[dict[str, Any]] = field(default_factory=list, repr=False)


@dataclass(frozen=True)
class ProductReply(KeepaReply):
    products: list[dict[str, Any]] = field(default_factory=list, repr=False)
