"""The token scheduling failure modes of docs/failure-modes.md, each reproduced.

Every test sets up a situation that stalls a naive token scheduler and shows the
TokenManager either refusing it at once with a reason or granting within a computed time.
"""

from __future__ import annotations

import ast
import math
from pathlib import Path

import pytest

from keepa_deals.config import Settings
from keepa_deals.errors import ConfigError
from keepa_deals.infra.clock import ManualClock
from keepa_deals.keepa.envelope import TokenEnvelope
from keepa_deals.keepa.replies import KeepaReply
from keepa_deals.tokens.errors import ImpossibleRequest, TokensUnavailable
from tests.tokens.conftest import ManagerFactory
from tests.tokens.driver import Demand, Driver
from tests.tokens.model import KeepaBucket

PACKAGE = Path(__file__).resolve().parents[2] / "keepa_deals"


def test_unreachable_target_is_refused_at_once(make_manager: ManagerFactory) -> None:
    # 20 ASINs x 20 tokens + an 80 buffer = 480 in a bucket of 300 waited forever.
    with pytest.raises(ConfigError) as cfg_err:
        Settings.from_mapping({"TOKEN_THRESHOLD_BACKFILL": "480"}).validate()
    assert "TOKEN_THRESHOLD_BACKFILL" in str(cfg_err.value)
    assert "480" in str(cfg_err.value)

    tm = make_manager(bucket=KeepaBucket(balance=300), deficit_floor=-100)
    with pytest.raises(ImpossibleRequest) as exc:
        tm.try_acquire("backfill", 480)
    assert exc.value.capacity == 300 and exc.value.cost == 480
    assert "at most 400" in str(exc.value)
    # The same request, sized to what can ever be admitted, goes through now.
    assert tm.try_acquire("backfill", 400).granted


def test_livelock_config_still_gives_backfill_its_share(
    make_manager: ManagerFactory, clock: ManualClock
) -> None:
    # Backfill at 150, upsert at 50, an upserter that spends every refill as it comes.
    bucket = KeepaBucket(balance=0)
    tm = make_manager(
        bucket=bucket, threshold_backfill=150, threshold_upsert=50, min_share_backfill=0.2
    )
    driver = Driver(
        tm,
        clock,
        bucket,
        [Demand("upsert", 5, think_s=0.0), Demand("backfill", 20, think_s=0.0)],
        max_latency_s=2.0,
        check_every_step=False,
    )
    hours = 12
    report = driver.run(duration_s=hours * 3600)
    backfill = report.classes["backfill"]
    refilled = 5 * 60 * hours
    # At least its 20% of the refill, and every wait within the bound status() reports.
    assert backfill.tokens >= 0.2 * refilled * 0.95, (backfill.tokens, refilled)
    assert backfill.grants > 0
    for wait, bound in zip(backfill.waits_s, backfill.bounds_s, strict=True):
        assert bound is not None and wait <= bound + 120
    assert report.http_429 == 0 and report.violations == []
    assert tm.status().as_dict()["classes"]["backfill"]["starvation_bound_s"] is not None


def test_priority_does_not_run_backwards(make_manager: ManagerFactory) -> None:
    # The old upserter waited for threshold + cost = 250 while the backfiller needed 180.
    tm = make_manager(
        bucket=KeepaBucket(balance=60),
        threshold_upsert=50,
        threshold_backfill=180,
        min_share_backfill=0.01,
    )
    up = tm.try_acquire("upsert", 200)
    # The starting balance clears the threshold; the cost may run into the deficit.
    assert up.granted and up.target == 50


def test_waiting_upsert_is_served_before_backfill(
    make_manager: ManagerFactory, clock: ManualClock
) -> None:
    tm = make_manager(bucket=KeepaBucket(balance=25), min_share_backfill=0.01)
    up = tm.try_acquire("upsert", 300)  # needs 300 - 180 = 120 to stay above the floor
    assert not up.granted and up.reason == "deficit_floor" and up.target == 120
    clock.advance(up.wait_s - 120)  # the upserter is still waiting, and asks again
    assert not tm.try_acquire("upsert", 300).granted
    # 110 now, over the backfiller's own threshold of 60, but a grant would leave the
    # waiting upserter short of its 120: the low class yields.
    backfill = tm.try_acquire("backfill", 50)
    assert not backfill.granted and backfill.reason == "yield_to_priority"
    clock.advance(120)
    assert tm.try_acquire("backfill", 50).reason == "yield_to_priority"
    assert tm.try_acquire("upsert", 300).granted  # 120: served first
    # The upserter took the bucket to the floor: the backfiller now waits for recharge.
    assert tm.try_acquire("backfill", 50).reason == "recharge"


