"""The SQL of each schema version, as applied by `migrations.py`. Never edit a version
that has shipped: add the next one (an old database upgrades through every step).

Conventions (the contract in docs/schema.md):
- Tables are STRICT: a price that arrives as text ("$246.26") is refused, not stored
  (failure mode: prices as text). Money is INTEGER cents, `_cents` in the name.
- Times are INTEGER unix seconds, UTC, `_s` in the name. Keepa minutes are converted
  before they are stored.
- Statements are listed one by one: Python's `executescript` would commit the
  migration's transaction half-way.
"""

from __future__ import annotations

# --- version 1: what the upserter and the backfiller write --------------------------------

V1_PIPELINE_TABLES: tuple[str, ...] = (
    """
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        task TEXT NOT NULL CHECK (task <> ''),
        started_s INTEGER NOT NULL,
        ended_s INTEGER CHECK (ended_s IS NULL OR ended_s >= started_s),
        tokens_discovery INTEGER NOT NULL DEFAULT 0 CHECK (tokens_discovery >= 0),
        tokens_peek INTEGER NOT NULL DEFAULT 0 CHECK (tokens_peek >= 0),
        tokens_commit INTEGER NOT NULL DEFAULT 0 CHECK (tokens_commit >= 0),
        deals_seen INTEGER NOT NULL DEFAULT 0 CHECK (deals_seen >= 0),
        deals_peeked INTEGER NOT NULL DEFAULT 0 CHECK (deals_peeked >= 0),
        deals_committed INTEGER NOT NULL DEFAULT 0 CHECK (deals_committed >= 0),
        deals_accepted INTEGER NOT NULL DEFAULT 0 CHECK (deals_accepted >= 0),
        deals_rejected INTEGER NOT NULL DEFAULT 0 CHECK (deals_rejected >= 0),
        deals_deferred INTEGER NOT NULL DEFAULT 0 CHECK (deals_deferred >= 0),
        deals_failed INTEGER NOT NULL DEFAULT 0 CHECK (deals_failed >= 0),
        stop_reason TEXT,
        error TEXT
    ) STRICT
    """,
    "CREATE INDEX runs_by_task ON runs (task, started_s)",
    """
    CREATE TABLE deals (
        asin TEXT NOT NULL CHECK (length(asin) = 10),
        domain INTEGER NOT NULL,
        status TEXT NOT NULL
            CHECK (status IN ('candidate', 'accepted', 'rejected', 'expired')),
        status_reason TEXT,
        source TEXT NOT NULL CHECK (source IN ('upsert', 'backfill')),
        title TEXT,
        root_category_id INTEGER,
        category TEXT,
        buy_price_cents INTEGER CHECK (buy_price_cents > 0),
        sell_price_cents INTEGER CHECK (sell_price_cents > 0),
        avg90_price_cents INTEGER CHECK (avg90_price_cents > 0),
        referral_fee_cents INTEGER CHECK (referral_fee_cents >= 0),
        closing_fee_cents INTEGER CHECK (closing_fee_cents >= 0),
        fba_fee_cents INTEGER CHECK (fba_fee_cents >= 0),
        fees_cents INTEGER CHECK (fees_cents >= 0),
        profit_cents INTEGER,
        roi_percent REAL,
        sales_rank INTEGER CHECK (sales_rank > 0),
        rank_drops_90 INTEGER CHECK (rank_drops_90 >= 0),
        percent_drop INTEGER,
        deal_created_s INTEGER,
        keepa_last_update_s INTEGER,
        first_seen_s INTEGER NOT NULL,
        last_seen_s INTEGER NOT NULL CHECK (last_seen_s >= first_seen_s),
        last_evaluated_s INTEGER,
        PRIMARY KEY (asin, domain)
    ) STRICT
    """,
    # Stale rescue: live rows by how long ago they were last confirmed. Partial, with
    # exactly the condition of `stale_deals`, so the planner never prefers it for the
    # dashboard's `status = 'accepted'` orderings.
    """
    CREATE INDEX deals_live_by_last_seen ON deals (last_seen_s)
    WHERE status IN ('candidate', 'accepted')
    """,
    """
    CREATE TABLE rejections (
        asin TEXT NOT NULL,
        domain INTEGER NOT NULL,
        price_cents INTEGER NOT NULL CHECK (price_cents > 0),
        stage TEXT NOT NULL CHECK (stage IN ('free', 'peek', 'commit')),
        reason TEXT NOT NULL,
        detail TEXT,
        tokens_spent INTEGER NOT NULL DEFAULT 0 CHECK (tokens_spent >= 0),
        times INTEGER NOT NULL DEFAULT 1 CHECK (times >= 1),
        first_rejected_s INTEGER NOT NULL,
        rejected_s INTEGER NOT NULL CHECK (rejected_s >= first_rejected_s),
        run_id INTEGER REFERENCES runs (id) ON DELETE SET NULL,
        PRIMARY KEY (asin, domain, price_cents)
    ) STRICT
    """,
    "CREATE INDEX rejections_by_time ON rejections (rejected_s)",
    """
    CREATE TABLE pending (
        asin TEXT NOT NULL,
        domain INTEGER NOT NULL,
        deal_created_s INTEGER NOT NULL,
        keepa_last_update_s INTEGER NOT NULL,
        price_cents INTEGER CHECK (price_cents > 0),
        source TEXT NOT NULL CHECK (source IN ('upsert', 'backfill')),
        deal_json TEXT NOT NULL CHECK (json_valid(deal_json)),
        added_s INTEGER NOT NULL,
        updated_s INTEGER NOT NULL,
        PRIMARY KEY (asin, domain)
    ) STRICT
    """,
    "CREATE INDEX pending_oldest_first ON pending (deal_created_s, asin)",
    """
    CREATE TABLE quarantine (
        asin TEXT NOT NULL,
        domain INTEGER NOT NULL,
        reason TEXT NOT NULL,
        attempts INTEGER NOT NULL CHECK (attempts >= 1),
        first_failed_s INTEGER NOT NULL,
        last_failed_s INTEGER NOT NULL CHECK (last_failed_s >= first_failed_s),
        quarantined_s INTEGER,
        PRIMARY KEY (asin, domain)
    ) STRICT
    """,
    """
    CREATE TABLE system_state (
        key TEXT PRIMARY KEY,
        int_value INTEGER,
        text_value TEXT,
        updated_s INTEGER NOT NULL,
        CHECK ((int_value IS NULL) <> (text_value IS NULL))
    ) STRICT
    """,
    # The watermark ratchets (failure modes: stalled watermark, skipping watermark). The store's own
    # writes use MAX(); this trigger refuses a backwards move from any other writer too. Deleting
    # the row is the deliberate way to reset it.
    """
    CREATE TRIGGER watermark_never_moves_backwards
    BEFORE UPDATE OF int_value ON system_state
    WHEN OLD.key = 'watermark_s' AND (NEW.int_value IS NULL OR NEW.int_value < OLD.int_value)
    BEGIN
        SELECT RAISE(ABORT, 'watermark_s never moves backwards');
    END
    """,
)

