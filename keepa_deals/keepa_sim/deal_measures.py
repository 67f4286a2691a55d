"""A deal's figures measured on its product's history: the averages over each dateRange
and whether the price is at its lowest, at the minute the deal was found.

They come from the same states and the same arithmetic (`history.measure`) as the
product's `csv` and `stats`, so a deal found at minute m and its product's stats for
the interval [m - N days, m] agree to the cent.

Measuring is lazy and per date range: a /deal filter reads one date range (the
project's query: the week), so only that window's states are generated for the deals
it looks at; the four averages of a deal are measured when its JSON is first rendered,
which only happens for deals on a page someone asked for.
"""

from __future__ import annotations

from keepa_deals.keepa_sim.history import BASE, measure, window_avg
from keepa_deals.keepa_sim.timeline import Timeline

# dateRange -> days its average covers (Keepa: the "day" average spans 48 hours).
DATE_RANGE_DAYS = (2, 7, 30, 90)
DAY_MIN = 1440
_LOWEST_90 = 3  # the dateRange whose window is the last 90 days
_MAX_LOWS = 60_000


class DealMeasures:
    """Windows of a product's history ending at a deal's minute, and all-time lows."""

    def __init__(self, timeline: Timeline) -> None:
        self.timeline = timeline
        # index -> (until_km, lowest value of each BASE column at or before until_km,
        # 0 where it never had one): extended as deals move forward in time.
        self._lows: dict[int, tuple[int, tuple[int, ...]]] = {}

    def averages(
        self, index: int, end_km: int, date_ranges: tuple[int, ...]
    ) -> dict[int, tuple[int, ...]]:
        """Each date range's averages (BASE columns) over its window ending at `end_km`,
        from one draw of the longest window's states."""
        days = max(DATE_RANGE_DAYS[dr] for dr in date_ranges)
        states = self.timeline.states_between(index, end_km - days * DAY_MIN, end_km)
        times = [st.time_km for st in states]
        return {
            dr: window_avg(states, times, end_km - DATE_RANGE_DAYS[dr] * DAY_MIN, end_km)
            for dr in date_ranges
        }

    def lowest_ever(self, index: int, end_km: int) -> tuple[int, ...]:
        """Each BASE column's lowest value (> 0) from trackingSince to `end_km`, 0 where
        it never had one. Keepa's `isLowest`: the current value is at or below it."""
        cached = self._lows.get(index)
        if cached is not None and cached[0] <= end_km:
            until, lows = cached
            states = [
                self.timeline.state(index, m, c)
                for m, c in self.timeline.changes(index, until, end_km)
            ]
        else:
            since = self.timeline.catalogue.profile(index).tracking_since_km
            lows = (0,) * len(BASE)
            states = self.timeline.states_between(index, since, end_km)
        fields = [field for _, field in BASE]
        merged = list(lows)
        for st in states:
            for c, f in enumerate(fields):
                v = st[f]
                if v > 0 and (merged[c] == 0 or v < merged[c]):
                    merged[c] = v
        result = tuple(merged)
        if len(self._lows) >= _MAX_LOWS:
            self._lows.clear()
        self._lows[index] = (end_km, result)
        return result

    def lowest_90(self, index: int, end_km: int) -> tuple[int, ...]:
        """Each BASE column's lowest value in the 90 days before `end_km` (the window
        the product's `stats.isLowest90` reads), 0 where it had none."""
        start_km = end_km - DATE_RANGE_DAYS[_LOWEST_90] * DAY_MIN
        states = self.timeline.states_between(index, start_km, end_km)
        window = measure(states, [st.time_km for st in states], start_km, end_km)
        return tuple(0 if low is None else low[1] for low in window.low)
