"""How a failed Redis call is described: unreachable (state unknown) apart from an error
Redis answered with (a script's), along the exception's chain."""

from __future__ import annotations

import pytest
import redis

from keepa_deals.errors import KeepaDealsError
from keepa_deals.infra.redis_failure import describe, short_reason

WHERE = "redis://:***@cache.example:6379/0"


class WrappedScriptError(KeepaDealsError):
    """As a typed error raised `from` redis-py's would be."""


def wrapped(cause: BaseException) -> WrappedScriptError:
    try:
        raise cause
    except redis.RedisError as exc:
        try:
            raise WrappedScriptError("the status script failed") from exc
        except WrappedScriptError as outer:
            return outer


@pytest.mark.parametrize(
    "exc",
    [
        redis.ConnectionError("Error 111 connecting to cache.example:6379."),
        redis.AuthenticationError("invalid username-password pair or user is disabled."),
        redis.TimeoutError("Timeout reading from socket"),
        redis.BusyLoadingError("Redis is loading the dataset in memory"),
    ],
)
def test_a_redis_that_cannot_be_asked_is_unreachable(exc: redis.RedisError) -> None:
    failure = describe(exc, WHERE, script="token script")
    assert failure.cause == "unreachable"
    assert failure.detail == f"Redis unreachable at {WHERE}: {exc}"
    assert failure.as_part() == {
        "state": "unknown",
        "cause": "unreachable",
        "error": failure.detail,
    }


def test_an_error_redis_answered_with_is_the_script_s_error() -> None:
    exc = redis.ResponseError("user_script:12: Cannot serialise number: must not be NaN or Inf")
    failure = describe(exc, WHERE, script="token script")
    assert failure.cause == "script_error"
    assert failure.detail == f"token script error: {exc}"


def test_an_error_answered_to_a_plain_command_is_a_redis_error() -> None:
    exc = redis.ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value")
    failure = describe(exc, WHERE)
    assert failure.cause == "redis_error"
    assert failure.detail == f"Redis at {WHERE} answered with an error: {exc}"


def test_a_typed_error_raised_from_redis_py_s_is_classified_by_its_cause() -> None:
    script = describe(wrapped(redis.ResponseError("boom")), WHERE, script="token script")
    assert (script.cause, script.detail) == ("script_error", "token script error: boom")
    down = describe(wrapped(redis.ConnectionError("refused")), WHERE, script="token script")
    assert (down.cause, down.detail) == ("unreachable", f"Redis unreachable at {WHERE}: refused")


def test_anything_else_is_named_by_its_type() -> None:
    failure = describe(ValueError("Expecting value: line 1 column 1"), WHERE, script="x")
    assert (failure.cause, failure.detail) == (
        "error",
        "ValueError: Expecting value: line 1 column 1",
    )


def test_short_reasons() -> None:
    assert short_reason("unreachable") == "Redis unreachable"
    assert short_reason("script_error") == "script error"
    assert short_reason("something new") == "error"