# --- version 2: the dashboard contract ----------------------------------------------------

V2_DASHBOARD: tuple[str, ...] = (
    # What a user should see: accepted deals with every field a dashboard shows.
    """
    CREATE VIEW dashboard_deals AS
    SELECT
        asin,
        domain,
        title,
        category,
        root_category_id,
        buy_price_cents,
        sell_price_cents,
        avg90_price_cents,
        referral_fee_cents,
        closing_fee_cents,
        fba_fee_cents,
        fees_cents,
        profit_cents,
        roi_percent,
        sales_rank,
        rank_drops_90,
        percent_drop,
        keepa_last_update_s,
        first_seen_s,
        last_seen_s,
        last_evaluated_s,
        source,
        'https://www.amazon.' || CASE domain
            WHEN 1 THEN 'com' WHEN 2 THEN 'co.uk' WHEN 3 THEN 'de' WHEN 4 THEN 'fr'
            WHEN 5 THEN 'co.jp' WHEN 6 THEN 'ca' WHEN 8 THEN 'it' WHEN 9 THEN 'es'
            WHEN 10 THEN 'in' WHEN 11 THEN 'com.mx' WHEN 12 THEN 'com.br'
            ELSE 'com' END || '/dp/' || asin AS amazon_url
    FROM deals
    WHERE status = 'accepted'
      AND title IS NOT NULL
      AND buy_price_cents IS NOT NULL
      AND sell_price_cents IS NOT NULL
      AND fees_cents IS NOT NULL
      AND profit_cents IS NOT NULL
      AND roi_percent IS NOT NULL
      AND sales_rank IS NOT NULL
    """,
    # Partial indexes over accepted rows only: the view's `status = 'accepted'` lets the
    # planner use them for the obvious dashboard orderings.
    "CREATE INDEX deals_accepted_by_profit ON deals (profit_cents) WHERE status = 'accepted'",
    "CREATE INDEX deals_accepted_by_roi ON deals (roi_percent) WHERE status = 'accepted'",
    "CREATE INDEX deals_accepted_by_first_seen ON deals (first_seen_s) WHERE status = 'accepted'",
)

