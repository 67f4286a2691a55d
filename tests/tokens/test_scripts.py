"""TokenScripts: the wire arguments of each script call, and the reload after NOSCRIPT."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
import redis
from redis.exceptions import NoScriptError

from keepa_deals.config import Settings
from keepa_deals.infra.clock import ManualClock
from keepa_deals.infra.redis_keys import RedisKeys
from keepa_deals.keepa.envelope import TokenEnvelope
from keepa_deals.tokens import TokenManager, TokenPolicy
from keepa_deals.tokens.errors import TokenScriptError
from keepa_deals.tokens.scripts import TokenScripts, source
from tests.tokens.conftest import ManagerFactory
from tests.tokens.model import KeepaBucket

KEYS = ["k:state", "k:inflight", "k:grants", "k:class:a", "k:granted:a"]
CONFIG = '{"floor":-180,"classes":[]}'
ENCODER = redis.Redis().get_encoder()


class Recorder(redis.Redis):
    """Records each command's arguments as the bytes Redis would receive; a queue of
    exceptions to raise first stands in for the server's NOSCRIPT."""

    def __init__(self, raise_first: list[Exception] | None = None) -> None:
        super().__init__()
        self.calls: list[list[bytes]] = []
        self.loads: list[str] = []
        self.raise_first = raise_first or []

    def execute_command(self, *args: Any, **options: Any) -> Any:
        self.calls.append([ENCODER.encode(a) for a in args])
        if self.raise_first:
            raise self.raise_first.pop(0)
        return b"{}"

    def script_load(self, script: Any) -> Any:
        self.loads.append(script)
        return hashlib.sha1(script.encode()).hexdigest()


def wire(*args: Any) -> list[bytes]:
    return [ENCODER.encode(a) for a in args]


def sha(name: str) -> str:
    return hashlib.sha1(source(name).encode()).hexdigest()


def test_each_script_gets_the_keys_then_now_and_config_then_its_own_arguments() -> None:
    client = Recorder()
    scripts = TokenScripts(client, KEYS, CONFIG)
    scripts.acquire("", "upsert", 5, True)
    scripts.acquire("1700000000000", "backfill", 1, False)
    env = TokenEnvelope(
        tokens_left=-7,
        refill_in_ms=1500,
        refill_rate=20,
        tokens_consumed=3,
        token_flow_reduction=0.0,
        timestamp_ms=1_700_000_000_123,
    )
    scripts.settle("", "12", env, 1_700_000_000_000)
    scripts.settle("5", "", None, None)
    scripts.settle("6", "", None, 9, 4)
    scripts.status("")
    scripts.recharge("9", True)
    scripts.recharge("9", False)
    head = ["EVALSHA"]
    keys = [len(KEYS), *KEYS]
    assert client.calls == [
        wire(*head, sha("acquire"), *keys, "", CONFIG, "upsert", "5", "1"),
        wire(*head, sha("acquire"), *keys, "1700000000000", CONFIG, "backfill", "1", "0"),
        # ARGV[4..8]: tokensLeft, timestamp, refillIn, refillRate, tokensConsumed;
        # ARGV[9] sent ms, ARGV[10] the grant number read before sending.
        wire(
            *head,
            sha("settle"),
            *keys,
            "",
            CONFIG,
            "12",
            "-7",
            "1700000000123",
            "1500",
            "20",
            "3",
            "1700000000000",
            "",
        ),
        wire(*head, sha("settle"), *keys, "5", CONFIG, "", "", "", "", "", "0", "", ""),
        wire(*head, sha("settle"), *keys, "6", CONFIG, "", "", "", "", "", "0", "9", "4"),
        wire(*head, sha("status"), *keys, "", CONFIG),
        wire(*head, sha("recharge"), *keys, "9", CONFIG, "1"),
        wire(*head, sha("recharge"), *keys, "9", CONFIG, "0"),
    ]
    assert client.loads == []  # nothing loaded while the server knows the scripts


def test_the_sha_is_the_one_register_script_and_script_load_use() -> None:
    client = Recorder()
    scripts = TokenScripts(client, KEYS, CONFIG)
    scripts.status("")
    assert client.calls[0][1] == client.register_script(source("status")).sha.encode()


def test_noscript_loads_the_script_and_retries_once() -> None:
    client = Recorder(raise_first=[NoScriptError("No matching script")])
    scripts = TokenScripts(client, KEYS, CONFIG)
    assert scripts.acquire("", "upsert", 5, True) == b"{}"
    assert client.loads == [source("acquire")]
    assert len(client.calls) == 2 and client.calls[0] == client.calls[1]


def test_a_second_noscript_is_not_retried_again() -> None:
    client = Recorder(raise_first=[NoScriptError("No matching script")] * 2)
    scripts = TokenScripts(client, KEYS, CONFIG)
    with pytest.raises(NoScriptError):
        scripts.status("")
    assert len(client.loads) == 1 and len(client.calls) == 2


def test_a_script_error_is_a_token_script_error_not_a_redis_error() -> None:
    """Not retried, and not a RedisError: status and doctor read those as "Redis
    unreachable" (a failing status.lua was reported so, issue 10)."""
    client = Recorder(raise_first=[redis.ResponseError("user_script:475: boom")])
    scripts = TokenScripts(client, KEYS, CONFIG)
    with pytest.raises(TokenScriptError) as info:
        scripts.status("")
    assert not isinstance(info.value, redis.RedisError)
    assert (info.value.script, info.value.detail) == ("status.lua", "user_script:475: boom")
    assert str(info.value) == "token script status.lua failed in Redis: user_script:475: boom"
    assert client.loads == [] and len(client.calls) == 1


