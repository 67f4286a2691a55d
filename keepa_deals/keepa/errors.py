"""Keepa's errors: each carries what its caller needs (the envelope of a 429, the status).

Every message passes through `redact`, so no message built from a URL or a body can
carry the API key, whoever wrote it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from keepa_deals.errors import KeepaDealsError
from keepa_deals.infra.redact import redact

if TYPE_CHECKING:
    from keepa_deals.keepa.envelope import TokenEnvelope


class KeepaError(KeepaDealsError):
    """A Keepa request failed. `envelope` holds the token fields when the body had them."""

    def __init__(
        self,
        message: str,
        *,
        endpoint: str = "",
        status: int | None = None,
        envelope: TokenEnvelope | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.status = status
        self.envelope = envelope
        # The last line of defence: a message built from a URL or a body must not
        # carry the key, whoever wrote it.
        super().__init__(redact(message))


class NotEnoughTokens(KeepaError):
    """HTTP 429: the balance was <= 0 and nothing was charged. Retry after `retry_after_s`."""

    @property
    def retry_after_s(self) -> float:
        return (self.envelope.refill_in_ms / 1000) if self.envelope else 60.0


class InvalidKey(KeepaError):
    """The API key was rejected (HTTP 400 naming the key)."""


class PaymentRequired(KeepaError):
    """HTTP 402: the key's subscription is expired or unpaid."""


class BadRequest(KeepaError):
    """Any other 4xx: the request itself is wrong; retrying will not help."""


class ServerError(KeepaError):
    """5xx after the bounded retries were spent."""


class KeepaTimeout(KeepaError):
    """No answer in time. Keepa may already have charged the request."""

    may_have_charged = True


class KeepaConnectionError(KeepaError):
    """Keepa could not be reached at all; nothing was charged."""


class MalformedResponse(KeepaError):
    """The body was not JSON, was truncated, or lacked the fields Keepa always sends."""
