"""The TokenManager's errors: each carries the wait, the class and the cost it refused."""

from __future__ import annotations

from keepa_deals.errors import KeepaDealsError


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
