"""Watching the real code from outside, without changing what it does.

- `ObservedKeepaClient` is the production KeepaClient; it also hands every deal page a
  task read to the deal tracker, and reports each finished paid call (answered or not)
  so the simulator's balance can be read right after its charge.
- `RecordingTokenManager` is the production TokenManager; it also notes each decision,
  so the longest a class went from its first refusal to its next grant is exact, not
  sampled.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import redis

from keepa_deals.infra.clock import Clock
from keepa_deals.infra.redis_keys import RedisKeys
from keepa_deals.keepa.client import KeepaClient
from keepa_deals.keepa.replies import DealPage, ProductReply
from keepa_deals.tokens import TokenManager
from keepa_deals.tokens.decision import Decision
from keepa_deals.tokens.policy import TokenPolicy

PageHook = Callable[[list[dict[str, Any]]], None]
CallHook = Callable[[], None]


class ObservedKeepaClient(KeepaClient):
    on_page: PageHook | None = None
    after_call: CallHook | None = None

    def deals(self, selection: Mapping[str, Any]) -> DealPage:
        try:
            page = super().deals(selection)
        finally:
            self._called()
        if self.on_page is not None:
            self.on_page(page.deals)
        return page

    def products(self, asins: Iterable[str], **options: Any) -> ProductReply:
        try:
            return super().products(asins, **options)
        finally:
            self._called()

    def _called(self) -> None:
        if self.after_call is not None:
            self.after_call()


@dataclass
class ClassWaits:
    """One token class's decisions. A wait runs from a refusal with no wait open to the
    class's next grant, across runs: a run that stops for tokens keeps waiting until a
    later run of its task is granted."""

    grants: int = 0
    refusals: int = 0
    tokens_granted_estimate: int = 0  # what was asked for; Keepa's charge is the truth
    largest_grant: int = 0
    waiting_since_s: float | None = None
    longest_wait_s: float = 0.0
    longest_wait_from_s: float | None = None  # when the longest wait began
    waits: list[float] = field(default_factory=list)

    def decided(self, granted: bool, cost: int, now_s: float) -> None:
        if not granted:
            self.refusals += 1
            if self.waiting_since_s is None:
                self.waiting_since_s = now_s
            return
        self.grants += 1
        self.tokens_granted_estimate += cost
        self.largest_grant = max(self.largest_grant, cost)
        if self.waiting_since_s is not None:
            waited_s = now_s - self.waiting_since_s
            self.waits.append(waited_s)
            if waited_s > self.longest_wait_s:
                self.longest_wait_s, self.longest_wait_from_s = waited_s, self.waiting_since_s
            self.waiting_since_s = None

    def longest_s(self, now_s: float) -> float:
        """The longest wait, counting one still open at `now_s`."""
        return self.longest(now_s)[0]

    def longest(self, now_s: float) -> tuple[float, float | None]:
        """(the longest wait, when it began), counting one still open at `now_s`."""
        if self.waiting_since_s is not None and now_s - self.waiting_since_s > self.longest_wait_s:
            return now_s - self.waiting_since_s, self.waiting_since_s
        return self.longest_wait_s, self.longest_wait_from_s


class RecordingTokenManager(TokenManager):
    """The TokenManager, with every decision noted in `classes`. Needs a clock: the
    simulation's virtual one."""

    def __init__(
        self,
        client: redis.Redis,
        policy: TokenPolicy,
        keys: RedisKeys,
        clock: Clock,
        keepa: KeepaClient | None = None,
    ) -> None:
        super().__init__(client, policy, keys, clock=clock, keepa=keepa)
        self.virtual_clock = clock
        self.classes: dict[str, ClassWaits] = {n: ClassWaits() for n in self.policy.class_names}

    def try_acquire(self, cls: str, cost: int) -> Decision:
        decision = super().try_acquire(cls, cost)
        self.classes[cls].decided(decision.granted, cost, self.virtual_clock.now())
        return decision
