"""When products change and what they cost afterwards, as pure functions of time.

Time is cut into cycles of the product's cadence (12 h to 4 days, counted from the
Keepa epoch). In each cycle a product changes at most once, at a minute drawn from
hash(product, cycle); whether it changes at all is drawn the same way. So:

- a product's state at any minute is the state of its latest change, found by looking
  back a cycle or two (`latest`);
- everything that changed in a time window is found per cadence class from a per-cycle
  table sorted by minute (`window`), built once per cycle and shared by all queries.

A change redraws the product's used, new and Amazon prices around their long-run
levels: most stay near the level, a `drop_probability` share drop 18-65 % below it.
A deal's averages and a product's `stats` are both measured on these states
(`history.measure`), so they agree to the cent.

Before `fine_from_km` (set by the simulator: half a year before it starts) a product's
history is coarser: one possible change per two-week cycle (`COARSE_PERIOD_MIN`), from
its `trackingSince`. That keeps a history of years to a few hundred points, so a
/product answer stays cheap, while everything a deal or an evaluation reads (the last
90 days, and every change since the simulator started) is at the product's cadence.
"""

from __future__ import annotations

import bisect
from typing import NamedTuple

from keepa_deals.keepa_sim.catalogue import (
    CADENCES_MIN,
    Catalogue,
    ProductProfile,
    event_threshold,
)
from keepa_deals.keepa_sim.hashing import MASK64, fmix

_GOLDEN = 0x9E3779B97F4A7C15
_LOOKBACK_CYCLES = 64
COARSE_PERIOD_MIN = 20_160  # two weeks
_COARSE_CHANGE_16 = int(0.85 * 65536)  # a coarse cycle holds a change 85 % of the time
_COARSE_SALT = 0xC0A25E
_MAX_TABLES = 64
_MAX_STATES = 100_000

# Price types a simulated product has data for, in the order records store them.
DATA_TYPES = (0, 1, 2, 3, 11, 12, 16, 17)
SLOT = {price_type: slot for slot, price_type in enumerate(DATA_TYPES)}
USED_DROP = (0.35, 0.82)
USED_NORMAL = (0.92, 1.30)
NEW_DROP = (0.55, 0.88)
NEW_NORMAL = (0.95, 1.20)
_INV16 = 1.0 / 65536
_USED_DROP_LW = (USED_DROP[0], USED_DROP[1] - USED_DROP[0])
_USED_NORMAL_LW = (USED_NORMAL[0], USED_NORMAL[1] - USED_NORMAL[0])
_NEW_DROP_LW = (NEW_DROP[0], NEW_DROP[1] - NEW_DROP[0])
_NEW_NORMAL_LW = (NEW_NORMAL[0], NEW_NORMAL[1] - NEW_NORMAL[0])
_USED_GONE_16 = int(0.03 * 65536)  # a change leaves no used offer 3 % of the time
_NEW_GONE_16 = int(0.02 * 65536)
_AMAZON_GONE_16 = int(0.2 * 65536)  # Amazon is out of stock after 20 % of changes
N_PRICE_TYPES = 36


def _array_template(missing: str) -> str:
    """A JSON array indexed by price type, `{slot}` where a simulated product has data.
    Formatting 8 values into it is far cheaper than serialising 36."""
    cells = (
        "{%d}" % SLOT[i] if i in SLOT else missing  # noqa: UP031 - a format template
        for i in range(N_PRICE_TYPES)
    )
    return "[" + ",".join(cells) + "]"


NO_DATA_ARRAY = _array_template("-1")  # .format(*values in DATA_TYPES order)
NO_CHANGE_ARRAY = _array_template("0")
NULL_ARRAY = _array_template("null")


class EventState(NamedTuple):
    """A product's values from one change until the next (-1: no offer / no rank)."""

    time_km: int
    cycle: int
    amazon: int
    new: int
    used: int
    rank: int
    count_new: int
    count_used: int

    def values(self, profile: ProductProfile) -> tuple[int, ...]:
        """The values in DATA_TYPES order."""
        return (
            self.amazon,
            self.new,
            self.used,
            self.rank,
            self.count_new,
            self.count_used,
            profile.rating if profile.rating else -1,
            profile.review_count if profile.review_count else -1,
        )


