"""Every Redis key keepa-deals writes, in one place, under KEEPA_REDIS_PREFIX."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RedisKeys:
    prefix: str = "keepa:"

    # --- token budget ---
    @property
    def token_state(self) -> str:
        return f"{self.prefix}tokens:state"

    @property
    def token_inflight(self) -> str:
        return f"{self.prefix}tokens:inflight"

    @property
    def token_grants(self) -> str:
        # Legacy: grants made before ids carried "class|cost" have their record here.
        # Only read (to settle those after an upgrade); nothing new is written.
        return f"{self.prefix}tokens:grants"

    def token_class(self, cls: str) -> str:
        return f"{self.prefix}tokens:class:{cls}"

    def token_granted(self, cls: str) -> str:
        return f"{self.prefix}tokens:granted:{cls}"

    @property
    def token_sync_lock(self) -> str:
        return f"{self.prefix}tokens:sync-lock"

    # --- task locks ---
    def task_lock(self, task: str) -> str:
        return f"{self.prefix}lock:{task}"

    def all_patterns(self) -> list[str]:
        """For doctor checks and tests: everything we own matches one of these."""
        return [f"{self.prefix}*"]
