"""One typed settings object, read once from `.env` and the environment, validated.

Every variable is declared once in `VARIABLES` (name, field, parser, default, help);
`.env.example`, `Settings.from_env` and `simulate --set NAME=VALUE` all use that table.
A bad value raises ConfigError naming the variable, the value and what is allowed.
Settings that would make a wait impossible (story 1) are refused here, at start-up.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from dotenv import dotenv_values

from keepa_deals.errors import ConfigError, KeepaDealsError
from keepa_deals.file_access import current_group_name, current_user, owner_and_mode

KEEPA_DOMAINS = (1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12)
TOKEN_CLASSES = ("upsert", "backfill")
DEFAULT_DEAL_QUERY = Path(__file__).parent / "data" / "deal_query.json"


@dataclass(frozen=True)
class Var:
    """One environment variable and the Settings field it fills."""

    name: str
    attr: str
    parse: Callable[[str, str], Any]
    default: str
    help: str


def _int(lo: int | None = None, hi: int | None = None) -> Callable[[str, str], int]:
    def parse(name: str, raw: str) -> int:
        try:
            value = int(raw.strip())
        except ValueError:
            raise ConfigError(name, raw, "must be a whole number") from None
        if lo is not None and value < lo:
            raise ConfigError(name, raw, f"must be at least {lo}")
        if hi is not None and value > hi:
            raise ConfigError(name, raw, f"must be at most {hi}")
        return value

    return parse


def _float(lo: float | None = None, hi: float | None = None) -> Callable[[str, str], float]:
    def parse(name: str, raw: str) -> float:
        try:
            value = float(raw.strip())
        except ValueError:
            raise ConfigError(name, raw, "must be a number") from None
        if not math.isfinite(value):
            raise ConfigError(name, raw, "must be a finite number")
        if lo is not None and value < lo:
            raise ConfigError(name, raw, f"must be at least {lo}")
        if hi is not None and value > hi:
            raise ConfigError(name, raw, f"must be at most {hi}")
        return value

    return parse


def _str(name: str, raw: str) -> str:
    return raw.strip()


def _optional_key(name: str, raw: str) -> str | None:
    key = raw.strip()
    if not key:
        return None
    if not re.fullmatch(r"[A-Za-z0-9]{16,128}", key):
        # Never echo a key back, even a malformed one.
        raise ConfigError(name, "<hidden>", "must be 16-128 letters and digits, as Keepa issues")
    return key


def _url(schemes: tuple[str, ...]) -> Callable[[str, str], str]:
    def parse(name: str, raw: str) -> str:
        value = raw.strip().rstrip("/")
        allowed = f"must be a URL starting with {' or '.join(schemes)}://"
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 - reading it is the check: out-of-range ports raise
        except ValueError as exc:
            raise ConfigError(name, mask_url_password(raw.strip()), f"{allowed} ({exc})") from None
        # A unix socket URL names a path, not a host.
        located = parts.path if parts.scheme == "unix" else parts.hostname
        if parts.scheme not in schemes or not located:
            raise ConfigError(name, mask_url_password(raw.strip()), allowed)
        return value

    return parse


def _domain(name: str, raw: str) -> int:
    value = _int()(name, raw)
    if value not in KEEPA_DOMAINS:
        raise ConfigError(name, raw, f"must be one of Keepa's domain ids {KEEPA_DOMAINS}")
    return value


def _prefix(name: str, raw: str) -> str:
    value = raw.strip()
    if not re.fullmatch(r"[A-Za-z0-9_.:-]{1,64}", value):
        raise ConfigError(name, raw, "must be 1-64 characters from A-Z a-z 0-9 _ . : -")
    return value


def _classes(name: str, raw: str) -> tuple[str, ...]:
    items = tuple(part.strip() for part in raw.split(",") if part.strip())
    unknown = [item for item in items if item not in TOKEN_CLASSES]
    if unknown:
        raise ConfigError(name, raw, f"must be a comma list of {', '.join(TOKEN_CLASSES)}")
    return items


def _percent_2dp(name: str, raw: str) -> float:
    value = _float(0, 99.99)(name, raw)
    # Fees are computed in integer basis points, so the percent must be exact in them.
    if abs(value * 100 - round(value * 100)) > 1e-9:
        raise ConfigError(name, raw, "must have at most two decimals (e.g. 15 or 8.25)")
    return value


def _path(name: str, raw: str) -> Path:
    if not raw.strip():
        raise ConfigError(name, raw, "must be a file path")
    return Path(raw.strip()).expanduser()


def _query_path(name: str, raw: str) -> Path:
    # Empty means the packaged default selection.
    return _path(name, raw) if raw.strip() else DEFAULT_DEAL_QUERY


VARIABLES: tuple[Var, ...] = (
    # --- Keepa ---
    Var(
        "KEEPA_API_KEY",
        "keepa_api_key",
        _optional_key,
        "",
        "Keepa API key. Empty: `make run` uses the built-in simulator.",
    ),
    Var(
        "KEEPA_API_URL",
        "keepa_api_url",
        _url(("http", "https")),
        "https://api.keepa.com",
        "Keepa's base URL (the simulator's when testing).",
    ),
    Var(
        "KEEPA_DOMAIN",
        "keepa_domain",
        _domain,
        "1",
        "Amazon locale: 1 .com, 2 .co.uk, 3 .de, 4 .fr, 5 .co.jp, 6 .ca, 8 .it, 9 .es, ...",
    ),
    Var(
        "KEEPA_CONNECT_TIMEOUT_S",
        "keepa_connect_timeout_s",
        _float(0.1, 60),
        "5",
        "Seconds to wait for a connection to Keepa.",
    ),
    Var(
        "KEEPA_READ_TIMEOUT_S",
        "keepa_read_timeout_s",
        _float(1, 300),
        "40",
        "Seconds to wait for Keepa's answer (offer requests take up to 20 s).",
    ),
    Var(
        "KEEPA_MAX_RETRIES",
        "keepa_max_retries",
        _int(0, 10),
        "3",
        "Retries of a 5xx answer, with jittered exponential backoff.",
    ),
    # --- storage ---
    Var(
        "REDIS_URL",
        "redis_url",
        _url(("redis", "rediss", "unix")),
        "redis://127.0.0.1:6379/0",
        "Redis for the token budget, locks and Celery's broker.",
    ),
    Var(
        "KEEPA_REDIS_PREFIX",
        "redis_prefix",
        _prefix,
        "keepa:",
        "Prefix of every Redis key keepa-deals writes.",
    ),
    Var("DEALS_DB_PATH", "deals_db_path", _path, "var/deals.db", "The SQLite deals database."),
    Var(
        "DEALS_DB_BUSY_TIMEOUT_S",
        "db_busy_timeout_s",
        _float(1, 600),
        "60",
        "Seconds a writer waits for another writer's lock before failing (SQLite's 5 s "
        "default killed the predecessor's backfiller).",
    ),
    Var(
        "DEAL_QUERY_PATH",
        "deal_query_path",
        _query_path,
        "",
        "JSON file with the /deal selection (default: used books, newest first).",
    ),
    # --- token budget ---
    Var(
        "KEEPA_PLAN_RATE",
        "plan_rate",
        _int(1, 100_000),
        "5",
        "Refill rate (tokens/min) of the smallest plan this deployment must work on. "
        "Settings are checked against its capacity (60 x rate) at start-up.",
    ),
    Var(
        "TOKEN_THRESHOLD_UPSERT",
        "threshold_upsert",
        _int(1),
        "30",
        "Balance the upserter needs before it starts a call.",
    ),
    Var(
        "TOKEN_THRESHOLD_BACKFILL",
        "threshold_backfill",
        _int(1),
        "60",
        "Balance the backfiller needs before it starts a call.",
    ),
    Var(
        "TOKEN_MIN_SHARE_UPSERT",
        "min_share_upsert",
        _float(0, 1),
        "0",
        "Fraction of the refill the upserter is guaranteed while it keeps asking.",
    ),
    Var(
        "TOKEN_MIN_SHARE_BACKFILL",
        "min_share_backfill",
        _float(0, 1),
        "0.2",
        "Fraction of the refill the backfiller is guaranteed while it keeps asking (> 0).",
    ),
    Var(
        "TOKEN_DEFICIT_FLOOR",
        "deficit_floor",
        _int(-100_000, 0),
        "-180",
        "Lowest estimated balance a call may leave behind (Keepa allows a deficit).",
    ),
    Var(
        "RECHARGE_LOW",
        "recharge_low",
        _int(-100_000),
        "20",
        "Below this balance the bucket enters recharge mode.",
    ),
    Var(
        "RECHARGE_HIGH",
        "recharge_high",
        _int(1),
        "280",
        "Recharge ends when the balance reaches this (never above capacity).",
    ),
    Var(
        "RECHARGE_TIMEOUT_S",
        "recharge_timeout_s",
        _int(60),
        "3600",
        "Recharge ends after this long even if the balance has not reached RECHARGE_HIGH.",
    ),
    Var(
        "RECHARGE_GATED_CLASSES",
        "recharge_gated_classes",
        _classes,
        "backfill",
        "Comma list of classes that pause while recharging.",
    ),
    Var(
        "TOKEN_SYNC_INTERVAL_S",
        "token_sync_interval_s",
        _int(60),
        "1800",
        "Ask Keepa's free /token when no Keepa answer was seen for this long.",
    ),
    Var(
        "TOKEN_GRANT_TTL_S",
        "grant_ttl_s",
        _int(10),
        "300",
        "Longest a granted call may stay unsettled before its cost is left to Keepa's count.",
    ),
    Var(
        "TOKEN_DEMAND_TTL_S",
        "demand_ttl_s",
        _int(1),
        "300",
        "A class that has not asked for this long stops counting as waiting (never less "
        "than the slower beat period + 60 s).",
    ),
    # --- evaluation ---
    # Defaults suit used books bought from third-party sellers and resold through FBA.
    # Buy prices are Keepa's USED price type; the sell price is estimated from the
    # 90-day used average, the used price history and the competing used offers.
    Var(
        "BUY_PRICE_MIN_CENTS",
        "buy_price_min_cents",
        _int(1),
        "300",
        "Stage 0/1: lowest used price (cents) worth buying; below it fees eat any margin.",
    ),
    Var(
        "BUY_PRICE_MAX_CENTS",
        "buy_price_max_cents",
        _int(1),
        "10000",
        "Stage 0/1: highest used price (cents) to buy: caps the money tied up in one book.",
    ),
    Var(
        "MIN_PERCENT_DROP",
        "min_percent_drop",
        _int(0, 100),
        "20",
        "Stage 0: how far (percent) the used price must be below its 90-day average.",
    ),
    Var(
        "SALES_RANK_MIN",
        "sales_rank_min",
        _int(1),
        "1",
        "Stage 0/1: best sales rank accepted (1 = no lower bound).",
    ),
    Var(
        "SALES_RANK_MAX",
        "sales_rank_max",
        _int(1),
        "2000000",
        "Stage 0/1: worst sales rank accepted; slower books rarely sell.",
    ),
    Var(
        "MIN_RANK_DROPS_90",
        "min_rank_drops_90",
        _int(0),
        "1",
        "Stage 1: sales-rank drops (sales) needed in the last 90 days.",
    ),
    Var(
        "MIN_PROFIT_CENTS",
        "min_profit_cents",
        _int(0),
        "300",
        "Stages 0-2: least profit (cents) after buying, shipping and Amazon's fees.",
    ),
    Var(
        "MIN_ROI_PERCENT",
        "min_roi_percent",
        _int(0, 10_000),
        "30",
        "Stages 0-2: least return on the money paid for the copy, in percent.",
    ),
    Var(
        "REFERRAL_FEE_PERCENT",
        "referral_fee_percent",
        _percent_2dp,
        "15",
        "Amazon's referral fee, percent of the sell price (books: 15). Two decimals at most.",
    ),
    Var(
        "CLOSING_FEE_CENTS",
        "closing_fee_cents",
        _int(0),
        "180",
        "Amazon's per-item closing fee for media, in cents (books: 180).",
    ),
    Var(
        "FBA_FEE_CENTS",
        "fba_fee_cents",
        _int(0),
        "350",
        "FBA fulfilment fee per unit, in cents (a standard-size book).",
    ),
    Var(
        "BUY_SHIPPING_CENTS",
        "buy_shipping_cents",
        _int(0),
        "399",
        "Shipping assumed on a used copy before its offer is known (stages 0-1); "
        "stage 2 uses the offer's own.",
    ),
    Var(
        "STALE_AFTER_S",
        "stale_after_s",
        _int(3600),
        "86400",
        "A deal not seen on a deal page for this long gets a 1-token refresh before it "
        "can be dropped.",
    ),
    Var(
        "QUARANTINE_AFTER_FAILURES",
        "quarantine_after_failures",
        _int(1, 1000),
        "3",
        "An ASIN that fails this many times in a row is quarantined, not retried.",
    ),
    Var(
        "REJECTION_MEMORY_S",
        "rejection_memory_s",
        _int(0),
        "1209600",
        "A rejected ASIN is not paid for again at the same price for this long (0: forever).",
    ),
    Var(
        "HISTORY_KEEP_S",
        "history_keep_s",
        _int(0),
        "7776000",
        "Runs older than this, and rejections older than this and REJECTION_MEMORY_S, are "
        "deleted once a day by the backfiller (0: kept forever; else at least 2 days).",
    ),
    # --- harvest ---
    Var(
        "HARVEST_INLINE_WAIT_S",
        "harvest_inline_wait_s",
        _float(0, 300),
        "20",
        "Longest a run waits inline for tokens (the TokenManager computes the wait); a "
        "longer wait ends the run, and the next scheduled run carries on.",
    ),
    Var(
        "HARVEST_MAX_RUN_S",
        "harvest_max_run_s",
        _int(10, 86_400),
        "600",
        "A run ends after this long even with work and tokens left, so every run ends "
        "(keep it below TASK_SOFT_TIME_LIMIT_S).",
    ),
    Var(
        "HARVEST_COMMIT_BATCH",
        "harvest_commit_batch",
        _int(1, 100),
        "10",
        "Most products per stage-2 request (history + offers=20: up to 12 tokens each).",
    ),
    Var(
        "UPSERT_FIRST_LOOKBACK_S",
        "upsert_first_lookback_s",
        _int(0, 43_200),
        "3600",
        "With no watermark yet, the upserter takes deals this recent only; older ones "
        "are left to the backfiller.",
    ),
    Var(
        "BACKFILL_PASS_PAUSE_S",
        "backfill_pass_pause_s",
        _int(0, 86_400),
        "21600",
        "After a pass over every page of the deal query, the backfiller waits this long "
        "before it starts again at page 0 (each page costs 5 tokens; 0: at once).",
    ),
    # --- service ---
    Var(
        "KEEPA_TIME_SCALE",
        "time_scale",
        _float(1, 10_000),
        "1",
        "Simulator only: service time runs this many times faster than the wall clock "
        "(token refills, beat, lock TTLs, waits). Must match the simulator's.",
    ),
    Var(
        "KEEPA_TIME_ORIGIN_S",
        "time_origin_s",
        _float(0),
        "0",
        "Simulator only: the wall moment (unix s) where scaled time starts, shared by "
        "every process and the simulator. Required when KEEPA_TIME_SCALE is not 1.",
    ),
    Var(
        "UPSERT_EVERY_S",
        "upsert_every_s",
        _int(5, 86_400),
        "900",
        "Beat runs the upserter this often.",
    ),
    Var(
        "BACKFILL_EVERY_S",
        "backfill_every_s",
        _int(5, 86_400),
        "60",
        "Beat runs the backfiller this often.",
    ),
    Var(
        "WORKER_CONCURRENCY",
        "worker_concurrency",
        _int(1, 64),
        "2",
        "Celery worker processes (one per queue is enough: each task runs once at a time).",
    ),
    Var(
        "TASK_SOFT_TIME_LIMIT_S",
        "task_soft_time_limit_s",
        _int(10),
        "900",
        "A run is asked to stop (and saves its progress) after this long.",
    ),
    Var(
        "TASK_TIME_LIMIT_S",
        "task_time_limit_s",
        _int(20),
        "1020",
        "A run is killed after this long (its lock then expires within LOCK_TTL_S).",
    ),
    Var(
        "LOCK_TTL_S",
        "lock_ttl_s",
        _int(3, 3600),
        "60",
        "Task lock lifetime, renewed every third of it while the run lives.",
    ),
)

_BY_NAME = {var.name: var for var in VARIABLES}


_URL_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
# redis-py passes every query parameter to the connection (`?password=`,
# `?ssl_password=`), so any parameter named like a secret is one.
_SECRET_PARAM = re.compile(r"(?i)([?&][^=&#]*(?:pass|secret|token|cred)[^=&#]*=)[^&#]*")


def mask_url_password(url: str) -> str:
    """The URL with every credential redis-py would take from it hidden.

    `redis://user:secret@host/0?password=secret` -> `redis://user:***@host/0?password=***`.
    A lone user-info (`redis://secret@host`) is hidden whole: redis-py sends it as the
    user name, but it is a password written without its colon. Read as text, not with
    urlsplit: a password holding an unescaped `/` or `@` is misread by the parser, and
    an unparseable URL must be masked too. The user-info ends at the last `@`.
    """
    scheme = _URL_SCHEME.match(url)
    start = scheme.end() if scheme else 0
    rest = url[start:]
    at = rest.rfind("@")
    if at >= 0:
        user, colon, _ = rest[:at].partition(":")
        rest = (f"{user}:***" if colon else "***") + rest[at:]
    return url[:start] + _SECRET_PARAM.sub(r"\g<1>***", rest)


class EnvFileUnreadable(ConfigError):
    """The `.env` file is there but cannot be read: one line naming it, never skipped.

    systemd reads the file as root (EnvironmentFile) before the service reads it
    again as its own user. Skipping it would run on systemd's reading alone, and the
    two parsers differ (quoting, `export`): the service and `keepa-deals config` would
    disagree about the settings without a word."""

    def __init__(self, path: Path, problem: str) -> None:
        self.variable, self.value, self.allowed = ".env", str(path), problem
        KeepaDealsError.__init__(self, f"{path}: {problem}")


def _read_env_file(path: Path) -> dict[str, str]:
    """The file's variables ({} when there is no file)."""
    shown = path.absolute()
    try:
        if not path.is_file():
            return {}
        values = dotenv_values(path)
    except PermissionError:
        try:
            path.stat()
            what = f"{shown} is {owner_and_mode(path)}"
        except OSError:
            what = f"its folder {shown.parent} is {owner_and_mode(shown.parent)}"
        raise EnvFileUnreadable(
            shown,
            f"{current_user()} cannot read the settings file: {what}; let the service's "
            f"group read it: chown root:{current_group_name()} {shown} && chmod 0640 "
            f"{shown} (deploy_update.sh does this)",
        ) from None
    except UnicodeDecodeError as exc:
        raise EnvFileUnreadable(shown, f"cannot be read as UTF-8 text ({exc})") from None
    except OSError as exc:
        raise EnvFileUnreadable(shown, f"cannot be read ({exc.strerror})") from None
    return {k: v for k, v in values.items() if v is not None}


