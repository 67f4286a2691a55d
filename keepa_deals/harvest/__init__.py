"""The harvest pipeline both tasks share: deal pages to `pending`, `pending` to verdicts.

- `run.py`: a run's bookkeeping, stop reasons and summary;
- `calls.py`: paid Keepa calls under the TokenManager (sizing, acquire, settle);
- `discovery.py`: deal pages and what goes to `pending`;
- `triage.py`: answers already known, and stage 0 (free);
- `products.py`: stage 1 and stage 2 fetches, and what a verdict writes;
- `pending.py`: evaluating `pending`, oldest first;
- `repair.py`: zombie repair and stale rescue (backfiller).

The tasks themselves are `keepa_deals.harvest.upserter.update_recent_deals` and
`keepa_deals.harvest.backfiller.backfill_deals`.
"""

from keepa_deals.harvest.pending import process_pending
from keepa_deals.harvest.run import RunSummary, StopReason, StopRun

__all__ = ["RunSummary", "StopReason", "StopRun", "process_pending"]
