#!/usr/bin/env python3
"""Progress, not liveness (failure mode: green but idle): newest deal age, watermark age, deals per
hour over 24 h, and the last runs with why each stopped. Read-only.

Exit 1 on the worst states a harvester sits in unseen: no progress for hours while tokens were
available, or a lock held while nothing moves. Progress is what the runs record
(evaluations, rejections included, or a run that caught up), so a quiet market is not
a stall; a stall the token budget explains is a warning.
"""

from __future__ import annotations

import sys

from _common import emit, fmt_s, settings

from keepa_deals.service.doctor import check_locks, check_progress
from keepa_deals.service.status import db_status
from keepa_deals.service.timebase import now_s


def main() -> int:
    as_json = "--json" in sys.argv
    s = settings()
    # Service time, as the runs were recorded in (scaled against a scaled simulator).
    db = db_status(s.deals_db_path, now_s(s))
    if db.get("state") != "ok":
        print(f"FAIL database {db.get('state')}: {db.get('path', '')}")
        return 1
    day = db["runs_24h"]
    print(
        f"newest deal {fmt_s(db['newest_deal_age_s'])} old; watermark "
        f"{fmt_s(db['watermark_age_s'])} old; {db['deals_per_hour_24h']} new deals/hour (24 h); "
        f"{db['pending']} pending; backfill page {db['backfill_cursor']['page']}"
    )
    print(
        f"last progress {fmt_s(db['last_progress_age_s'])} ago; 24 h: {day['runs']} runs, "
        f"{day['deals_evaluated']} evaluated ({db['evaluated_per_hour_24h']}/hour), "
        f"{day['deals_accepted']} accepted, {day['deals_rejected']} rejected, "
        f"{day['tokens_total']} tokens"
    )
    for run in db["last_runs"]:
        print(
            f"  {run['task']:8} tokens {run['tokens_total']:5}  accepted {run['deals_accepted']:4}"
            f"  rejected {run['deals_rejected']:5}  deferred {run['deals_deferred']:5}"
            f"  stopped: {run['stop_reason'] or 'still running (or crashed)'}"
        )
    verdicts = [check_progress(s), check_locks(s)]
    for v in verdicts:
        print(f"{v.label} {v.name}: {v.detail}")
    emit(db, as_json)
    return 1 if any(v.outcome == "fail" for v in verdicts) else 0


if __name__ == "__main__":
    sys.exit(main())
