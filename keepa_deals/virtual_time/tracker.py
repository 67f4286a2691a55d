"""Following every deal the simulator publishes, from its creation to its answer.

A published deal (asin, creationDate) ends the run in one of four states:

- evaluated: the database holds an answer for it (or for a newer deal of the same
  ASIN): a verdict row written at or after its creation (an accepted or rejected
  `deals` row, a `rejections` row, a quarantine); a `pending` row of it or of a newer
  deal removed by a run while such an answer for the ASIN exists (a known outcome); or,
  when a task read it, a rejection at its very price already known (the system
  rightly pays nothing for it);
- pending: a task read it and it (or a newer deal of the ASIN) waits in `pending`;
- lost: a task read it, and it is neither evaluated nor pending. Must never happen;
- unseen: no deal page a task read carried it: the product changed again before anyone
  looked, or it appeared after the last read.

Freshness is the time from its creation to its answer, for the evaluated ones.

Verdict times come from TEMP triggers on the harvest's own connection: they write into
a temporary table in the same transactions as the rows they watch (a rolled-back batch
leaves nothing), and they are not part of the database file or its schema.
"""

from __future__ import annotations

import bisect
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from keepa_deals.keepa.keepa_time import keepa_minutes_to_unix_s
from keepa_deals.store import PendingDeal, Source, has_rejection_at_price

_TRIGGERS = (
    "CREATE TEMP TABLE sim_answers (asin TEXT NOT NULL, created_s INTEGER, at_s INTEGER)",
    # A pending deal removed: answered (or quarantined) by this run; the time is the run's.
    "CREATE TEMP TRIGGER sim_pending_left AFTER DELETE ON main.pending BEGIN"
    " INSERT INTO sim_answers VALUES (old.asin, old.deal_created_s, NULL); END",
    "CREATE TEMP TRIGGER sim_rejected_new AFTER INSERT ON main.rejections BEGIN"
    " INSERT INTO sim_answers VALUES (new.asin, NULL, new.rejected_s); END",
    "CREATE TEMP TRIGGER sim_rejected_again AFTER UPDATE ON main.rejections BEGIN"
    " INSERT INTO sim_answers VALUES (new.asin, NULL, new.rejected_s); END",
    "CREATE TEMP TRIGGER sim_deal_new AFTER INSERT ON main.deals"
    " WHEN new.status <> 'candidate' BEGIN"
    " INSERT INTO sim_answers VALUES (new.asin, NULL, new.last_evaluated_s); END",
    "CREATE TEMP TRIGGER sim_deal_evaluated AFTER UPDATE OF status, last_evaluated_s"
    " ON main.deals WHEN new.status <> 'candidate' BEGIN"
    " INSERT INTO sim_answers VALUES (new.asin, NULL, new.last_evaluated_s); END",
    "CREATE TEMP TRIGGER sim_quarantined AFTER UPDATE OF quarantined_s ON main.quarantine"
    " WHEN new.quarantined_s IS NOT NULL BEGIN"
    " INSERT INTO sim_answers VALUES (new.asin, NULL, new.quarantined_s); END",
    "CREATE TEMP TRIGGER sim_quarantined_new AFTER INSERT ON main.quarantine"
    " WHEN new.quarantined_s IS NOT NULL BEGIN"
    " INSERT INTO sim_answers VALUES (new.asin, NULL, new.quarantined_s); END",
)


@dataclass
class DealOutcomes:
    published: int = 0
    seen: int = 0
    evaluated: int = 0
    pending: int = 0
    lost: int = 0
    unseen: int = 0
    freshness_s: list[float] = field(default_factory=list)
    lost_examples: list[tuple[str, int]] = field(default_factory=list)


class DealTracker:
    def __init__(self, conn: sqlite3.Connection, domain: int) -> None:
        self.conn = conn
        self.domain = domain
        for statement in _TRIGGERS:
            conn.execute(statement)
        # (asin, creationDate in Keepa minutes) -> (first read, the record as read)
        self._seen: dict[tuple[str, int], tuple[float, dict[str, Any]]] = {}
        # asin -> sorted times of answers written for it (any deal of the ASIN)
        self._answers: dict[str, list[float]] = {}
        # asin -> [(newest deal_created_s the removed pending row held, run end)]
        self._left_pending: dict[str, list[tuple[int, float]]] = {}

    def page_read(self, records: Sequence[dict[str, Any]], now_s: float) -> None:
        for record in records:
            created = record.get("creationDate")
            if isinstance(created, int):
                self._seen.setdefault((str(record["asin"]), created), (now_s, record))

    def run_ended(self, now_s: float) -> None:
        """Collect the answers the run just committed. A pending row that went counts
        only if an answer for its ASIN is in the database: a row removed without one is
        exactly the loss this tracker exists to catch (failure mode: skipping watermark)."""
        for asin, created_s, at_s in self.conn.execute("SELECT * FROM temp.sim_answers"):
            if created_s is None:
                bisect.insort(self._answers.setdefault(asin, []), float(at_s))
            elif self._has_answer(asin):
                self._left_pending.setdefault(asin, []).append((int(created_s), now_s))
        self.conn.execute("DELETE FROM temp.sim_answers")

    def _has_answer(self, asin: str) -> bool:
        found = self.conn.execute(
            "SELECT EXISTS (SELECT 1 FROM deals WHERE asin = :a AND domain = :d"
            "  AND status <> 'candidate')"
            " OR EXISTS (SELECT 1 FROM rejections WHERE asin = :a AND domain = :d)"
            " OR EXISTS (SELECT 1 FROM quarantine WHERE asin = :a AND domain = :d"
            "  AND quarantined_s IS NOT NULL)",
            {"a": asin, "d": self.domain},
        ).fetchone()
        return bool(found[0])

    def outcomes(self, published: Sequence[tuple[str, int]]) -> DealOutcomes:
        """Classify `published` ((asin, creationDate minute) from the simulator)."""
        pending = dict(
            self.conn.execute("SELECT asin, MAX(deal_created_s) FROM pending GROUP BY asin")
        )
        out = DealOutcomes(published=len(published))
        for asin, minute in published:
            created_s = keepa_minutes_to_unix_s(minute)
            read = self._seen.get((asin, minute))
            answered_s = self._answered_s(asin, created_s)
            if answered_s is None and read is not None and self._known_at_read(read[1]):
                answered_s = read[0]
            if read is not None:
                out.seen += 1
            if answered_s is not None:
                out.evaluated += 1
                out.freshness_s.append(max(0.0, answered_s - created_s))
            elif asin in pending and pending[asin] >= created_s:
                out.pending += 1
            elif read is not None:
                out.lost += 1
                if len(out.lost_examples) < 10:
                    out.lost_examples.append((asin, minute))
            else:
                out.unseen += 1
        return out

    def _answered_s(self, asin: str, created_s: float) -> float | None:
        found: list[float] = []
        times = self._answers.get(asin, [])
        at = bisect.bisect_left(times, created_s)
        if at < len(times):
            found.append(times[at])
        found.extend(t for c, t in self._left_pending.get(asin, []) if c >= created_s)
        return min(found) if found else None

    def _known_at_read(self, record: dict[str, Any]) -> bool:
        """The deal's price was already rejected when a task read it: the answer was in
        the database before it arrived (triage's `rejected_at_price`)."""
        deal = PendingDeal.from_deal(record, domain=self.domain, source=Source.UPSERT, now_s=0)
        if deal.price_cents is None:
            return False
        return has_rejection_at_price(self.conn, deal.asin, deal.domain, deal.price_cents)
