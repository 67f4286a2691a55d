"""What a failed Redis call means for a report: never "free", never "off".

When Redis cannot be asked, what it holds (locks, the token state, recharge) is
unknown: a report that reads a failed call as "nothing there" says the locks are free
while it knows nothing. And an error Redis answered with (a token script that failed,
WRONGTYPE on a key) is not Redis being unreachable: the operator's next step differs
(check the password or the server, versus read the script's error), so the two are
named apart. `status`, `doctor` and the Diagnostics all describe failures here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import redis

Cause = Literal["unreachable", "script_error", "redis_error", "error"]
_SHORT: dict[str, str] = {
    "unreachable": "Redis unreachable",
    "script_error": "script error",
    "redis_error": "Redis error",
}


def short_reason(cause: str) -> str:
    """A few words for a line that repeats a reason given in full elsewhere."""
    return _SHORT.get(cause, "error")


@dataclass(frozen=True)
class RedisFailure:
    """Why a part of a report is unknown: `cause` for programs, `detail` for people."""

    cause: Cause
    detail: str

    def as_part(self) -> dict[str, str]:
        """The report's entry for a part that could not be read."""
        return {"state": "unknown", "cause": self.cause, "error": self.detail}


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception and what it was raised from or during, nearest first."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and all(current is not s for s in seen):
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def describe(exc: BaseException, where: str, *, script: str | None = None) -> RedisFailure:
    """Classify `exc`, raised while asking the Redis at `where` (a masked URL).

    `script` names the Lua script the call ran (e.g. "token script"): an error Redis
    answered with then reads as that script's error. The cause is looked for along the
    exception's chain, so an error type that wraps redis-py's (raised `from` it) is
    classified by what happened underneath.
    """
    for link in _chain(exc):
        # ConnectionError covers a refused password (AuthenticationError) and a server
        # still loading its data (BusyLoadingError): either way nothing could be read.
        if isinstance(link, redis.ConnectionError | redis.TimeoutError):
            return RedisFailure("unreachable", f"Redis unreachable at {where}: {link}")
        if isinstance(link, redis.ResponseError):
            if script is not None:
                return RedisFailure("script_error", f"{script} error: {link}")
            return RedisFailure("redis_error", f"Redis at {where} answered with an error: {link}")
    return RedisFailure("error", f"{type(exc).__name__}: {exc}")