def test_no_sleep_outside_the_clock() -> None:
    # Only the clock sleeps; the TokenManager decides how long. A hard-coded sleep
    # anywhere else in the package is what capped throughput at a chunk a minute.
    offenders = []
    # The clock, the client's 5xx backoff, the manager's computed wait, waiting for a
    # child redis-server to open its port, and opening a SQLite connection while
    # another closes the WAL (milliseconds, bounded by the busy timeout).
    allowed = {
        "infra/clock.py",
        "keepa/client.py",
        "tokens/manager.py",
        "infra/redis_server.py",
        "store/connection.py",
    }
    for path in PACKAGE.rglob("*.py"):
        if "keepa_sim" in path.parts:
            continue  # the simulator stands in for Keepa's own latency
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "sleep"
                and path.relative_to(PACKAGE).as_posix() not in allowed
            ):
                offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert offenders == []


def test_back_to_back_grants_never_wait(make_manager: ManagerFactory, clock: ManualClock) -> None:
    tm = make_manager(bucket=KeepaBucket(balance=300))
    start = clock.now()
    for _ in range(10):
        tm.acquire("upsert", 20, max_wait_s=60)
    assert clock.now() == start  # ten chunks, no wait: tokens were there


def test_waiting_never_polls_keepa(make_manager: ManagerFactory, clock: ManualClock) -> None:
    bucket = KeepaBucket(balance=0, now_s=clock.now())
    keepa = CountingKeepa(bucket, clock)
    tm = make_manager()  # no state in Redis yet: the first call syncs
    tm.keepa = keepa
    start = clock.now()
    grant = tm.acquire("upsert", 100, max_wait_s=3 * 3600)
    assert grant.cost == 100 and clock.now() - start == pytest.approx(6 * 60, abs=60)
    assert keepa.calls == 1  # the start-up sync; the wait itself was computed
    for _ in range(50):
        tm.status().as_dict()
    assert keepa.calls == 1  # status reads Redis, never Keepa
    # A wait of hours re-syncs once per TOKEN_SYNC_INTERVAL_S (1800), not every 30 s.
    start = clock.now()
    tm.acquire("backfill", 250, max_wait_s=4 * 3600)
    waited = clock.now() - start
    assert waited > 1800
    assert keepa.calls <= 1 + math.ceil(waited / 1800)


class CountingKeepa:
    """Keepa's free /token, counted: the only Keepa call a TokenManager makes itself."""

    def __init__(self, bucket: KeepaBucket, clock: ManualClock) -> None:
        self.bucket, self.clock = bucket, clock
        self.calls = 0

    def token(self) -> KeepaReply:
        self.calls += 1
        body = self.bucket.envelope(self.clock.now(), 0)
        return KeepaReply("token", TokenEnvelope.from_body(body), body, self.clock.now())


def test_recharge_times_out_and_does_not_rearm(
    make_manager: ManagerFactory, clock: ManualClock
) -> None:
    # A drifted count: Keepa keeps saying the balance is low, so recharge cannot end
    # by refill. The timeout must end it, and the release must be real progress.
    bucket = KeepaBucket(balance=10)
    tm = make_manager(bucket=bucket, min_share_backfill=0.01, recharge_timeout_s=3600)
    refused = tm.try_acquire("backfill", 5)
    assert not refused.granted and refused.reason == "recharge"
    assert tm.status().as_dict()["recharge"]["active"] is True
    assert refused.wait_s <= 3600
    clock.advance(3600)
    # Keepa still reports a low balance (the drift), newer than anything seen.
    bucket.advance(clock.now())
    bucket.balance = 70
    tm.observe(bucket.envelope(clock.now(), 0), sent_at_s=clock.now())
    granted = tm.try_acquire("backfill", 5)
    assert granted.granted
    assert tm.status().as_dict()["recharge"]["active"] is False
    # Falling below the low mark right after the timeout does not re-arm at once.
    bucket.balance = 5
    clock.advance(1)
    tm.observe(bucket.envelope(clock.now(), 0), sent_at_s=clock.now())
    assert tm.status().as_dict()["recharge"]["active"] is False


def test_out_of_order_responses_never_erase_grants_in_flight(
    make_manager: ManagerFactory, clock: ManualClock
) -> None:
    # Four workers, answers applied in reverse order: a plain SET drifted to -229 vs -104.
    bucket = KeepaBucket(balance=100)
    tm = make_manager(bucket=bucket, threshold_upsert=1, threshold_backfill=1)
    replies = []
    for cost in (40, 30, 20, 60):
        d = tm.try_acquire("upsert", cost)
        assert d.granted and d.grant is not None
        assert bucket.charge(clock.now(), cost)
        replies.append((d.grant, bucket.envelope(clock.now(), cost)))
        clock.advance(0.25)
    assert bucket.balance == -50
    for grant, reply in reversed(replies):
        tm.settle(grant, reply)
        bucket.advance(clock.now())
        assert tm.status().as_dict()["balance"] <= bucket.balance
    assert tm.status().as_dict()["balance"] == bucket.balance == -50
    assert tm.status().as_dict()["grants_in_flight"] == 0


