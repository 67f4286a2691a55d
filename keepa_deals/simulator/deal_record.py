"""One deal: a product's change, summarised as Keepa's /deal `dr` entries are.

A record is built once per change and never changes (Keepa's deal objects are
snapshots at `lastUpdate`), so its JSON is rendered once and reused by every page.

Sign convention: `delta` and `deltaPercent` are average minus current, so a price
drop is positive, the way `deltaPercentRange: [20, 100]` selects drops of 20-100 %.
`deltaLast` is previous minus current, likewise positive for a drop.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from keepa_deals.simulator.catalogue import ProductProfile
from keepa_deals.simulator.timeline import NO_CHANGE_ARRAY, NO_DATA_ARRAY, Timeline

# dateRange -> days the average covers (Keepa's "day" average spans 48 hours).
DATE_RANGE_DAYS = (2, 7, 30, 90)


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
    avg: tuple[tuple[int, ...], ...]  # [dateRange][slot]
    delta: tuple[tuple[int, ...], ...]
    delta_pct: tuple[tuple[int, ...], ...]
    delta_last: tuple[int, ...]
    drop_mask: int  # bit dateRange * 8 + slot: current below that average (a drop)
    attributes: dict[str, str]  # lower-cased values of the /deal attribute lists
    _json: str | None = field(default=None, repr=False)

    def json(self) -> str:
        """The `dr` entry, rendered once (the 36-wide arrays from templates: pages of 150
        deals are mostly these arrays)."""
        if self._json is None:
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
            rows = (
                ',"current":',
                NO_DATA_ARRAY.format(*self.cur),
                ',"currentSince":',
                NO_DATA_ARRAY.format(*self.since),
                ',"deltaLast":',
                NO_CHANGE_ARRAY.format(*self.delta_last),
                ',"avg":[',
                ",".join(NO_DATA_ARRAY.format(*row) for row in self.avg),
                '],"delta":[',
                ",".join(NO_CHANGE_ARRAY.format(*row) for row in self.delta),
                '],"deltaPercent":[',
                ",".join(NO_CHANGE_ARRAY.format(*row) for row in self.delta_pct),
                "]}",
            )
            self._json = head[:-1] + "".join(rows)
        return self._json

    def to_dict(self) -> dict[str, object]:
        parsed: dict[str, object] = json.loads(self.json())
        return parsed


def build_record(timeline: Timeline, index: int, minute: int, cycle: int) -> DealRecord:
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
    avgs = timeline.averages_by_days(index, DATE_RANGE_DAYS)
    deltas = []
    percents = []
    mask = 0
    for dr, row in enumerate(avgs):
        drow = []
        prow = []
        for s in slots:
            a, c = row[s], cur[s]
            if a > 0 and c > 0:
                d = a - c
                drow.append(d)
                prow.append(round(100 * d / a))
                if d > 0:
                    mask |= 1 << (dr * 8 + s)
            else:
                drow.append(0)
                prow.append(0)
        deltas.append(tuple(drow))
        percents.append(tuple(prow))
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
        avg=avgs,
        delta=tuple(deltas),
        delta_pct=tuple(percents),
        delta_last=delta_last,
        drop_mask=mask,
        attributes=_attributes(profile),
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


def drop_bit(date_range: int, slot: int) -> int:
    """The `drop_mask` bit saying the slot's value is below its dateRange average."""
    return 1 << (date_range * 8 + slot)
