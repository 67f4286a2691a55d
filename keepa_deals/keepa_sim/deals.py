"""Browsing deals: what is visible now, filtered, loosely sorted, paged and cached.

A deal is a product's latest change in the last 12 hours (Keepa's deals cover products
updated in the last 12 h). `DealBook` keeps that set up to date minute by minute:
changes enter as time passes them and leave 12 hours later or when the product changes
again. Queries read it by root category, so a Books query never looks at toys.

Like Keepa, each result page is cached for 120 s (simulated), keyed by the query and the
page, so paging through a query sees one consistent snapshot only if it is quick; and the
order is only approximately sorted (`sort_jitter` neighbours swap, deterministically).
"""

from __future__ import annotations

import gc
import json
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from keepa_deals.keepa.keepa_time import unix_s_to_keepa_minutes
from keepa_deals.keepa_sim.catalogue import ROOT_NAMES
from keepa_deals.keepa_sim.deal_measures import DealMeasures
from keepa_deals.keepa_sim.deal_record import DealRecord, build_record
from keepa_deals.keepa_sim.hashing import fmix, mix, text_key, unit
from keepa_deals.keepa_sim.selection import DealSelection, compile_filter
from keepa_deals.keepa_sim.timeline import SLOT, Timeline

WINDOW_MIN = 720
PAGE_SIZE = 150
MAX_RESULTS = 10_000
_MAX_RECORDS = 60_000
_MAX_RESULT_SETS = 32
_MAX_LIVE_QUERIES = 16
_MAX_LOG = 200_000


class DealBook:
    """Each product's latest change within (now - 12 h, now], by root category.

    Every arrival and departure is also appended to `log`, so a query that was answered
    a minute ago can be brought up to date from the few entries since (`DealEngine`).
    """

    def __init__(self, timeline: Timeline) -> None:
        self.timeline = timeline
        self.measures = DealMeasures(timeline)
        self.epoch = 0  # bumped when the book is rebuilt, invalidating log positions
        self.log: list[tuple[int, DealRecord | None]] = []
        self.log_base = 0  # sequence number of log[0]
        self._until: int | None = None
        self._recent: deque[tuple[int, int, int]] = deque()
        self._latest: dict[int, tuple[int, int]] = {}
        self._by_root: dict[int, dict[int, DealRecord]] = {}
        self._records: dict[tuple[int, int], DealRecord] = {}

    @property
    def log_end(self) -> int:
        return self.log_base + len(self.log)

    def advance(self, now_km: int) -> None:
        if self._until == now_km:
            return
        # Building thousands of records at once (a cold start, a jump in time) allocates
        # enough small tuples to trigger full collections; they are all kept anyway.
        collecting = gc.isenabled()
        gc.disable()
        try:
            self._advance(now_km)
        finally:
            if collecting:
                gc.enable()

    def _advance(self, now_km: int) -> None:
        if self._until is None or now_km < self._until or now_km - self._until > WINDOW_MIN:
            self._recent.clear()
            self._latest.clear()
            self._by_root.clear()
            self.log_base += len(self.log)
            self.log.clear()
            self.epoch += 1
            self._until = now_km - WINDOW_MIN
        roots = self.timeline.catalogue.root_of
        for minute, index, cycle in self.timeline.window(self._until, now_km):
            record = self.record(index, minute, cycle)
            self._recent.append((minute, index, cycle))
            self._latest[index] = (minute, cycle)
            members = self._by_root.get(roots[index])
            if members is None:
                members = self._by_root[roots[index]] = {}
            members[index] = record
            self.log.append((index, record))
        horizon = now_km - WINDOW_MIN
        while self._recent and self._recent[0][0] <= horizon:
            minute, index, cycle = self._recent.popleft()
            if self._latest.get(index) == (minute, cycle):
                del self._latest[index]
                del self._by_root[roots[index]][index]
                self.log.append((index, None))
        if len(self.log) > _MAX_LOG:
            drop = len(self.log) // 2
            del self.log[:drop]
            self.log_base += drop
        self._until = now_km

    def record(self, index: int, minute: int, cycle: int) -> DealRecord:
        key = (index, cycle)
        found = self._records.get(key)
        if found is None:
            if len(self._records) >= _MAX_RECORDS:
                self._records.clear()
            found = self._records[key] = build_record(self.measures, index, minute, cycle)
        return found

    def visible(self, roots: frozenset[int] | None) -> Iterator[DealRecord]:
        for root, members in self._by_root.items():
            if roots is None or root in roots:
                yield from members.values()

    def size(self) -> int:
        return len(self._latest)


@dataclass
class _LiveQuery:
    """A selection's matching deals, kept current from the book's log."""

    epoch: int
    seq: int
    keep: Callable[[DealRecord], bool]
    members: dict[int, DealRecord]


@dataclass(frozen=True)
class ResultSet:
    records: list[DealRecord]
    category_json: str  # "categoryIds":[..],"categoryNames":[..],"categoryCount":[..]


@dataclass(frozen=True)
class DealPage:
    records: list[DealRecord]
    body_json: str  # the `deals` object


SortKey = Callable[[DealRecord], tuple[int, str]]