def test_no_deep_deficit(make_manager: ManagerFactory) -> None:
    # One batch took the balance from +5 to -253.
    tm = make_manager(bucket=KeepaBucket(balance=5), threshold_upsert=1)
    deep = tm.try_acquire("upsert", 258)
    assert not deep.granted and deep.reason == "deficit_floor" and deep.target == 78
    assert tm.try_acquire("upsert", 185).granted  # 5 - 185 = -180: at the floor
    zero = make_manager(bucket=KeepaBucket(balance=0), threshold_upsert=1)
    d = zero.try_acquire("upsert", 1)
    assert not d.granted and d.reason == "hard_stop"


def test_processes_share_one_count(make_manager: ManagerFactory, clock: ManualClock) -> None:
    # Four workers with their own counters all spent the same 100 tokens.
    bucket = KeepaBucket(balance=100)
    workers = [make_manager(bucket=bucket if i == 0 else None) for i in range(4)]
    granted = 0
    for _ in range(10):
        for tm in workers:
            d = tm.try_acquire("upsert", 25)
            granted += 25 if d.granted else 0
    # From 100 with the -180 floor and threshold 30: 100, 75, 50 start above 30, and
    # nothing more. Four private counters would have granted 4 x that.
    assert granted == 75


def test_capacity_and_waits_follow_the_reported_rate(
    make_manager: ManagerFactory, clock: ManualClock
) -> None:
    bucket = KeepaBucket(balance=0)
    tm = make_manager(bucket=bucket, min_share_backfill=0.01)
    slow = tm.try_acquire("upsert", 10)
    with pytest.raises(ImpossibleRequest):
        tm.try_acquire("backfill", 1600)  # 300 - (-180) = 480 at most, at 5/min
    for rate in (20, 25):
        bucket.set_rate(rate)
        clock.advance(1)
        tm.observe(bucket.envelope(clock.now(), 0), sent_at_s=clock.now())
    st = tm.status().as_dict()
    assert st["rate_per_min"] == 25 and st["capacity"] == 1500
    fast = tm.try_acquire("upsert", 10)
    # Threshold 30 from 0: 6 ticks at 5/min, 2 ticks at 25/min.
    assert not fast.granted and fast.wait_s < slow.wait_s
    assert math.ceil(fast.wait_s / 60) == 2
    # A cost only the new plan can ever admit is no longer impossible.
    assert not tm.try_acquire("backfill", 1600).granted


def test_a_long_wait_stops_the_task_instead_of_sleeping(
    make_manager: ManagerFactory, clock: ManualClock
) -> None:
    tm = make_manager(bucket=KeepaBucket(balance=0))
    start = clock.now()
    with pytest.raises(TokensUnavailable) as exc:
        tm.acquire("backfill", 100, max_wait_s=30)
    assert clock.now() == start  # it did not sleep a second of the 40 minutes
    assert exc.value.wait_s > 30 and exc.value.reason
    assert exc.value.cls == "backfill"


def test_no_keepa_answer_for_the_sync_interval_resyncs_once(
    make_manager: ManagerFactory, clock: ManualClock
) -> None:
    """Sync rule: /token again only once TOKEN_SYNC_INTERVAL_S passed without an answer,
    and then the estimate follows Keepa (here: a balance moved behind our back)."""
    bucket = KeepaBucket(balance=200)
    tm = make_manager(bucket=bucket, token_sync_interval_s=1800)
    keepa = CountingKeepa(bucket, clock)
    tm.keepa = keepa
    clock.advance(1800)  # exactly the interval: still fresh
    assert tm.try_acquire("upsert", 5).granted and keepa.calls == 0
    tm.observe(bucket.envelope(clock.now(), 5), sent_at_s=clock.now())
    clock.advance(1801)
    bucket.advance(clock.now())
    bucket.balance = 40  # another tool of the same account spent tokens
    assert tm.try_acquire("upsert", 5).granted
    assert keepa.calls == 1
    assert tm.status().as_dict()["server_balance"] == 40
    assert tm.try_acquire("upsert", 5).granted and keepa.calls == 1  # fresh again


def test_a_grant_never_settled_resyncs_after_its_ttl(
    make_manager: ManagerFactory, clock: ManualClock
) -> None:
    """A worker killed mid-call never settles: after TOKEN_GRANT_TTL_S the next call asks
    /token and the dead grant stops counting against the estimate."""
    bucket = KeepaBucket(balance=200)
    tm = make_manager(bucket=bucket, grant_ttl_s=300)
    keepa = CountingKeepa(bucket, clock)
    tm.keepa = keepa
    lost = tm.try_acquire("upsert", 50)
    assert lost.granted and tm.status().as_dict()["grants_in_flight"] == 1
    bucket.charge(clock.now(), 50)  # Keepa charged it; nobody will settle it
    clock.advance(299)
    tm.observe(bucket.envelope(clock.now(), 0), sent_at_s=clock.now())
    assert tm.try_acquire("upsert", 1).granted and keepa.calls == 0
    clock.advance(2)  # the lost grant is now past its TTL
    assert tm.try_acquire("upsert", 1).granted
    assert keepa.calls == 1
    status = tm.status().as_dict()
    # The two 1-token grants; the lost 50 was dropped (Keepa's count has its cost).
    assert (status["grants_in_flight"], status["tokens_in_flight"]) == (2, 2)