@dataclass(frozen=True)
class Settings:
    keepa_api_key: str | None = field(default=None, repr=False)
    keepa_api_url: str = "https://api.keepa.com"
    keepa_domain: int = 1
    keepa_connect_timeout_s: float = 5.0
    keepa_read_timeout_s: float = 40.0
    keepa_max_retries: int = 3
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_prefix: str = "keepa:"
    deals_db_path: Path = Path("var/deals.db")
    deal_query_path: Path = DEFAULT_DEAL_QUERY
    plan_rate: int = 5
    threshold_upsert: int = 30
    threshold_backfill: int = 60
    min_share_upsert: float = 0.0
    min_share_backfill: float = 0.2
    deficit_floor: int = -180
    recharge_low: int = 20
    recharge_high: int = 280
    recharge_timeout_s: int = 3600
    recharge_gated_classes: tuple[str, ...] = ("backfill",)
    token_sync_interval_s: int = 1800
    grant_ttl_s: int = 300
    demand_ttl_s: int = 300
    db_busy_timeout_s: float = 60.0
    buy_price_min_cents: int = 300
    buy_price_max_cents: int = 10_000
    min_percent_drop: int = 20
    sales_rank_min: int = 1
    sales_rank_max: int = 2_000_000
    min_rank_drops_90: int = 1
    min_profit_cents: int = 300
    min_roi_percent: int = 30
    referral_fee_percent: float = 15.0
    closing_fee_cents: int = 180
    fba_fee_cents: int = 350
    buy_shipping_cents: int = 399
    stale_after_s: int = 86_400
    quarantine_after_failures: int = 3
    rejection_memory_s: int = 1_209_600
    history_keep_s: int = 7_776_000  # 90 days
    harvest_inline_wait_s: float = 20.0
    harvest_max_run_s: int = 600
    harvest_commit_batch: int = 10
    upsert_first_lookback_s: int = 3600
    backfill_pass_pause_s: int = 21_600
    time_scale: float = 1.0
    time_origin_s: float = 0.0
    upsert_every_s: int = 900
    backfill_every_s: int = 60
    worker_concurrency: int = 2
    task_soft_time_limit_s: int = 900
    task_time_limit_s: int = 1020
    lock_ttl_s: int = 60

    def __post_init__(self) -> None:
        self.validate()

    # --- construction -------------------------------------------------------------

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        dotenv_path: str | os.PathLike[str] | None = None,
    ) -> Settings:
        """`.env` first, then the process environment (which wins)."""
        env_file = Path(dotenv_path) if dotenv_path is not None else Path(".env")
        merged = _read_env_file(env_file)
        merged.update(os.environ if environ is None else environ)
        return cls.from_mapping(merged)

    @classmethod
    def from_mapping(cls, values: Mapping[str, str]) -> Settings:
        kwargs = {
            var.attr: var.parse(var.name, values.get(var.name, var.default)) for var in VARIABLES
        }
        return cls(**kwargs)

    def with_overrides(self, overrides: Mapping[str, str]) -> Settings:
        """Apply NAME=VALUE pairs named as in `.env.example` (simulate --set)."""
        changes: dict[str, Any] = {}
        for name, raw in overrides.items():
            var = _BY_NAME.get(name)
            if var is None:
                # A typo such as KEEPA_API_KEYS may carry the key: never echo the value.
                raise ConfigError(
                    name, "<hidden>", "is not a keepa-deals setting (see .env.example)"
                )
            changes[var.attr] = var.parse(name, raw)
        return replace(self, **changes)

    # --- derived values -----------------------------------------------------------

    @property
    def plan_capacity(self) -> int:
        """Keepa's tokens expire after an hour, so the bucket holds 60 x rate."""
        return 60 * self.plan_rate

    def threshold(self, cls: str) -> int:
        return int(getattr(self, f"threshold_{cls}"))

    def min_share(self, cls: str) -> float:
        return float(getattr(self, f"min_share_{cls}"))

    @property
    def effective_demand_ttl_s(self) -> int:
        """How long a class's last ask keeps it waiting, as the TokenManager applies it.

        A run that cannot get its tokens soon stops, and beat brings the next one a
        period later. Were the demand to lapse in between, the other class would stop
        yielding for the rest of the period and the stopped class's wait would outgrow
        the starvation bound status() reports (which assumes a class that keeps asking).
        So the demand outlives the gap between two runs' asks: one period, plus a
        minute for beat's tick and the queue.
        """
        longest_period_s = max(self.upsert_every_s, self.backfill_every_s)
        return max(self.demand_ttl_s, longest_period_s + 60)

    @property
    def referral_fee_bps(self) -> int:
        """The referral fee in basis points, so fee arithmetic stays in integers."""
        return round(self.referral_fee_percent * 100)

    # --- validation ---------------------------------------------------------------

    def validate(self) -> None:
        """Refuse settings that could make some wait impossible or the policy incoherent."""
        cap = self.plan_capacity
        plan = f"capacity is {cap} at KEEPA_PLAN_RATE={self.plan_rate} (60 x rate)"
        for cls in TOKEN_CLASSES:
            name = f"TOKEN_THRESHOLD_{cls.upper()}"
            if self.threshold(cls) > cap:
                raise ConfigError(
                    name,
                    self.threshold(cls),
                    f"a balance above capacity can never be reached; {plan}",
                )
        if self.threshold_upsert > self.threshold_backfill:
            raise ConfigError(
                "TOKEN_THRESHOLD_UPSERT",
                self.threshold_upsert,
                f"must not exceed TOKEN_THRESHOLD_BACKFILL={self.threshold_backfill}: "
                "the high-priority class would wait longer than the low one (priority inversion)",
            )
        if self.recharge_high > cap:
            raise ConfigError(
                "RECHARGE_HIGH",
                self.recharge_high,
                f"must not exceed the capacity {cap} (60 x KEEPA_PLAN_RATE={self.plan_rate})",
            )
        if self.recharge_low >= self.recharge_high:
            raise ConfigError(
                "RECHARGE_LOW",
                self.recharge_low,
                f"must be below RECHARGE_HIGH={self.recharge_high}",
            )
        if self.recharge_low <= self.deficit_floor:
            raise ConfigError(
                "RECHARGE_LOW",
                self.recharge_low,
                f"must be above TOKEN_DEFICIT_FLOOR={self.deficit_floor}",
            )
        if self.time_scale != 1 and self.time_origin_s <= 0:
            raise ConfigError(
                "KEEPA_TIME_ORIGIN_S",
                self.time_origin_s,
                f"must be set (unix seconds) when KEEPA_TIME_SCALE={self.time_scale:g}: every "
                "process and the simulator must agree on when scaled time began",
            )
        if self.time_scale != 1 and "api.keepa.com" in self.keepa_api_url:
            raise ConfigError(
                "KEEPA_TIME_SCALE",
                self.time_scale,
                "must be 1 against the real Keepa: its refills run on wall time",
            )
        if self.harvest_max_run_s >= self.task_soft_time_limit_s:
            raise ConfigError(
                "HARVEST_MAX_RUN_S",
                self.harvest_max_run_s,
                f"must be below TASK_SOFT_TIME_LIMIT_S={self.task_soft_time_limit_s}: a run "
                "ends by itself before Celery has to interrupt it",
            )
        if self.task_time_limit_s <= self.task_soft_time_limit_s:
            raise ConfigError(
                "TASK_TIME_LIMIT_S",
                self.task_time_limit_s,
                f"must be above TASK_SOFT_TIME_LIMIT_S={self.task_soft_time_limit_s}, so a "
                "run can save its progress before it is killed",
            )
        if self.min_share_backfill <= 0:
            # The lowest class has nobody below it to borrow from: without a share, an
            # upserter that keeps asking could starve it forever (story 2).
            raise ConfigError(
                "TOKEN_MIN_SHARE_BACKFILL",
                self.min_share_backfill,
                "must be above 0: it is what bounds the backfiller's wait when the "
                "upserter keeps asking (e.g. 0.01 for 1% of the refill)",
            )
        shares = self.min_share_upsert + self.min_share_backfill
        if shares > 1.0:
            raise ConfigError(
                "TOKEN_MIN_SHARE_BACKFILL",
                self.min_share_backfill,
                f"shares add up to {shares:g}; the refill can't be promised twice "
                "(TOKEN_MIN_SHARE_UPSERT + TOKEN_MIN_SHARE_BACKFILL <= 1)",
            )
        if self.min_share_upsert <= 0 and self.min_share_backfill >= 1.0:
            # A class without a share lives on what the shares leave over; with the
            # whole refill promised to the backfiller, the upserter would have no bound.
            raise ConfigError(
                "TOKEN_MIN_SHARE_BACKFILL",
                self.min_share_backfill,
                "must be below 1 while TOKEN_MIN_SHARE_UPSERT=0: the whole refill "
                "promised to the backfiller leaves the upserter nothing it is sure to "
                "get (give the upserter a share, or lower this one)",
            )
        self._validate_evaluation()
        if 0 < self.history_keep_s < 2 * 86_400:
            # status and doctor judge progress over the last 24 hours of runs.
            raise ConfigError(
                "HISTORY_KEEP_S",
                self.history_keep_s,
                "must be 0 (keep forever) or at least 172800 (2 days): status and doctor "
                "read the last 24 hours of runs",
            )
        worst_call_s = self.keepa_connect_timeout_s + self.keepa_read_timeout_s
        if self.grant_ttl_s < worst_call_s:
            raise ConfigError(
                "TOKEN_GRANT_TTL_S",
                self.grant_ttl_s,
                f"must cover one call's timeouts ({worst_call_s:g} s)",
            )

    def _validate_evaluation(self) -> None:
        """Ranges that would reject every deal, for free and without saying why."""
        if self.buy_price_min_cents > self.buy_price_max_cents:
            raise ConfigError(
                "BUY_PRICE_MIN_CENTS",
                self.buy_price_min_cents,
                f"must not exceed BUY_PRICE_MAX_CENTS={self.buy_price_max_cents}",
            )
        if self.sales_rank_min > self.sales_rank_max:
            raise ConfigError(
                "SALES_RANK_MIN",
                self.sales_rank_min,
                f"must not exceed SALES_RANK_MAX={self.sales_rank_max}",
            )
        if abs(self.referral_fee_percent * 100 - self.referral_fee_bps) > 1e-9:
            raise ConfigError(
                "REFERRAL_FEE_PERCENT", self.referral_fee_percent, "must have at most two decimals"
            )
        if not 0 <= self.referral_fee_bps < 10_000:
            raise ConfigError(
                "REFERRAL_FEE_PERCENT", self.referral_fee_percent, "must be within 0..99.99"
            )

    # --- presentation -------------------------------------------------------------

    def masked(self) -> dict[str, str]:
        """Every variable as it would be written in .env, with secrets hidden."""
        out: dict[str, str] = {}
        for var in VARIABLES:
            value = getattr(self, var.attr)
            if var.attr == "keepa_api_key":
                out[var.name] = mask_key(value)
            elif var.attr == "redis_url":
                out[var.name] = mask_url_password(value)
            elif isinstance(value, tuple):
                out[var.name] = ",".join(value)
            else:
                out[var.name] = str(value)
        return out

    def __repr__(self) -> str:
        inner = ", ".join(f"{f.name}={self._shown(f.name)!r}" for f in fields(self))
        return f"Settings({inner})"

    __str__ = __repr__

    def _shown(self, attr: str) -> object:
        value = getattr(self, attr)
        if attr == "keepa_api_key":
            return mask_key(value)
        if attr == "redis_url":
            return mask_url_password(value)
        return value


def mask_key(key: str | None) -> str:
    if not key:
        return "<none>"
    return f"<hidden:{len(key)} chars>"


def env_example() -> str:
    """The text of `.env.example`, one documented variable per line."""
    lines = ["# keepa-deals settings. Copy to .env and edit. Every variable is optional."]
    for var in VARIABLES:
        lines.append(f"# {var.help}")
        lines.append(f"{var.name}={var.default}")
    return "\n".join(lines) + "\n"
