"""A product's whole history, from `trackingSince` to its latest change, and the figures
Keepa derives from it: the csv series and the `stats` (averages, extremes, out-of-stock
shares, the values at an interval's start), all from the same states.

Six base columns come from the timeline's states (amazon, new, used, sales rank, new
and used offer counts). The offer-derived price types are fixed functions of them (see
`derived`): their series change exactly when the base ones do, and their extremes are
the same function of the base extremes (the functions are monotonic).
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

from keepa_deals.keepa_sim.catalogue import ProductProfile
from keepa_deals.keepa_sim.timeline import N_PRICE_TYPES, EventState

# Base columns: (csv index, EventState field index).
BASE = ((0, 2), (1, 3), (2, 4), (3, 5), (11, 6), (12, 7))
assert [field for _, field in BASE] == list(range(2, 8))  # window_avg reads st[2:8]
PRICE_COLUMNS = (0, 1, 2)  # base columns that are prices (out-of-stock shares apply)
# Offer-derived price types: csv index -> (base column, price factor, shipping cents or
# None for a [time, price] series).
# The lowest used offer (USED) is an acceptable-condition one; better conditions and the
# used buy box (a "good" FBA offer) cost more; NEW_FBA and NEW_FBM_SHIPPING sit above the
# lowest new price. Shipping series are [time, price, shipping] triples.
DERIVED: dict[int, tuple[int, float, int | None]] = {
    7: (1, 1.0, 499),  # NEW_FBM_SHIPPING
    10: (1, 1.04, None),  # NEW_FBA
    18: (1, 1.0, 0),  # BUY_BOX_SHIPPING
    19: (2, 1.30, 399),  # USED_NEW_SHIPPING (like new)
    20: (2, 1.15, 399),  # USED_VERY_GOOD_SHIPPING
    21: (2, 1.06, 399),  # USED_GOOD_SHIPPING
    22: (2, 1.0, 399),  # USED_ACCEPTABLE_SHIPPING
    32: (2, 1.06, 0),  # BUY_BOX_USED_SHIPPING (a good-condition FBA offer)
}
BUYBOX_ONLY = (18, 32)  # with buybox=1 (or offers) only
OFFERS_ONLY = (7, 10, 19, 20, 21, 22)  # with offers= only (15 as well, below)
EXTRA_INFO_UPDATES = 15


def derived(price_type: int, base_value: int) -> int:
    """The derived price type's price for a base value (-1 stays -1)."""
    _, factor, _ = DERIVED[price_type]
    return base_value if base_value <= 0 or factor == 1.0 else round(base_value * factor)


@dataclass(frozen=True, slots=True)
class Window:
    """Figures over [start, end] for each base column (indexed as BASE)."""

    avg: tuple[int, ...]
    low: tuple[tuple[int, int] | None, ...]  # (time, value)
    high: tuple[tuple[int, int] | None, ...]
    oos_pct: tuple[int, ...]  # prices only; -1 for the rest
    at_start: tuple[int, ...]


class ProductHistory:
    """The states of one product from `trackingSince` to its latest change."""

    __slots__ = ("_texts", "all_high", "all_low", "profile", "states", "times")

    def __init__(self, profile: ProductProfile, states: list[EventState]) -> None:
        self.profile = profile
        self.states = states
        self.times = [st.time_km for st in states]
        self._texts: dict[tuple[int, int], str] = {}
        lows: list[tuple[int, int] | None] = []
        highs: list[tuple[int, int] | None] = []
        for _, field in BASE:
            present = [(st[field], st.time_km) for st in states if st[field] > 0]
            if present:
                low, high = min(present), max(present)
                lows.append((low[1], low[0]))
                highs.append((high[1], high[0]))
            else:
                lows.append(None)
                highs.append(None)
        self.all_low, self.all_high = tuple(lows), tuple(highs)

    def first_index(self, start_km: int) -> int:
        """Index of the state in effect at `start_km` (0 if it is before the first)."""
        return max(0, bisect.bisect_right(self.times, start_km) - 1)

    # --- csv -------------------------------------------------------------------------

    def csv_text(
        self, start_km: int, *, rating: bool, buybox: bool, offers: bool, now_km: int
    ) -> str:
        """The `csv` array from the state in effect at `start_km`: a point wherever a
        value changes (its first point may be older than `start_km`, as Keepa's is)."""
        first = self.first_index(start_km)
        cells = ["null"] * N_PRICE_TYPES
        for column, (price_type, _) in enumerate(BASE):
            if price_type == 3 and self.profile.rank_base <= 0:
                continue
            cells[price_type] = self.series_text(first, column)
        p = self.profile
        if rating and p.review_count:
            since, last = max(p.tracking_since_km, self.times[first]), self.times[-1]
            cells[16] = f"[{since},{p.rating}]"
            cells[17] = f"[{since},{max(1, p.review_count // 2)},{last},{p.review_count}]"
        wanted = [*BUYBOX_ONLY] if buybox or offers else []
        if offers:
            wanted += OFFERS_ONLY
            times = self.times[first:]
            cells[EXTRA_INFO_UPDATES] = "[" + ",".join(f"{t},1" for t in times) + "]"
        for price_type in wanted:
            cells[price_type] = self._derived_text(first, price_type)
        return "[" + ",".join(cells) + "]"

    def series_text(self, first: int, column: int) -> str:
        """Base column `column` from state `first` on, as JSON text (rendered once)."""
        key = (first, column)
        found = self._texts.get(key)
        if found is None:
            field = BASE[column][1]
            points: list[int] = []
            last = None
            for st in self.states[first:]:
                v = st[field]
                if v != last:
                    points += (st.time_km, v)
                    last = v
            found = self._texts[key] = "[" + ",".join(map(str, points)) + "]"
        return found

    def _derived_text(self, first: int, price_type: int) -> str:
        column, _, shipping = DERIVED[price_type]
        field = BASE[column][1]
        parts: list[str] = []
        last = None
        for st in self.states[first:]:
            v = st[field]
            if v != last:
                price = derived(price_type, v)
                if shipping is None:
                    parts.append(f"{st.time_km},{price}")
                else:
                    parts.append(f"{st.time_km},{price},{shipping if price > 0 else -1}")
                last = v
        return "[" + ",".join(parts) + "]"

    # --- stats -----------------------------------------------------------------------

    def window(self, start_km: int, end_km: int) -> Window:
        """Time-weighted means over the in-stock time, extremes and out-of-stock shares
        of [start_km, end_km] (the part of it after trackingSince)."""
        return measure(self.states, self.times, start_km, end_km)