# --- version 3: history that can be pruned ------------------------------------------------

V3_PRUNABLE_HISTORY: tuple[str, ...] = (
    # Deleting a run looks up the rejections that name it (ON DELETE SET NULL): without
    # an index on the child key, every deleted run would scan the whole table.
    "CREATE INDEX rejections_by_run ON rejections (run_id)",
    # Old runs are found by start time across both tasks.
    "CREATE INDEX runs_by_start ON runs (started_s)",
)

# --- version 4: what the dashboard charts -------------------------------------------------

V4_DEAL_HISTORY: tuple[str, ...] = (
    # One row per accepted product, replaced at each commit (store/deal_history.py):
    # the used price and sales rank of the last 90 days, at most 200 points a series.
    """
    CREATE TABLE deal_history (
        asin TEXT NOT NULL,
        domain INTEGER NOT NULL,
        captured_s INTEGER NOT NULL,
        points_json TEXT NOT NULL
            CHECK (json_valid(points_json) AND length(points_json) <= 16384),
        PRIMARY KEY (asin, domain)
    ) STRICT
    """,
)

# --- version 5: every dashboard sort walks an index ---------------------------------------

# The dashboard sorts accepted deals by any of these and pages by (value, rowid): with a
# partial index per column, a page is an index walk that stops after one page instead
# of a scan and sort of every accepted row. Nullable columns are indexed on the
# expression the dashboard sorts by (NULL as -2**62: first ascending, last descending),
# which must stay identical to keepa_deals/dashboard/deals.py's.
_NULLS_AS = "-4611686018427387904"
V5_DASHBOARD_SORTS: tuple[str, ...] = tuple(
    f"CREATE INDEX deals_accepted_by_{name} ON deals ({expr}) WHERE status = 'accepted'"
    for name, expr in (
        ("buy_price", "buy_price_cents"),
        ("sell_price", "sell_price_cents"),
        ("fees", "fees_cents"),
        ("sales_rank", "sales_rank"),
        ("last_seen", "last_seen_s"),
        ("avg90_price", f"COALESCE(avg90_price_cents, {_NULLS_AS})"),
        ("rank_drops", f"COALESCE(rank_drops_90, {_NULLS_AS})"),
        ("last_evaluated", f"COALESCE(last_evaluated_s, {_NULLS_AS})"),
    )
)

# --- version 6: the last dashboard sort ---------------------------------------------------

# Left out of version 5; sorting 400 000 accepted deals by percent drop without it took
# 2-3 s a page (docs/benchmarks.md).
V6_PERCENT_DROP_SORT: tuple[str, ...] = (
    "CREATE INDEX deals_accepted_by_percent_drop ON deals"
    f" (COALESCE(percent_drop, {_NULLS_AS})) WHERE status = 'accepted'",
)
