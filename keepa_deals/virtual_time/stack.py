"""The production stack on a virtual clock: Redis, the Keepa simulator in-process, a
fresh SQLite database, and a HarvestContext wired to them.

    with SimulationStack.start(settings, refill_rate=5, seed=1) as stack:
        update_recent_deals(stack.ctx)

One ManualClock is shared by the simulator (refills, deal creation), the TokenManager
(its scripts get `now` from it, and its computed waits advance it through
`clock.sleep`) and the tasks. The Keepa client talks to the simulator through its
`requests` adapter, so no socket or HTTP server thread is involved; everything else is
the code production runs: KeepaClient, TokenManager with its Lua scripts in a real
Redis, the store, the upserter and the backfiller.
"""

from __future__ import annotations

import random
import shutil
import tempfile
import uuid
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path

import redis
import requests

from keepa_deals.config import Settings
from keepa_deals.harvest.context import HarvestContext
from keepa_deals.infra.clock import ManualClock
from keepa_deals.infra.closing import Closing
from keepa_deals.infra.redis_client import redis_client
from keepa_deals.infra.redis_keys import RedisKeys
from keepa_deals.infra.redis_server import RedisServerProcess
from keepa_deals.keepa_sim import DEFAULT_CATALOGUE_SIZE, KeepaSimulator
from keepa_deals.tokens.policy import TokenPolicy
from keepa_deals.virtual_time.ledger import SimulatorLedger
from keepa_deals.virtual_time.observe import ObservedKeepaClient, RecordingTokenManager

START_S = 1_767_225_600.0  # 2026-01-01 00:00 UTC: every run starts here, so seeds replay
SIM_KEY = "keepadealsSIMULATEkey0000000000"
SIM_URL = "http://keepa.sim"
# The settings a simulation owns: pointing them anywhere else would leave the sandbox.
OWNED_SETTINGS = (
    "KEEPA_API_KEY",
    "KEEPA_API_URL",
    "REDIS_URL",
    "KEEPA_REDIS_PREFIX",
    "DEALS_DB_PATH",
)


@dataclass
class SimulationStack(Closing):
    settings: Settings
    clock: ManualClock
    sim: KeepaSimulator
    ledger: SimulatorLedger
    keepa: ObservedKeepaClient
    tokens: RecordingTokenManager
    ctx: HarvestContext
    _owned: ExitStack = field(default_factory=ExitStack, repr=False)

    @classmethod
    def start(
        cls,
        settings: Settings,
        *,
        refill_rate: int,
        seed: int,
        catalogue_size: int = DEFAULT_CATALOGUE_SIZE,
        deal_rate: float = 1.0,
        initial_tokens: int | None = None,
        redis_url: str | None = None,
        db_path: Path | None = None,
    ) -> SimulationStack:
        """`settings` supplies every setting but those in OWNED_SETTINGS. Without
        `redis_url` a private redis-server is started (and stopped by `close`); with it,
        keys go under a fresh prefix and are deleted by `close`."""
        with ExitStack() as owned:
            own_redis = redis_url is None
            if redis_url is None:
                server = RedisServerProcess().start()
                owned.callback(server.close)
                redis_url = server.url
            if db_path is None:
                folder = tempfile.mkdtemp(prefix="keepa-simulate-")
                owned.callback(shutil.rmtree, folder, ignore_errors=True)
                db_path = Path(folder) / "deals.db"
            settings = replace(
                settings,
                keepa_api_key=SIM_KEY,
                keepa_api_url=SIM_URL,
                redis_url=redis_url,
                redis_prefix=f"sim{uuid.uuid4().hex[:10]}:",
                deals_db_path=db_path,
            )
            client = redis_client(redis_url)
            owned.callback(client.close)
            if not own_redis:
                # A shared Redis: leave nothing behind under our one-off prefix.
                prefix = settings.redis_prefix
                owned.callback(_delete_prefix, client, prefix)
            clock = ManualClock(START_S)
            sim = KeepaSimulator(
                seed=seed,
                refill_rate=refill_rate,
                clock=clock,
                initial_tokens=initial_tokens,
                catalogue_size=catalogue_size,
                deal_rate=deal_rate,
            )
            session = requests.Session()
            session.mount(f"{SIM_URL}/", sim.adapter())
            owned.callback(session.close)
            # Retries of a 5xx back off on the virtual clock, with a seeded jitter.
            keepa = ObservedKeepaClient.from_settings(
                settings, session=session, sleep=clock.sleep, rng=random.Random(seed)
            )
            assert isinstance(keepa, ObservedKeepaClient)  # from_settings builds `cls`
            tokens = RecordingTokenManager(
                client,
                TokenPolicy.from_settings(settings),
                RedisKeys(settings.redis_prefix),
                clock=clock,
                keepa=keepa,
            )
            ctx = HarvestContext.from_settings(
                settings, clock=clock, keepa=keepa, redis=client, tokens=tokens
            )
            owned.callback(ctx.close)
            kept = owned.pop_all()  # from here on `close()` owns them
        ledger = SimulatorLedger(sim, SIM_KEY)
        return cls(settings, clock, sim, ledger, keepa, tokens, ctx, kept)

    def close(self) -> None:
        self._owned.close()


def _delete_prefix(client: redis.Redis, prefix: str) -> None:
    for pattern in RedisKeys(prefix).all_patterns():
        keys = list(client.scan_iter(match=pattern, count=500))
        if keys:
            client.delete(*keys)