def measure(
    states: Sequence[EventState], times: Sequence[int], start_km: int, end_km: int
) -> Window:
    """Figures over [start_km, end_km] of a product's states (the part of it after the
    first state): time-weighted means over the in-stock time, extremes and out-of-stock
    shares. `states` must hold the state in effect at `start_km` (or the product's first)
    and every later one up to `end_km`; a deal's averages and a product's `stats` both
    come from here, so they agree to the cent."""
    start_km = max(start_km, times[0])
    end_km = max(end_km, start_km + 1)
    first = max(0, bisect.bisect_right(times, start_km) - 1)
    last = bisect.bisect_right(times, end_km)
    span = end_km - start_km
    n = len(BASE)
    weighted = [0] * n
    held = [0] * n
    oos = [0] * n
    low: list[tuple[int, int] | None] = [None] * n
    high: list[tuple[int, int] | None] = [None] * n
    fields = [field for _, field in BASE]
    for i in range(first, last):
        st = states[i]
        begin = max(st.time_km, start_km)
        stop = min(states[i + 1].time_km, end_km) if i + 1 < len(states) else end_km
        minutes = stop - begin
        if minutes <= 0 and i != first:
            continue
        for c in range(n):
            v = st[fields[c]]
            if v > 0:
                weighted[c] += v * minutes
                held[c] += minutes
                lo, hi = low[c], high[c]
                if lo is None or v < lo[1]:
                    low[c] = (begin, v)
                if hi is None or v > hi[1]:
                    high[c] = (begin, v)
            else:
                oos[c] += minutes
    at_start = states[first]
    return Window(
        avg=tuple(round(weighted[c] / held[c]) if held[c] else -1 for c in range(n)),
        low=tuple(low),
        high=tuple(high),
        oos_pct=tuple(round(100 * oos[c] / span) if c in PRICE_COLUMNS else -1 for c in range(n)),
        at_start=tuple(at_start[f] if at_start.time_km <= end_km else -1 for f in fields),
    )


def window_avg(
    states: Sequence[EventState], times: Sequence[int], start_km: int, end_km: int
) -> tuple[int, ...]:
    """`measure(...).avg` alone: the same clipping and integer sums (so the same
    result to the cent) without the extremes, for a deal's four averages."""
    start_km = max(start_km, times[0])
    end_km = max(end_km, start_km + 1)
    first = max(0, bisect.bisect_right(times, start_km) - 1)
    last = bisect.bisect_right(times, end_km)
    weighted = [0] * 6
    held = [0] * 6
    n_states = len(states)
    for i in range(first, last):
        st = states[i]
        begin = st[0] if st[0] > start_km else start_km
        stop = min(states[i + 1][0], end_km) if i + 1 < n_states else end_km
        minutes = stop - begin
        if minutes <= 0:
            continue
        for c in range(6):
            v = st[c + 2]
            if v > 0:
                weighted[c] += v * minutes
                held[c] += minutes
    return tuple(round(weighted[c] / held[c]) if held[c] else -1 for c in range(6))


def spread(values: Sequence[int], fill: int) -> list[int]:
    """A base-column tuple as a 36-wide array by price type, derived types included."""
    out = [fill] * N_PRICE_TYPES
    for column, (price_type, _) in enumerate(BASE):
        out[price_type] = values[column]
    for price_type, (column, _, _) in DERIVED.items():
        out[price_type] = derived(price_type, values[column]) if values[column] > 0 else fill
    return out


def spread_points(
    points: Sequence[tuple[int, int] | None],
) -> list[list[int] | None]:
    """Extremes as [time, value] pairs by price type (null where there is no data)."""
    out: list[list[int] | None] = [None] * N_PRICE_TYPES
    for column, (price_type, _) in enumerate(BASE):
        point = points[column]
        out[price_type] = None if point is None else [point[0], point[1]]
    for price_type, (column, _, _) in DERIVED.items():
        point = points[column]
        if point is not None:
            out[price_type] = [point[0], derived(price_type, point[1])]
    return out
