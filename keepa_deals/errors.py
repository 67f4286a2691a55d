"""Every error keepa-deals raises, under one base class.

Each error carries what its caller needs to act: the envelope of a 429, the wait of
a refusal, the setting that is wrong.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from keepa_deals.redact import redact

if TYPE_CHECKING:
    from keepa_deals.envelope import TokenEnvelope


class KeepaDealsError(Exception):
    """Base class of every error raised by keepa-deals."""


# --- configuration ---------------------------------------------------------------


class ConfigError(KeepaDealsError, ValueError):
    """A setting is invalid. Names the variable, the value and what is allowed."""

    def __init__(self, variable: str, value: object, allowed: str) -> None:
        self.variable = variable
        self.value = value
        self.allowed = allowed
        super().__init__(f"{variable}={value!s}: {allowed}")


# --- Keepa -----------------------------------------------------------------------


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


# --- tokens ----------------------------------------------------------------------


class TokenError(KeepaDealsError):
    """Base of the TokenManager's errors."""


class ImpossibleRequest(TokenError, ValueError):
    """No reachable balance could ever admit this request; waiting would be forever."""

    def __init__(self, message: str, *, cls: str, cost: int, target: int, capacity: int) -> None:
        self.cls = cls
        self.cost = cost
        self.target = target
        self.capacity = capacity
        super().__init__(message)


class TokensUnavailable(TokenError):
    """The computed wait is longer than the caller allowed. Stop; beat brings the task back."""

    def __init__(
        self, cls: str, cost: int, wait_s: float, reason: str, balance: int, target: int
    ) -> None:
        self.cls = cls
        self.cost = cost
        self.wait_s = wait_s
        self.reason = reason
        self.balance = balance
        self.target = target
        super().__init__(
            f"{cls}: {cost} tokens not available for {wait_s:.0f}s "
            f"(reason {reason}, balance {balance}, target {target})"
        )


class AcquireStopped(TokenError):
    """The caller's `stop` said so while `acquire` waited: nothing was granted."""

    def __init__(self, cls: str, cost: int, waited_s: float) -> None:
        self.cls = cls
        self.cost = cost
        self.waited_s = waited_s
        super().__init__(f"{cls}: asked to stop after waiting {waited_s:.1f}s for {cost} tokens")


class TokenScriptError(TokenError):
    """A token script failed inside Redis: Redis answered, so it is reachable, and the
    cause is the script or the state it read. Carries the script and Redis's error text
    (the scripts' arguments never hold the API key). Deliberately not a RedisError:
    callers that read RedisError as "Redis unreachable" must not read this so."""

    def __init__(self, script: str, detail: str) -> None:
        self.script = script
        self.detail = detail
        super().__init__(f"token script {script} failed in Redis: {detail}")


class UnknownTokenClass(TokenError, KeyError):
    def __init__(self, cls: str, known: list[str]) -> None:
        self.cls = cls
        super().__init__(f"unknown token class {cls!r}; known classes: {', '.join(known)}")
