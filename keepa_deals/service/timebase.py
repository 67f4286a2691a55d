"""The service's one notion of time, from KEEPA_TIME_SCALE.

At scale 1 (production) the TokenManager reads Redis's TIME and everything else the
wall clock. Against a simulator on scaled time, every part must run on the same scaled
clock: token refills and waits, beat's intervals, lock TTLs and task time limits. A
scaled simulator against an unscaled service would make every token computation wrong.
"""

from __future__ import annotations

from keepa_deals.config import Settings
from keepa_deals.infra.clock import Clock, ScaledClock, SystemClock


def service_clock(settings: Settings) -> Clock | None:
    """None at scale 1: the TokenManager then reads Redis's TIME (one clock for all hosts)."""
    if settings.time_scale == 1:
        return None
    origin = settings.time_origin_s
    return ScaledClock(settings.time_scale, origin_s=origin, wall_origin_s=origin)


def now_s(settings: Settings) -> float:
    return (service_clock(settings) or SystemClock()).now()


def wall_s(settings: Settings, service_s: float) -> float:
    """A service-time duration as wall seconds (for Celery and Redis, which run on wall time)."""
    return service_s / settings.time_scale


def lock_ttl_wall_s(settings: Settings) -> float:
    """The TTL a task lock is set with: Redis expires keys on wall time, LOCK_TTL_S is in
    service time, and a TTL under a second would not survive one heartbeat."""
    return max(1.0, wall_s(settings, settings.lock_ttl_s))
