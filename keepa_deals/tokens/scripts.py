"""The token scripts: the one place that calls them and knows their KEYS/ARGV layout.

Every decision is one EVALSHA, so the client's cost per call is the cost of a decision.
The arguments that never change for a manager (the KEYS list and the config JSON) are
encoded once here, and the call goes straight to `execute_command` (what redis-py's
`Script.__call__` ends in, less its per-call tuple building and isinstance checks).
`Script.__call__`'s one duty kept here: after NOSCRIPT (a Redis restart or SCRIPT
FLUSH empties the script cache) the script is loaded and the call retried once.

A script that fails inside Redis raises TokenScriptError, naming the script: redis-py
raises a plain ResponseError, a RedisError that status and doctor would report as
"Redis unreachable". Redis's refusals with their own class (OOM, READONLY, NOPERM) and
connection errors pass unchanged.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from functools import cache
from typing import Any

import redis
from redis.exceptions import NoScriptError

from keepa_deals.infra.lua import lua_source
from keepa_deals.keepa.envelope import TokenEnvelope
from keepa_deals.tokens.errors import TokenScriptError

_ENTRY_POINTS = ("acquire", "settle", "status", "recharge")

# ARGV values passed as bytes: the encoder returns bytes unchanged.
_EMPTY = b""
_FLAG = {True: b"1", False: b"0"}
# settle's ARGV[4..8] for a call that never reached Keepa: no server values, nothing consumed.
_NO_SERVER = (_EMPTY, _EMPTY, _EMPTY, _EMPTY, b"0")


@cache
def source(name: str) -> str:
    """lib.lua followed by the entry script: Redis scripts cannot import each other."""
    if name not in _ENTRY_POINTS:
        raise ValueError(f"no token script {name!r}")
    return lua_source("keepa_deals.tokens", "lib", name)


class TokenScripts:
    """The four entry scripts, bound to one manager's KEYS and config.

    Each method takes ARGV[1] (`now`: unix ms as a string, or "" for Redis TIME) and the
    script's own arguments, passes the config JSON as ARGV[2], and returns the script's
    raw reply.
    """

    def __init__(self, client: redis.Redis, keys: Sequence[str], config_json: str) -> None:
        # redis-py's command methods are untyped; the one used here is typed by hand.
        self._execute: Callable[..., Any] = client.execute_command
        self._load: Callable[[str], str] = client.script_load
        encoder = client.get_encoder()

        def encode(text: str) -> bytes:
            # As the client would encode it, so the digest matches what Redis receives.
            return text.encode(encoder.encoding, encoder.encoding_errors)

        # The SHA1 of the bytes Redis receives, as `Script` computes it; SCRIPT LOAD
        # returns the same digest.
        self._sha = {
            name: hashlib.sha1(encode(source(name)), usedforsecurity=False).hexdigest()
            for name in _ENTRY_POINTS
        }
        # numkeys and KEYS[...]: the start of every call's arguments after the SHA.
        self._keys: tuple[int | bytes, ...] = (len(keys), *(encode(k) for k in keys))
        self._config: bytes = encode(config_json)

    def acquire(self, now: str, cls: str, cost: int, can_sync: bool) -> Any:
        """ARGV[3] class, ARGV[4] cost, ARGV[5] "1" when the caller can sync."""
        return self._call("acquire", now, cls, cost, _FLAG[can_sync])

    def settle(
        self,
        now: str,
        grant_id: str,
        env: TokenEnvelope | None,
        sent_ms: int | None,
        sent_seq: int | None = None,
    ) -> Any:
        """ARGV[3] grant id or ""; ARGV[4..8] tokensLeft, timestamp, refillIn, refillRate,
        tokensConsumed ("" x 4 and "0" without a response); ARGV[9] sent ms or "";
        ARGV[10] the grant sequence number read before sending, or ""."""
        sent = _EMPTY if sent_ms is None else sent_ms
        seq = _EMPTY if sent_seq is None else sent_seq
        if env is None:
            return self._call("settle", now, grant_id, *_NO_SERVER, sent, seq)
        # The envelope's fields are ints already: the encoder writes them as str() would.
        return self._call(
            "settle",
            now,
            grant_id,
            env.tokens_left,
            env.timestamp_ms,
            env.refill_in_ms,
            env.refill_rate,
            env.tokens_consumed,
            sent,
            seq,
        )

    def status(self, now: str) -> Any:
        return self._call("status", now)

    def recharge(self, now: str, active: bool) -> Any:
        """ARGV[3] "1" pause, "0" resume."""
        return self._call("recharge", now, _FLAG[active])

    def _call(self, name: str, now: str, *args: Any) -> Any:
        try:
            try:
                return self._execute(
                    "EVALSHA", self._sha[name], *self._keys, now, self._config, *args
                )
            except NoScriptError:
                # Redis restarted or flushed its scripts: load this one and retry once. A
                # second NOSCRIPT (flushed again in between) propagates, as with `Script`.
                self._sha[name] = self._load(source(name))
                return self._execute(
                    "EVALSHA", self._sha[name], *self._keys, now, self._config, *args
                )
        except redis.ResponseError as exc:
            # Only the plain class: a script's runtime error. Its subclasses are Redis
            # refusing (NOSCRIPT twice, OOM, READONLY, NOPERM) and keep their meaning.
            if type(exc) is not redis.ResponseError:
                raise
            raise TokenScriptError(f"{name}.lua", str(exc)) from exc
