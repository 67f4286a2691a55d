"""One deal: a product's change, summarised as Keepa's /deal `dr` entries are.

A record is built once per change and never changes (Keepa's deal objects are
snapshots at `lastUpdate`), so its JSON is rendered once and reused by every page.
Its averages are measured on the product's history (`deal_measures`), lazily: a filter
measures only the date range it reads, the JSON all four.

Sign convention: `delta` and `deltaPercent` are average minus current, so a price
drop is positive, the way `deltaPercentRange: [20, 100]` selects drops of 20-100 %.
`deltaLast` is previous minus current, likewise positive for a drop.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from keepa_deals.keepa_sim.catalogue import ProductProfile
from keepa_deals.keepa_sim.deal_measures import DATE_RANGE_DAYS, DealMeasures
from keepa_deals.keepa_sim.timeline import NO_CHANGE_ARRAY, NO_DATA_ARRAY

_ALL_RANGES = tuple(range(len(DATE_RANGE_DAYS)))
_PRICE_SLOTS = 6  # slots 0-5 are BASE columns; 6 and 7 (rating, reviews) never change


@dataclass(slots=True)
class DealRecord:
    index: int
    asin: str
    root: int
    categories: tuple[int, ...]
    parent_asin: str | None
    title: str
    title_lower: str
    is_adult: bool
    image: str
    creation_km: int
    cur: tuple[int, ...]  # DATA_TYPES order
    prev: tuple[int, ...]
    since: tuple[int, ...]
    delta_last: tuple[int, ...]
    attributes: dict[str, str]  # lower-cased values of the /deal attribute lists
    measures: DealMeasures = field(repr=False)
    # [dateRange] -> (avg, delta, deltaPercent) rows in DATA_TYPES order, once measured.
    _rows: list[tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]] | None] = field(
        default_factory=lambda: [None] * len(DATE_RANGE_DAYS), repr=False
    )
    _lowest: tuple[int, ...] | None = field(default=None, repr=False)
    _lowest_90: tuple[int, ...] | None = field(default=None, repr=False)
    _json: str | None = field(default=None, repr=False)

    def avg(self, date_range: int) -> tuple[int, ...]:
        return self._row(date_range)[0]

    def delta(self, date_range: int) -> tuple[int, ...]:
        """Average minus current (a drop is positive); 0 without both values."""
        return self._row(date_range)[1]

    def delta_pct(self, date_range: int) -> tuple[int, ...]:
        return self._row(date_range)[2]

    def _row(self, date_range: int) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
        row = self._rows[date_range]
        if row is None:
            self._measure((date_range,))
            row = self._rows[date_range]
            assert row is not None
        return row

    def _measure(self, date_ranges: tuple[int, ...]) -> None:
        averages = self.measures.averages(self.index, self.creation_km, date_ranges)
        tail = self.cur[_PRICE_SLOTS:]  # rating and review count: constant
        for dr, base in averages.items():
            avg = base + tail
            delta = []
            pct = []
            for a, c in zip(avg, self.cur, strict=True):
                if a > 0 and c > 0:
                    delta.append(a - c)
                    pct.append(round(100 * (a - c) / a))
                else:
                    delta.append(0)
                    pct.append(0)
            self._rows[dr] = (avg, tuple(delta), tuple(pct))

    def is_lowest(self, slot: int) -> bool:
        """Keepa's `isLowest`: the current value is at or below its all-time low."""
        if self._lowest is None:
            self._lowest = self.measures.lowest_ever(self.index, self.creation_km)
        return slot < _PRICE_SLOTS and 0 < self.cur[slot] <= self._lowest[slot]

    def is_lowest_90(self, slot: int) -> bool:
        """Keepa's `isLowest90`: at or below the lowest value of the last 90 days."""
        if self._lowest_90 is None:
            self._lowest_90 = self.measures.lowest_90(self.index, self.creation_km)
        low = self._lowest_90[slot] if slot < _PRICE_SLOTS else 0
        return 0 < self.cur[slot] <= low  # low is 0 without a value in the 90 days

    def json(self) -> str:
        """The `dr` entry, rendered once (the 36-wide arrays from templates: pages of 150
        deals are mostly these arrays)."""
        if self._json is None:
            if any(row is None for row in self._rows):
                self._measure(_ALL_RANGES)  # one walk of the 90 days serves all four
            rows = [self._row(dr) for dr in _ALL_RANGES]
            head = json.dumps(
                {
                    "asin": self.asin,
                    "parentAsin": self.parent_asin,
                    "title": self.title,
                    "rootCat": self.root,
                    "categories": list(self.categories),
                    "image": [ord(c) for c in self.image],
                    "creationDate": self.creation_km,
                    "lastUpdate": self.creation_km,
                    "lightningEnd": 0,
                    "minRating": -1,
                    "warehouseCondition": 0,
                    "warehouseConditionComment": None,
                },
                separators=(",", ":"),
            )
            parts = (
                ',"current":',
                NO_DATA_ARRAY.format(*self.cur),
                ',"currentSince":',
                NO_DATA_ARRAY.format(*self.since),
                ',"deltaLast":',
                NO_CHANGE_ARRAY.format(*self.delta_last),
                ',"avg":[',
                ",".join(NO_DATA_ARRAY.format(*row[0]) for row in rows),
                '],"delta":[',
                ",".join(NO_CHANGE_ARRAY.format(*row[1]) for row in rows),
                '],"deltaPercent":[',
                ",".join(NO_CHANGE_ARRAY.format(*row[2]) for row in rows),
                "]}",
            )
            self._json = head[:-1] + "".join(parts)
        return self._json

    def to_dict(self) -> dict[str, object]:
        parsed: dict[str, object] = json.loads(self.json())
        return parsed


def build_record(measures: DealMeasures, index: int, minute: int, cycle: int) -> DealRecord:
    timeline = measures.timeline
    profile = timeline.catalogue.profile(index)
    state = timeline.state(index, minute, cycle)
    before = timeline.previous(index, state)
    cur = state.values(profile)
    prev = before.values(profile)
    slots = range(len(cur))
    since = tuple(
        profile.tracking_since_km if s >= 6 else (minute if cur[s] != prev[s] else before.time_km)
        for s in slots
    )
    delta_last = tuple(prev[s] - cur[s] if prev[s] > 0 and cur[s] > 0 else 0 for s in slots)
    return DealRecord(
        index=index,
        asin=profile.asin,
        root=profile.root_cat,
        categories=profile.categories,
        parent_asin=profile.parent_asin,
        title=profile.title,
        title_lower=profile.title.lower(),
        is_adult=profile.is_adult,
        image=profile.image,
        creation_km=minute,
        cur=cur,
        prev=prev,
        since=since,
        delta_last=delta_last,
        attributes=_attributes(profile),
        measures=measures,
    )


_GROUPS = {283155: "book", 172282: "electronics", 1055398: "kitchen", 165793011: "toy"}


def _attributes(profile: ProductProfile) -> dict[str, str]:
    values = {
        "brand": profile.brand,
        "binding": profile.binding,
        "manufacturer": "Simulated Press" if profile.is_book else profile.brand,
        "productGroup": _GROUPS.get(profile.root_cat, "other"),
    }
    if profile.author:
        values["author"] = profile.author
    return {name: value.lower() for name, value in values.items()}
