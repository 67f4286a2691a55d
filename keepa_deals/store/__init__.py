"""The SQLite deals store: connection, migrations and one module per table.

    conn = open_store(settings.deals_db_path, busy_timeout_s=settings.db_busy_timeout_s)
    with transaction(conn):                      # BEGIN IMMEDIATE ... COMMIT
        upsert_deal(conn, row)
        record_rejection(conn, rejection)
        add_pending(conn, deferred)
        advance_watermark(conn, newest_s, now_s)  # commits with the results, or not at all

Times are INTEGER unix seconds (UTC), money INTEGER cents. The schema is a contract
for dashboards: docs/schema.md.
"""

from keepa_deals.store.connection import connect, connect_readonly, transaction
from keepa_deals.store.database import open_from_settings, open_store
from keepa_deals.store.deals import (
    DASHBOARD_FIELDS,
    DashboardDeal,
    DealRow,
    DealStatus,
    Source,
    accepted_deal_row,
    candidate_deal_row,
    count_by_status,
    get_deal,
    mark_seen,
    set_status,
    stale_deals,
    top_deals,
    upsert_deal,
    zombie_deals,
)
from keepa_deals.store.errors import SchemaDrift, SchemaTooNew, StoreError
from keepa_deals.store.migrations import (
    LATEST_VERSION,
    MIGRATIONS,
    Migration,
    check_schema,
    migrate,
    schema_version,
)
from keepa_deals.store.pending import (
    PendingDeal,
    add_pending,
    count_pending,
    is_pending,
    remove_pending,
    take_pending,
)
from keepa_deals.store.quarantine import (
    FailureRecord,
    clear_failures,
    get_failure,
    is_quarantined,
    list_quarantined,
    quarantine,
    quarantined_among,
    record_failure,
    release,
)
from keepa_deals.store.rejections import (
    Rejection,
    RejectionRecord,
    find_rejection,
    has_rejection_at_price,
    record_rejection,
    rejected_at_prices,
    rejection_record,
)
from keepa_deals.store.runs import (
    Run,
    RunStats,
    close_abandoned_runs,
    finish_run,
    get_run,
    recent_runs,
    start_run,
    update_run,
)
from keepa_deals.store.state import (
    BackfillCursor,
    advance_watermark,
    get_cursor,
    get_int,
    get_text,
    get_watermark,
    set_cursor,
    set_int,
    set_text,
    updated_at,
)

__all__ = [
    "DASHBOARD_FIELDS",
    "LATEST_VERSION",
    "MIGRATIONS",
    "BackfillCursor",
    "DashboardDeal",
    "DealRow",
    "DealStatus",
    "FailureRecord",
    "Migration",
    "PendingDeal",
    "Rejection",
    "RejectionRecord",
    "Run",
    "RunStats",
    "SchemaDrift",
    "SchemaTooNew",
    "Source",
    "StoreError",
    "accepted_deal_row",
    "add_pending",
    "advance_watermark",
    "candidate_deal_row",
    "check_schema",
    "clear_failures",
    "close_abandoned_runs",
    "connect",
    "connect_readonly",
    "count_by_status",
    "count_pending",
    "find_rejection",
    "finish_run",
    "get_cursor",
    "get_deal",
    "get_failure",
    "get_int",
    "get_run",
    "get_text",
    "get_watermark",
    "has_rejection_at_price",
    "is_pending",
    "is_quarantined",
    "list_quarantined",
    "mark_seen",
    "migrate",
    "open_from_settings",
    "open_store",
    "quarantine",
    "quarantined_among",
    "recent_runs",
    "record_failure",
    "record_rejection",
    "rejected_at_prices",
    "rejection_record",
    "release",
    "remove_pending",
    "schema_version",
    "set_cursor",
    "set_int",
    "set_status",
    "set_text",
    "stale_deals",
    "start_run",
    "take_pending",
    "top_deals",
    "transaction",
    "update_run",
    "updated_at",
    "upsert_deal",
    "zombie_deals",
]