def _sort_key(sel: DealSelection) -> tuple[SortKey, bool]:
    """The key and whether it sorts descending, before a negative sortType reverses it."""
    slot, dr = SLOT.get(sel.price_type, 0), sel.date_range
    kind = abs(sel.sort_type)
    if kind == 1:
        return (lambda r: (r.creation_km, r.asin)), True
    if kind == 2:
        return (lambda r: (r.delta(dr)[slot], r.asin)), True
    if kind == 3:
        return (lambda r: (r.cur[SLOT[3]] if r.cur[SLOT[3]] > 0 else 1 << 40, r.asin)), False
    return (lambda r: (r.delta_pct(dr)[slot], r.asin)), True


class DealEngine:
    def __init__(
        self, timeline: Timeline, seed: int, sort_jitter: float = 0.05, page_cache_s: float = 120.0
    ) -> None:
        if not 0.0 <= sort_jitter <= 1.0:
            raise ValueError("sort_jitter must be within 0..1")
        self.book = DealBook(timeline)
        self.seed = seed
        self.sort_jitter = sort_jitter
        self.page_cache_s = page_cache_s
        self._pages: dict[tuple[str, int], tuple[float, DealPage]] = {}
        self._results: dict[tuple[str, int], ResultSet] = {}
        self._live: dict[str, _LiveQuery] = {}

    def _roots(self, sel: DealSelection) -> frozenset[int] | None:
        if sel.include is None or not sel.include <= ROOT_NAMES.keys():
            return None
        return sel.include

    def results(self, sel: DealSelection, now_km: int) -> ResultSet:
        key = (sel.query_key(), now_km)
        found = self._results.get(key)
        if found is not None:
            return found
        self.book.advance(now_km)
        records = list(self._matching(sel, key[0]).values())
        sort_key, descending = _sort_key(sel)
        records.sort(key=sort_key, reverse=descending != (sel.sort_type < 0))
        self._jitter(records, mix(self.seed, text_key(key[0]), now_km))
        if sel.single_variation:
            seen: set[str] = set()
            kept = []
            for r in records:
                if r.parent_asin is None or r.parent_asin not in seen:
                    kept.append(r)
                    if r.parent_asin is not None:
                        seen.add(r.parent_asin)
            records = kept
        records = records[:MAX_RESULTS]
        counts: dict[int, int] = {}
        for r in records:
            counts[r.root] = counts.get(r.root, 0) + 1
        ids = sorted(counts, key=lambda root: (-counts[root], root))
        category_json = (
            f'"categoryIds":{json.dumps(ids)},'
            f'"categoryNames":{json.dumps([ROOT_NAMES.get(i, str(i)) for i in ids])},'
            f'"categoryCount":{json.dumps([counts[i] for i in ids])}'
        )
        found = ResultSet(records, category_json)
        if len(self._results) >= _MAX_RESULT_SETS:
            self._results.pop(next(iter(self._results)))
        self._results[key] = found
        return found

    def _matching(self, sel: DealSelection, query_key: str) -> dict[int, DealRecord]:
        book = self.book
        live = self._live.get(query_key)
        if live is None or live.epoch != book.epoch or live.seq < book.log_base:
            keep = compile_filter(sel)
            members = {r.index: r for r in book.visible(self._roots(sel)) if keep(r)}
            live = _LiveQuery(book.epoch, book.log_end, keep, members)
            if len(self._live) >= _MAX_LIVE_QUERIES:
                self._live.pop(next(iter(self._live)))
            self._live[query_key] = live
        else:
            for index, record in book.log[live.seq - book.log_base :]:
                if record is not None and live.keep(record):
                    live.members[index] = record
                else:
                    live.members.pop(index, None)
            live.seq = book.log_end
        return live.members

    def _jitter(self, records: list[DealRecord], salt: int) -> None:
        """Swap neighbours with probability `sort_jitter`: Keepa's pages are not strictly
        sorted, and a client must not depend on it."""
        if self.sort_jitter <= 0:
            return
        i = 0
        while i < len(records) - 1:
            if unit(fmix(salt + i)) < self.sort_jitter:
                records[i], records[i + 1] = records[i + 1], records[i]
                i += 1
            i += 1

    def page(self, sel: DealSelection, now_s: float) -> DealPage:
        key = (sel.query_key(), sel.page)
        cached = self._pages.get(key)
        if cached is not None and cached[0] > now_s:
            return cached[1]
        results = self.results(sel, unix_s_to_keepa_minutes(now_s))
        start = sel.page * PAGE_SIZE
        records = results.records[start : start + PAGE_SIZE]
        body = (
            '{"dr":['
            + ",".join(r.json() for r in records)
            + '],"drDateIndex":[],'  # Keepa: "not yet used / placeholder"
            + results.category_json
            + "}"
        )
        page = DealPage(records, body)
        for stale in [k for k, (expires, _) in self._pages.items() if expires <= now_s]:
            del self._pages[stale]
        self._pages[key] = (now_s + self.page_cache_s, page)
        return page

    def published(self, sel: DealSelection, start_s: float, end_s: float) -> list[tuple[str, int]]:
        """Every deal matching `sel` that became visible in (start_s, end_s]."""
        after = unix_s_to_keepa_minutes(start_s)  # a change at minute m shows from m:00
        until = unix_s_to_keepa_minutes(end_s)
        out = []
        keep = compile_filter(sel)
        for minute, index, cycle in self.book.timeline.window(after, until):
            record = self.book.record(index, minute, cycle)
            if keep(record):
                out.append((record.asin, minute))
        return out