def test_a_script_error_after_a_reload_is_a_token_script_error_too() -> None:
    client = Recorder(
        raise_first=[NoScriptError("No matching script"), redis.ResponseError("boom")]
    )
    with pytest.raises(TokenScriptError, match=r"acquire\.lua"):
        TokenScripts(client, KEYS, CONFIG).acquire("", "upsert", 5, True)


@pytest.mark.parametrize(
    "error",
    [
        redis.exceptions.OutOfMemoryError("OOM command not allowed"),
        redis.exceptions.ReadOnlyError("READONLY You can't write against a read only replica"),
        redis.ConnectionError("Connection refused"),
    ],
)
def test_redis_refusing_or_unreachable_keeps_its_own_error(error: redis.RedisError) -> None:
    client = Recorder(raise_first=[error])
    with pytest.raises(type(error)):
        TokenScripts(client, KEYS, CONFIG).settle("", "", None, None)


def test_a_script_failing_on_real_redis_names_the_script(
    redis_client: redis.Redis, prefix: str, clock: ManualClock
) -> None:
    """State no script writes (a class's last cost that is no number): status.lua fails
    inside Redis, and the error says which script, with Redis's text."""
    tm = TokenManager(redis_client, TokenPolicy.from_settings(Settings()), RedisKeys(prefix), clock)
    tm.observe(KeepaBucket(balance=300, now_s=clock.now()).envelope(clock.now(), 0))
    redis_client.hset(tm.keys.token_class("backfill"), "last_cost", "lots")
    with pytest.raises(TokenScriptError) as info:
        tm.status()
    assert info.value.script == "status.lua"
    assert "user_script" in info.value.detail


def test_decisions_go_on_after_the_script_cache_is_flushed(
    backend: Any, make_manager: ManagerFactory, clock: ManualClock
) -> None:
    """SCRIPT FLUSH (as after a Redis restart that kept the data): every script reloads
    on its next call, and the budget's state is untouched."""
    bucket = KeepaBucket(balance=300, now_s=clock.now())
    tm = make_manager(bucket=bucket)
    first = tm.try_acquire("upsert", 10)
    assert first.granted and first.grant is not None
    backend.script_flush()
    second = tm.try_acquire("upsert", 10)
    assert second.granted and second.balance == first.balance - 10
    backend.script_flush()
    assert bucket.charge(clock.now(), 10)
    assert tm.settle(first.grant, bucket.envelope(clock.now(), 10))["known_grant"]
    backend.script_flush()
    assert tm.status().as_dict()["state"] == "ok"
    backend.script_flush()
    assert tm.set_recharge(True).as_dict()["recharge"]["active"]
    # Only what ran since the last flush is loaded again.
    assert backend.script_exists(sha("acquire"), sha("settle"), sha("status")) == [
        False,
        False,
        True,
    ]


def test_managers_on_one_client_share_the_loaded_scripts(
    backend: Any, prefix: str, clock: ManualClock
) -> None:
    policy = TokenPolicy.from_settings(Settings())
    a = TokenManager(backend, policy, RedisKeys(prefix), clock=clock)
    a.observe(KeepaBucket(balance=300, now_s=clock.now()).envelope(clock.now(), 0))
    backend.script_flush()
    b = TokenManager(backend, policy, RedisKeys(prefix), clock=clock)
    assert b.try_acquire("backfill", 1).granted
    assert a.try_acquire("upsert", 1).granted


def test_array_replies_parse_whether_or_not_the_client_decodes_them(
    redis_server: Any, prefix: str, clock: ManualClock
) -> None:
    """acquire.lua and settle.lua answer arrays: bytes from the production client, str
    from a client made with decode_responses=True; both give the same Decision."""
    decoded = redis.Redis.from_url(redis_server.url, decode_responses=True)
    try:
        tm = TokenManager(decoded, TokenPolicy.from_settings(Settings()), RedisKeys(prefix), clock)
        tm.observe(KeepaBucket(balance=300, now_s=clock.now()).envelope(clock.now(), 0))
        d = tm.try_acquire("backfill", 7)
        assert d.granted and d.grant is not None and d.grant.id.endswith("|backfill|7")
        assert tm.try_acquire("backfill", 290).granted  # into the deficit: 293 - 290
        refused = tm.try_acquire("backfill", 5)
        # Balance 3 is below RECHARGE_LOW: the gated backfiller waits for 280, which
        # 5/min reaches in 56 ticks, the first 30 s away (KeepaBucket's phase).
        assert (refused.granted, refused.reason, refused.balance, refused.target) == (
            False,
            "recharge",
            3,
            280,
        )
        assert refused.wait_s == 30 + 55 * 60
        envelope = KeepaBucket(balance=293, now_s=clock.now()).envelope(clock.now(), 7)
        # The 290 grant is still in flight: 293 - 290.
        assert tm.settle(d.grant, envelope) == {
            "applied": True,
            "stale": False,
            "known_grant": True,
            "balance": 3,
        }
    finally:
        decoded.close()
