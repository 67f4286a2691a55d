"""TokenManager: one atomic token budget in Redis for every worker on every host.

Every decision and every reconciliation is a single Lua script call (lua/*.lua), so
concurrent workers can neither overspend nor lose each other's updates (failure modes: lost updates
between workers, per-process counters). This class only moves values in and out of the scripts,
syncs from Keepa's free `/token` when the scripts ask, and sleeps the waits they compute (failure
mode "polling while waiting": nothing polls Keepa while waiting).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

import redis

from keepa_deals.infra.redis_client import redis_client
from keepa_deals.infra.redis_keys import RedisKeys
from keepa_deals.keepa.envelope import TokenEnvelope
from keepa_deals.keepa.errors import KeepaError
from keepa_deals.tokens.decision import Decision, Grant
from keepa_deals.tokens.errors import (
    AcquireStopped,
    ImpossibleRequest,
    TokenError,
    TokensUnavailable,
    UnknownTokenClass,
)
from keepa_deals.tokens.policy import TokenPolicy
from keepa_deals.tokens.scripts import TokenScripts
from keepa_deals.tokens.status import TokenSnapshot, TokenStatus, status_from_script

if TYPE_CHECKING:
    from keepa_deals.config import Settings
    from keepa_deals.infra.clock import Clock
    from keepa_deals.keepa.replies import KeepaReply

log = logging.getLogger(__name__)

# A refused decision never asks the caller to retry sooner than this.
MIN_RETRY_S = 0.05
SYNC_LOCK_TTL_S = 30
# Clock seconds between two looks at acquire()'s `stop` while it waits: a stopping
# worker's run sees it within this, and the looks cost nothing (a flag, no Redis).
STOP_CHECK_S = 1.0
# Why acquire.lua asks for a sync (its reply's third element).
SYNC_STALE = 0  # the state is there but old: on failure, decide on the estimate
SYNC_MISSING = 1  # no state at all: nothing to decide on
SYNC_CONFIRM_RATE = 2  # "impossible" at a rate only a reply named: /token confirms it


class TokenSource(Protocol):
    """What a sync needs of Keepa: its free /token (KeepaClient is one)."""

    def token(self) -> KeepaReply: ...


class TokenStateMissing(TokenError):
    """Redis holds no budget and there is no Keepa client to rebuild it from."""


class TokenManager:
    def __init__(
        self,
        client: redis.Redis,
        policy: TokenPolicy,
        keys: RedisKeys,
        clock: Clock | None = None,
        keepa: TokenSource | None = None,
    ) -> None:
        self.redis = client
        self.policy = policy
        self.keys = keys
        self.clock = clock
        self.keepa = keepa
        names = policy.class_names
        self._key_list = [
            keys.token_state,
            keys.token_inflight,
            keys.token_grants,
            *[keys.token_class(n) for n in names],
            *[keys.token_granted(n) for n in names],
        ]
        self._scripts = TokenScripts(client, self._key_list, policy.config_json)

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        redis: redis.Redis | None = None,
        clock: Clock | None = None,
        keepa: TokenSource | None = None,
    ) -> TokenManager:
        client = redis if redis is not None else redis_client(settings.redis_url)
        return cls(
            client,
            TokenPolicy.from_settings(settings),
            RedisKeys(settings.redis_prefix),
            clock=clock,
            keepa=keepa,
        )

    # --- time ---------------------------------------------------------------------

    def _now_arg(self) -> str:
        # Without an injected clock the scripts read Redis's TIME: one clock for all hosts.
        return "" if self.clock is None else str(round(self.clock.now() * 1000))

    def now_ms(self) -> int:
        if self.clock is not None:
            return round(self.clock.now() * 1000)
        seconds, micros = self.redis.time()
        return int(seconds) * 1000 + int(micros) // 1000

    def _sleep(self, seconds: float) -> None:
        if self.clock is None:
            time.sleep(seconds)
        else:
            self.clock.sleep(seconds)

    def _wait(
        self,
        wait_s: float,
        stop: Callable[[], bool] | None,
        cls: str,
        cost: int,
        start: float,
    ) -> None:
        """Sleep the computed `wait_s`; with `stop`, in slices, asking it between.
        The slices only let a stop be seen: the wait itself stays the computed one."""
        if stop is None:
            self._sleep(wait_s)
            return
        left_s = wait_s
        while True:
            if stop():
                raise AcquireStopped(cls, cost, self._elapsed_since(start))
            if left_s <= 0:
                return
            step_s = min(left_s, STOP_CHECK_S)
            self._sleep(step_s)
            left_s -= step_s

    def _elapsed_since(self, start: float) -> float:
        now = time.monotonic() if self.clock is None else self.clock.now()
        return now - start

    def _start_mark(self) -> float:
        return time.monotonic() if self.clock is None else self.clock.now()

    # --- decisions ----------------------------------------------------------------

    def _check(self, cls: str, cost: int) -> None:
        if self.policy.get(cls) is None:
            raise UnknownTokenClass(cls, self.policy.class_names)
        if not isinstance(cost, int) or isinstance(cost, bool) or cost < 1:
            raise ValueError(f"cost must be a whole number of tokens >= 1, got {cost!r}")

    def try_acquire(self, cls: str, cost: int) -> Decision:
        """One decision, never waits. Granted decisions carry the Grant to settle."""
        self._check(cls, cost)
        can_sync = self.keepa is not None
        confirm_asked = False
        for _ in range(2):
            # acquire.lua's reply is an array: [status, ...] (its header lists each shape).
            res = self._scripts.acquire(self._now_arg(), cls, cost, can_sync)
            status = _text(res[0])
            if status == "granted":
                grant = Grant(_text(res[1]), cls, cost, int(res[2]))
                return Decision(True, 0.0, "ok", int(res[3]), int(res[4]), grant)
            if status == "refused":
                wait_ms = int(res[2])
                wait_s = math.inf if wait_ms < 0 else max(MIN_RETRY_S, wait_ms / 1000)
                return Decision(False, wait_s, _text(res[1]), int(res[3]), int(res[4]))
            if status == "sync":
                kind = int(res[2])
                confirm_asked = confirm_asked or kind == SYNC_CONFIRM_RATE
                try:
                    synced = self.sync(why=_text(res[1]))
                except KeepaError as exc:
                    if kind == SYNC_MISSING:
                        raise
                    # Present: decide on the estimate rather than fail the call.
                    log.warning("tokens: sync from /token failed (%s); using the estimate", exc)
                else:
                    if not synced and kind != SYNC_STALE:
                        # Another worker is rebuilding the state, or asking /token for
                        # the rate, right now: its answer is the one to decide on.
                        return Decision(False, 1.0, "syncing", 0, 0)
                can_sync = False
                continue
            if status == "nostate":
                raise TokenStateMissing(
                    "no token state in Redis and no Keepa client to rebuild it from /token"
                )
            if status == "impossible":
                confirm_wait_ms = int(res[4])
                if confirm_asked and confirm_wait_ms >= 0:
                    # /token was asked but did not confirm the rate the verdict rests
                    # on (its answer was older than the applied one, or it failed):
                    # not "never" yet; ask again once its answer can be the newer.
                    wait_s = confirm_wait_ms / 1000
                    return Decision(False, wait_s, "rate_unconfirmed", int(res[5]), int(res[2]))
                raise ImpossibleRequest(
                    f"{cls}: {_text(res[1])}",
                    cls=cls,
                    cost=cost,
                    target=int(res[2]),
                    capacity=int(res[3]),
                )
            raise TokenError(f"acquire.lua answered an unknown status {status!r}")
        raise TokenError("token state could not be rebuilt from Keepa's /token")

    def acquire(
        self,
        cls: str,
        cost: int,
        max_wait_s: float,
        stop: Callable[[], bool] | None = None,
    ) -> Grant:
        """Wait the computed time while the total stays within `max_wait_s`.

        Tasks pass a short `max_wait_s` and stop on TokensUnavailable: nothing sleeps
        long while holding a lock (failure mode: sleeping on a lock); beat brings the task back.
        `stop`, when given, is asked at least every STOP_CHECK_S of a wait and before every ask
        after one; True raises AcquireStopped (a worker shutting down must not first
        sit out the wait and then spend the tokens).
        """
        start = self._start_mark()
        while True:
            decision = self.try_acquire(cls, cost)
            if decision.granted:
                assert decision.grant is not None
                return decision.grant
            remaining = max_wait_s - self._elapsed_since(start)
            eta = (
                "when another class acts"
                if math.isinf(decision.wait_s)
                else _eta(self.now_ms() / 1000 + decision.wait_s)
            )
            if decision.wait_s > remaining:
                log.info(
                    "tokens: %s stops for %s tokens: balance %d, target %d, reason %s, eta %s",
                    cls,
                    cost,
                    decision.balance,
                    decision.target,
                    decision.reason,
                    eta,
                )
                raise TokensUnavailable(
                    cls, cost, decision.wait_s, decision.reason, decision.balance, decision.target
                )
            log.info(
                "tokens: %s waits %.1fs for %s tokens: balance %d, target %d, reason %s, eta %s",
                cls,
                decision.wait_s,
                cost,
                decision.balance,
                decision.target,
                decision.reason,
                eta,
            )
            self._wait(decision.wait_s, stop, cls, cost, start)

    # --- reconciliation -----------------------------------------------------------

    def settle(self, grant: Grant, response: Any) -> dict[str, Any]:
        """Close a grant with Keepa's answer: the real `tokensConsumed` replaces the
        estimate, and the server's balance and rate apply if they are the newest."""
        env = _envelope(response)
        return self._settle(grant.id, env, sent_ms=grant.granted_at_ms)

    def observe(self, response: Any, sent_at_s: float | None = None) -> dict[str, Any]:
        """Apply a response that had no grant (/token, or a 429 outside a grant)."""
        env = _envelope(response)
        if env is None:
            raise ValueError("observe() needs a response with Keepa's token fields")
        sent_ms = None if sent_at_s is None else int(sent_at_s * 1000)
        return self._settle("", env, sent_ms=sent_ms)

    def cancel(self, grant: Grant) -> None:
        """The call never reached Keepa (connection refused): it cost nothing."""
        self._settle(grant.id, None, sent_ms=grant.granted_at_ms)

    def _settle(
        self,
        grant_id: str,
        env: TokenEnvelope | None,
        sent_ms: int | None,
        sent_seq: int | None = None,
    ) -> dict[str, Any]:
        applied, stale, known, has_state, balance, warning = self._scripts.settle(
            self._now_arg(), grant_id, env, sent_ms, sent_seq
        )
        result: dict[str, Any] = {
            "applied": bool(applied),
            "stale": bool(stale),
            "known_grant": bool(known),
            "balance": int(balance) if has_state else None,
        }
        if warning:
            # settle.lua words each trouble once, when it begins, for all workers.
            log.warning("tokens: %s", _text(warning))
        if result["stale"]:
            log.debug(
                "tokens: did not apply an older Keepa value (timestamp %s)",
                env.timestamp_ms if env else "?",
            )
        return result

    def sync(self, why: str = "requested") -> bool:
        """Rebuild from Keepa's free /token. Returns False when another worker holds the
        sync lock (it is doing the same). Never assumes a full bucket."""
        if self.keepa is None:
            raise TokenStateMissing("cannot sync: no Keepa client was given")
        if not self.redis.set(self.keys.token_sync_lock, "1", nx=True, ex=SYNC_LOCK_TTL_S):
            return False
        try:
            # The grant count before the time: a grant in the same millisecond with a
            # higher number was made after this request left (settle.lua orders by both).
            # No state: the next grant is number 1.
            seq = self.redis.hget(self.keys.token_state, "seq")
            sent_ms = self.now_ms()
            reply = self.keepa.token()
            sent_seq = 0 if seq is None else int(seq)
            self._settle("", reply.envelope, sent_ms=sent_ms, sent_seq=sent_seq)
            log.info(
                "tokens: synced from Keepa /token (%s): balance %d, rate %d/min",
                why,
                reply.envelope.tokens_left,
                reply.envelope.refill_rate,
            )
            return True
        finally:
            self.redis.delete(self.keys.token_sync_lock)

    # --- reporting ----------------------------------------------------------------

    def status(self) -> TokenStatus:
        """The budget as the status script sees it now (read-only, never Keepa)."""
        return status_from_script(json.loads(self._scripts.status(self._now_arg())))

    # --- operator controls --------------------------------------------------------

    def set_recharge(self, active: bool) -> TokenStatus:
        """Turn recharge on (`pause`) or off (`resume`) by hand; returns the new status.

        A pause holds the recharge-gated classes until `resume` or RECHARGE_TIMEOUT_S,
        whichever comes first, so a forgotten pause cannot stall the service for good
        (failure mode: recharge with no exit). A resume blocks automatic re-entry for one timeout,
        as a timeout does.
        """
        applied = self._scripts.recharge(self._now_arg(), active)
        if not int(applied):
            raise TokenStateMissing("no token state in Redis yet: nothing to pause or resume")
        return self.status()

    def admissible_cost(self, cls: str, limit: int) -> int:
        """The largest cost up to `limit` this class would be granted right now, or 0.

        Read-only: nothing is granted, and another worker may take the tokens first, in
        which case `acquire` waits its computed time as usual. Batch sizes follow it, so
        they follow the refill rate Keepa reports (failure mode: a refill rate fixed in code)."""
        if self.policy.get(cls) is None:
            raise UnknownTokenClass(cls, self.policy.class_names)
        snap = self.status()
        if not isinstance(snap, TokenSnapshot):
            return 0
        return max(0, min(limit, snap.classes[cls].admissible_now))


def _envelope(response: Any) -> TokenEnvelope | None:
    if response is None:
        return None
    if isinstance(response, TokenEnvelope):
        return response
    if isinstance(response, KeepaError):
        return response.envelope
    env = getattr(response, "envelope", None)
    if isinstance(env, TokenEnvelope):
        return env
    if isinstance(response, Mapping):
        return TokenEnvelope.from_body(response)
    raise TypeError(f"not a Keepa response: {type(response).__name__}")


def _text(value: bytes | str | int) -> str:
    # Script replies arrive as bytes unless the client decodes responses.
    return value.decode() if isinstance(value, bytes) else str(value)


def _eta(unix_s: float) -> str:
    return datetime.fromtimestamp(unix_s, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