class Timeline:
    def __init__(
        self, catalogue: Catalogue, drop_probability: float = 0.5, change_rate: float = 1.0
    ) -> None:
        """`change_rate` scales how often products change (and so the deals an hour)."""
        if not 0.0 <= drop_probability <= 1.0:
            raise ValueError("drop_probability must be within 0..1")
        if change_rate <= 0:
            raise ValueError("change_rate must be positive")
        self.catalogue = catalogue
        self.drop_probability = drop_probability
        self._drop_16 = int(drop_probability * 65536)
        self._new_drop_16 = int(drop_probability * 0.6 * 65536)
        self._thresholds = [event_threshold(k) for k in catalogue.keys]
        self._members: list[list[int]] = [[] for _ in range(4)]
        for index, cadence in enumerate(catalogue.cadence_index):
            self._members[cadence].append(index)
        self._periods = tuple(max(60, round(p / change_rate)) for p in CADENCES_MIN)
        self._tables: dict[tuple[int, int], tuple[list[int], list[int]]] = {}
        self._states: dict[tuple[int, int], EventState] = {}
        # Changes before this minute are on the coarse schedule (see the module's doc);
        # 0 until the simulator says where its fine history begins.
        self.fine_from_km = 0

    def set_fine_from(self, start_km: int) -> None:
        """Fine history from the coarse cycle boundary at or before `start_km`."""
        self.fine_from_km = start_km // COARSE_PERIOD_MIN * COARSE_PERIOD_MIN
        self._states.clear()

    # --- schedule ---------------------------------------------------------------

    def _change_minute(self, index: int, cycle: int, period: int) -> int | None:
        h = fmix((self.catalogue.keys[index] + cycle * _GOLDEN) & MASK64)
        if (h & 0xFFFF) >= self._thresholds[index]:
            return None
        return cycle * period + (h >> 16) % period

    def _coarse_minute(self, index: int, coarse: int) -> int | None:
        h = fmix((self.catalogue.keys[index] ^ _COARSE_SALT) + coarse * _GOLDEN & MASK64)
        if (h & 0xFFFF) >= _COARSE_CHANGE_16:
            return None
        return coarse * COARSE_PERIOD_MIN + (h >> 16) % COARSE_PERIOD_MIN

    @staticmethod
    def coarse_cycle(coarse: int) -> int:
        """The state cycle id of coarse cycle `coarse`: negative, below the baseline's -1,
        so fine and coarse states never share a cache entry or a hash."""
        return -2 - coarse

    def latest(self, index: int, now_km: int) -> tuple[int, int] | None:
        """(minute, cycle) of the product's latest change at or before `now_km`; None
        before its first change (the baseline from `trackingSince` holds)."""
        since = self.catalogue.profile(index).tracking_since_km
        fine_from = max(self.fine_from_km, since)
        if now_km >= fine_from:
            period = self._periods[self.catalogue.cadence_index[index]]
            cycle = now_km // period
            for _ in range(_LOOKBACK_CYCLES):
                minute = self._change_minute(index, cycle, period)
                if minute is not None and minute <= now_km:
                    if minute <= fine_from:
                        break
                    return minute, cycle
                if cycle * period <= fine_from:
                    break
                cycle -= 1
            now_km = min(now_km, self.fine_from_km)
        coarse = now_km // COARSE_PERIOD_MIN
        while coarse * COARSE_PERIOD_MIN + COARSE_PERIOD_MIN > since:
            minute = self._coarse_minute(index, coarse)
            if minute is not None and since < minute <= now_km:
                return minute, self.coarse_cycle(coarse)
            coarse -= 1
        return None

    def changes(self, index: int, after_km: int, until_km: int) -> list[tuple[int, int]]:
        """(minute, cycle) of the product's changes in (after_km, until_km], oldest first."""
        since = self.catalogue.profile(index).tracking_since_km
        found = []
        after_km = max(after_km, since)
        fine_from = self.fine_from_km
        if after_km < fine_from:
            for coarse in range(after_km // COARSE_PERIOD_MIN, fine_from // COARSE_PERIOD_MIN):
                minute = self._coarse_minute(index, coarse)
                if minute is not None and after_km < minute <= until_km:
                    found.append((minute, self.coarse_cycle(coarse)))
            after_km = fine_from
        if until_km <= after_km:
            return found
        period = self._periods[self.catalogue.cadence_index[index]]
        key, threshold = self.catalogue.keys[index], self._thresholds[index]
        for cycle in range(after_km // period, until_km // period + 1):
            # _change_minute, inlined: a deal's 90-day averages walk up to 180 cycles.
            h = (key + cycle * _GOLDEN) & MASK64
            h = (h ^ (h >> 30)) * 0xBF58476D1CE4E5B9 & MASK64
            h = (h ^ (h >> 27)) * 0x94D049BB133111EB & MASK64
            h ^= h >> 31
            if (h & 0xFFFF) >= threshold:
                continue
            minute = cycle * period + (h >> 16) % period
            if after_km < minute <= until_km:
                found.append((minute, cycle))
        return found

    def _table(self, cadence: int, cycle: int) -> tuple[list[int], list[int]]:
        key = (cadence, cycle)
        table = self._tables.get(key)
        if table is None:
            period = self._periods[cadence]
            rows = []
            for index in self._members[cadence]:
                minute = self._change_minute(index, cycle, period)
                if minute is not None:
                    rows.append((minute, index))
            rows.sort()
            table = ([m for m, _ in rows], [i for _, i in rows])
            if len(self._tables) >= _MAX_TABLES:
                self._tables.pop(next(iter(self._tables)))
            self._tables[key] = table
        return table

    def window(self, after_km: int, until_km: int) -> list[tuple[int, int, int]]:
        """(minute, product, cycle) of every change in (after_km, until_km], oldest first."""
        found: list[tuple[int, int, int]] = []
        for cadence, period in enumerate(self._periods):
            for cycle in range(after_km // period, until_km // period + 1):
                minutes, products = self._table(cadence, cycle)
                lo = bisect.bisect_right(minutes, after_km)
                hi = bisect.bisect_right(minutes, until_km)
                found.extend(zip(minutes[lo:hi], products[lo:hi], [cycle] * (hi - lo), strict=True))
        found.sort()
        return found

    # --- values -----------------------------------------------------------------

    def state(self, index: int, minute: int, cycle: int) -> EventState:
        key = (index, cycle)
        cached = self._states.get(key)
        if cached is not None:
            return cached
        state = self._draw(self.catalogue.profile(index), minute, cycle)
        if len(self._states) >= _MAX_STATES:
            self._states.clear()
        self._states[key] = state
        return state

    def states_between(self, index: int, after_km: int, until_km: int) -> list[EventState]:
        """The state in effect at `after_km`, then one per change in (after_km, until_km].
        A deal's averages walk 90 days of states; drawing them without the state cache
        keeps the cache for the states /product and the deal book revisit."""
        p = self.catalogue.profile(index)
        found = [self.state_at(index, after_km)]
        cache = self._states
        for minute, cycle in self.changes(index, after_km, until_km):
            state = cache.get((index, cycle))
            found.append(state if state is not None else self._draw(p, minute, cycle))
        return found

    def _draw(self, p: ProductProfile, minute: int, cycle: int) -> EventState:
        """The product's values after its change in `cycle` (fmix inlined: a deal's
        averages draw tens of thousands of states)."""
        # Hot path: 16-bit draws compared as ints; three splitmix64 finalisers (fmix).
        h = ((p.key ^ 0x5EED5EED) + cycle * _GOLDEN) & MASK64
        h = (h ^ (h >> 30)) * 0xBF58476D1CE4E5B9 & MASK64
        h = (h ^ (h >> 27)) * 0x94D049BB133111EB & MASK64
        h ^= h >> 31
        g = h ^ 0x1234
        g = (g ^ (g >> 30)) * 0xBF58476D1CE4E5B9 & MASK64
        g = (g ^ (g >> 27)) * 0x94D049BB133111EB & MASK64
        g ^= g >> 31
        spread = g ^ 0x4321
        spread = (spread ^ (spread >> 30)) * 0xBF58476D1CE4E5B9 & MASK64
        spread = (spread ^ (spread >> 27)) * 0x94D049BB133111EB & MASK64
        spread ^= spread >> 31
        if p.used_base_cents == 0 or (h >> 16) & 0xFFFF < _USED_GONE_16:
            used = -1
        else:
            low, width = _USED_DROP_LW if h & 0xFFFF < self._drop_16 else _USED_NORMAL_LW
            used = round(p.used_base_cents * (low + width * ((h >> 32) & 0xFFFF) * _INV16)) or 1
        if g & 0xFFFF < _NEW_GONE_16:
            new = -1
        else:
            low, width = _NEW_DROP_LW if h >> 48 < self._new_drop_16 else _NEW_NORMAL_LW
            new = round(p.new_base_cents * (low + width * ((g >> 16) & 0xFFFF) * _INV16)) or 1
        amazon = new if p.amazon_sells and (g >> 32) & 0xFFFF >= _AMAZON_GONE_16 else -1
        rank = -1
        if p.rank_base > 0:
            rank = int(p.rank_base * 2 ** ((g >> 48) * _INV16 * 2 - 1)) or 1
        count_used = 0
        if used > 0:
            count_used = int(p.used_count_base * (0.6 + 0.8 * (spread & 0xFFFF) * _INV16)) or 1
        count_new = 0
        if new > 0:
            count_new = int(p.new_count_base * (0.6 + 0.8 * ((spread >> 16) & 0xFFFF) * _INV16))
            count_new = count_new or 1
        return EventState(minute, cycle, amazon, new, used, rank, count_new, count_used)

    def baseline(self, index: int) -> EventState:
        """The state before any change we can find: the long-run levels."""
        p = self.catalogue.profile(index)
        used = p.used_base_cents or -1
        return EventState(
            p.tracking_since_km,
            -1,
            p.new_base_cents if p.amazon_sells else -1,
            p.new_base_cents,
            used,
            p.rank_base,
            p.new_count_base,
            p.used_count_base if used > 0 else 0,
        )

    def state_at(self, index: int, now_km: int) -> EventState:
        found = self.latest(index, now_km)
        if found is None:
            return self.baseline(index)
        return self.state(index, found[0], found[1])

    def previous(self, index: int, state: EventState) -> EventState:
        """The state the product was in before `state` began."""
        return self.state_at(index, state.time_km - 1)

    def last_update(self, index: int, now_km: int) -> int:
        """Keepa refreshes a product on its own cadence, and at every change."""
        p = self.catalogue.profile(index)
        period = p.refresh_min
        refreshed = now_km - (now_km - p.refresh_phase_min) % period
        found = self.latest(index, now_km)
        return max(refreshed, found[0] if found else p.tracking_since_km)
