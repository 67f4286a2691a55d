"""Settings: defaults, one ConfigError per bad value naming variable, value and what is
allowed, the cross-setting rules, masking, `.env.example`, and `.env` vs environment."""

from __future__ import annotations

import dataclasses
import grp
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis.connection import parse_url

from keepa_deals.config import (
    DEFAULT_DEAL_QUERY,
    VARIABLES,
    Settings,
    Var,
    env_example,
    mask_url_password,
)
from keepa_deals.deal_query import load_deal_query
from keepa_deals.errors import ConfigError
from tests.as_other_user import Raised, folder, other_user, run_as_other_user

REPO = Path(__file__).resolve().parent.parent
KEY = "SECRETKEY" + "0123456789abcdef" * 3 + "QWERTYUI"
REDIS_PASSWORD = "hunter2redispass"
NAMES = [var.name for var in VARIABLES]


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """No keepa-deals variable in the process environment and a cwd with no `.env`."""
    for name in NAMES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    yield tmp_path


def from_env(values: dict[str, str], tmp_path: Path) -> Settings:
    return Settings.from_env(environ=values, dotenv_path=tmp_path / "absent.env")


# --- defaults ------------------------------------------------------------------------


def test_the_defaults_are_the_documented_ones(tmp_path: Path) -> None:
    settings = from_env({}, tmp_path)
    assert settings == Settings()
    assert settings.keepa_api_key is None
    assert settings.keepa_api_url == "https://api.keepa.com"
    assert settings.keepa_domain == 1
    assert settings.redis_url == "redis://127.0.0.1:6379/0"
    assert settings.redis_prefix == "keepa:"
    assert settings.deals_db_path == Path("var/deals.db")
    assert settings.deal_query_path == DEFAULT_DEAL_QUERY
    assert settings.plan_capacity == 300


def test_each_variable_default_parses_to_the_field_default() -> None:
    defaults = Settings()
    for var in VARIABLES:
        assert var.parse(var.name, var.default) == getattr(defaults, var.attr), var.name


def test_the_shipped_deal_query_is_a_valid_selection() -> None:
    selection = load_deal_query(DEFAULT_DEAL_QUERY)
    assert selection["domainId"] == 1
    assert len(selection["priceTypes"]) == 1


def test_values_are_parsed_into_their_types(tmp_path: Path) -> None:
    settings = from_env(
        {
            "KEEPA_API_KEY": f"  {KEY} ",
            "KEEPA_API_URL": "http://127.0.0.1:8765/",
            "KEEPA_DOMAIN": "3",
            "KEEPA_READ_TIMEOUT_S": "12.5",
            "REDIS_URL": "rediss://cache.example:6380/2",
            "KEEPA_REDIS_PREFIX": "test-1:",
            "DEALS_DB_PATH": "~/deals.db",
            "DEAL_QUERY_PATH": "queries/mine.json",
            "RECHARGE_GATED_CLASSES": " backfill , upsert ",
            "TOKEN_DEFICIT_FLOOR": "-50",
        },
        tmp_path,
    )
    assert settings.keepa_api_key == KEY
    assert settings.keepa_api_url == "http://127.0.0.1:8765"  # no trailing slash
    assert settings.keepa_domain == 3
    assert settings.keepa_read_timeout_s == 12.5
    assert settings.redis_url == "rediss://cache.example:6380/2"
    assert settings.redis_prefix == "test-1:"
    assert settings.deals_db_path == Path.home() / "deals.db"
    assert settings.deal_query_path == Path("queries/mine.json")
    assert settings.recharge_gated_classes == ("backfill", "upsert")
    assert settings.deficit_floor == -50


def test_an_empty_key_means_no_key(tmp_path: Path) -> None:
    assert from_env({"KEEPA_API_KEY": "  "}, tmp_path).keepa_api_key is None


# --- one bad value, one error ----------------------------------------------------------

BAD_VALUES = [
    ("KEEPA_API_URL", "ftp://api.keepa.com", "http or https"),
    ("KEEPA_API_URL", "api.keepa.com", "http or https"),
    ("KEEPA_DOMAIN", "7", "domain ids"),
    ("KEEPA_DOMAIN", "com", "whole number"),
    ("KEEPA_CONNECT_TIMEOUT_S", "0", "at least 0.1"),
    ("KEEPA_CONNECT_TIMEOUT_S", "nan", "finite"),
    ("KEEPA_READ_TIMEOUT_S", "inf", "finite"),
    ("KEEPA_READ_TIMEOUT_S", "301", "at most 300"),
    ("KEEPA_READ_TIMEOUT_S", "fast", "a number"),
    ("KEEPA_MAX_RETRIES", "-1", "at least 0"),
    ("KEEPA_MAX_RETRIES", "11", "at most 10"),
    ("KEEPA_MAX_RETRIES", "2.5", "whole number"),
    ("REDIS_URL", "http://127.0.0.1:6379/0", "redis or rediss or unix"),
    ("REDIS_URL", "redis:///0", "redis or rediss or unix"),
    ("KEEPA_REDIS_PREFIX", "has space", "1-64 characters"),
    ("KEEPA_REDIS_PREFIX", "x" * 65, "1-64 characters"),
    ("DEALS_DB_PATH", "  ", "file path"),
    ("KEEPA_PLAN_RATE", "0", "at least 1"),
    ("TOKEN_THRESHOLD_UPSERT", "0", "at least 1"),
    ("TOKEN_THRESHOLD_BACKFILL", "lots", "whole number"),
    ("TOKEN_MIN_SHARE_UPSERT", "-0.1", "at least 0"),
    ("TOKEN_MIN_SHARE_BACKFILL", "1.5", "at most 1"),
    ("TOKEN_DEFICIT_FLOOR", "5", "at most 0"),
    ("RECHARGE_LOW", "low", "whole number"),
    ("RECHARGE_HIGH", "0", "at least 1"),
    ("RECHARGE_TIMEOUT_S", "59", "at least 60"),
    ("RECHARGE_GATED_CLASSES", "backfill,bogus", "upsert, backfill"),
    ("TOKEN_SYNC_INTERVAL_S", "10", "at least 60"),
    ("TOKEN_GRANT_TTL_S", "9", "at least 10"),
    ("TOKEN_DEMAND_TTL_S", "0", "at least 1"),
]
GARBAGE = ["garbage", "", "  ", "-99999999999999999999", "1e999", "nan", "0x10", "3,5", "\u00e9"]


@pytest.mark.parametrize("var", VARIABLES, ids=lambda var: var.name)
def test_every_variable_parses_or_raises_a_config_error_naming_it(var: Var) -> None:
    """Also holds for variables added later: never a bare ValueError, never a crash."""
    for raw in GARBAGE:
        try:
            var.parse(var.name, raw)
        except ConfigError as error:
            assert error.variable == var.name
            assert str(error).startswith(f"{var.name}=")
    default = getattr(Settings(), var.attr)
    if isinstance(default, int | float) and not isinstance(default, bool):
        assert var.parse(var.name, var.default) == default
        with pytest.raises(ConfigError):
            var.parse(var.name, "garbage")  # numbers refuse words


@pytest.mark.parametrize(("name", "value", "allowed"), BAD_VALUES)
def test_a_bad_value_names_the_variable_the_value_and_what_is_allowed(
    tmp_path: Path, name: str, value: str, allowed: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        from_env({name: value}, tmp_path)
    error = caught.value
    assert error.variable == name
    assert name in str(error)
    assert value.strip() in str(error)
    assert allowed in str(error)


@pytest.mark.parametrize("key", ["too-short", "has-dashes-" + KEY, KEY + "!", "x" * 129])
def test_a_bad_key_is_refused_without_being_echoed(tmp_path: Path, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        from_env({"KEEPA_API_KEY": key}, tmp_path)
    assert caught.value.variable == "KEEPA_API_KEY"
    assert "letters and digits" in str(caught.value)
    assert key not in str(caught.value)
    assert key not in repr(caught.value.args)
    assert caught.value.value != key


@pytest.mark.parametrize(
    "url",
    [
        f"http://user:{REDIS_PASSWORD}@cache.example:6379/0",
        f"http://cache.example:6379/0?password={REDIS_PASSWORD}",
        f"redis://[cache.example:6379/0?password={REDIS_PASSWORD}",  # unparseable
    ],
)
def test_a_bad_redis_url_does_not_echo_its_password(tmp_path: Path, url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        from_env({"REDIS_URL": url}, tmp_path)
    assert caught.value.variable == "REDIS_URL"
    assert "cache.example" in str(caught.value)
    assert REDIS_PASSWORD not in str(caught.value)


@pytest.mark.parametrize(
    ("name", "value"),
    [("REDIS_URL", "redis://[::1/0"), ("KEEPA_API_URL", "http://[api.keepa.com")],
)
def test_an_unparseable_url_is_a_config_error(tmp_path: Path, name: str, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        from_env({name: value}, tmp_path)
    assert caught.value.variable == name


@pytest.mark.parametrize(
    ("name", "value"),
    [("REDIS_URL", "redis://127.0.0.1:99999/0"), ("KEEPA_API_URL", "http://127.0.0.1:0x50")],
)
def test_a_url_with_a_bad_port_is_a_config_error(tmp_path: Path, name: str, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        from_env({name: value}, tmp_path)
    assert caught.value.variable == name


def test_a_unix_socket_redis_url_is_accepted(tmp_path: Path) -> None:
    url = "unix:///run/redis/redis.sock?db=0"
    assert from_env({"REDIS_URL": url}, tmp_path).redis_url == url


# --- cross-setting rules ----------------------------------------------------------------

RULES = [
    (
        {"HARVEST_MAX_RUN_S": "900", "TASK_SOFT_TIME_LIMIT_S": "900"},
        "HARVEST_MAX_RUN_S",
        "must be below TASK_SOFT_TIME_LIMIT_S",
    ),
    (
        {"TASK_SOFT_TIME_LIMIT_S": "900", "TASK_TIME_LIMIT_S": "900"},
        "TASK_TIME_LIMIT_S",
        "must be above TASK_SOFT_TIME_LIMIT_S",
    ),
    (
        {"TOKEN_MIN_SHARE_BACKFILL": "0"},
        "TOKEN_MIN_SHARE_BACKFILL",
        "must be above 0",
    ),
    (
        {"KEEPA_PLAN_RATE": "1", "TOKEN_THRESHOLD_BACKFILL": "61", "RECHARGE_HIGH": "60"},
        "TOKEN_THRESHOLD_BACKFILL",
        "capacity is 60",
    ),
    (
        {
            "KEEPA_PLAN_RATE": "1",
            "TOKEN_THRESHOLD_UPSERT": "61",
            "TOKEN_THRESHOLD_BACKFILL": "61",
            "RECHARGE_HIGH": "60",
        },
        "TOKEN_THRESHOLD_UPSERT",
        "capacity is 60",
    ),
    (
        {"TOKEN_THRESHOLD_UPSERT": "61", "TOKEN_THRESHOLD_BACKFILL": "60"},
        "TOKEN_THRESHOLD_UPSERT",
        "TOKEN_THRESHOLD_BACKFILL=60",
    ),
    ({"KEEPA_PLAN_RATE": "4"}, "RECHARGE_HIGH", "capacity 240"),
    ({"RECHARGE_LOW": "280"}, "RECHARGE_LOW", "RECHARGE_HIGH=280"),
    (
        {"RECHARGE_LOW": "-180", "TOKEN_DEFICIT_FLOOR": "-180"},
        "RECHARGE_LOW",
        "TOKEN_DEFICIT_FLOOR=-180",
    ),
    (
        {"TOKEN_MIN_SHARE_UPSERT": "0.5", "TOKEN_MIN_SHARE_BACKFILL": "0.6"},
        "TOKEN_MIN_SHARE_BACKFILL",
        "TOKEN_MIN_SHARE_UPSERT",
    ),
    (
        {"TOKEN_MIN_SHARE_BACKFILL": "1"},
        "TOKEN_MIN_SHARE_BACKFILL",
        "while TOKEN_MIN_SHARE_UPSERT=0",
    ),
    (
        {"TOKEN_GRANT_TTL_S": "44", "KEEPA_CONNECT_TIMEOUT_S": "5", "KEEPA_READ_TIMEOUT_S": "40"},
        "TOKEN_GRANT_TTL_S",
        "45 s",
    ),
    ({"HISTORY_KEEP_S": "172799"}, "HISTORY_KEEP_S", "at least 172800 (2 days)"),
]


@pytest.mark.parametrize(("values", "variable", "explains"), RULES)
def test_an_incoherent_combination_is_refused_naming_the_setting(
    tmp_path: Path, values: dict[str, str], variable: str, explains: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        from_env(values, tmp_path)
    assert caught.value.variable == variable
    assert str(caught.value).startswith(f"{variable}=")
    assert explains in str(caught.value)


@pytest.mark.parametrize(
    "values",
    [
        {"KEEPA_PLAN_RATE": "1", "TOKEN_THRESHOLD_BACKFILL": "60", "RECHARGE_HIGH": "60"},
        {"TOKEN_THRESHOLD_UPSERT": "60", "TOKEN_THRESHOLD_BACKFILL": "60"},
        {"TOKEN_THRESHOLD_BACKFILL": "300", "RECHARGE_HIGH": "300"},
        {"RECHARGE_LOW": "279"},
        {"RECHARGE_LOW": "-179", "TOKEN_DEFICIT_FLOOR": "-180"},
        {"TOKEN_MIN_SHARE_UPSERT": "0.7", "TOKEN_MIN_SHARE_BACKFILL": "0.3"},
        {"TOKEN_MIN_SHARE_BACKFILL": "0.99"},
        {"TOKEN_MIN_SHARE_UPSERT": "0.01", "TOKEN_MIN_SHARE_BACKFILL": "0.99"},
        {"TOKEN_GRANT_TTL_S": "45", "KEEPA_CONNECT_TIMEOUT_S": "5", "KEEPA_READ_TIMEOUT_S": "40"},
        {"HISTORY_KEEP_S": "172800"},
        {"HISTORY_KEEP_S": "0"},
    ],
)
def test_the_limits_themselves_are_allowed(tmp_path: Path, values: dict[str, str]) -> None:
    settings = from_env(values, tmp_path)
    assert settings.masked()[next(iter(values))] == next(iter(values.values()))


def test_the_rules_hold_however_settings_are_built() -> None:
    with pytest.raises(ConfigError, match=r"^RECHARGE_HIGH="):
        Settings(plan_rate=4)
    with pytest.raises(ConfigError, match=r"^RECHARGE_HIGH="):
        Settings().with_overrides({"KEEPA_PLAN_RATE": "4"})
    with pytest.raises(ConfigError, match=r"^RECHARGE_HIGH="):
        dataclasses.replace(Settings(), plan_rate=4)


# --- with_overrides ---------------------------------------------------------------------


def test_overrides_use_the_variable_names_and_leave_the_original_alone() -> None:
    base = Settings()
    changed = base.with_overrides({"KEEPA_DOMAIN": "3", "RECHARGE_GATED_CLASSES": "upsert"})
    assert (changed.keepa_domain, changed.recharge_gated_classes) == (3, ("upsert",))
    assert (base.keepa_domain, base.recharge_gated_classes) == (1, ("backfill",))
    assert dataclasses.replace(changed, keepa_domain=1, recharge_gated_classes=("backfill",)) == (
        base
    )


def test_an_unknown_override_is_refused_by_name() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings().with_overrides({"KEEPA_DOMIAN": "3"})
    assert caught.value.variable == "KEEPA_DOMIAN"
    assert "not a keepa-deals setting" in str(caught.value)


def test_a_bad_override_value_is_refused_like_the_environment() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings().with_overrides({"KEEPA_MAX_RETRIES": "many"})
    assert caught.value.variable == "KEEPA_MAX_RETRIES"
    assert "many" in str(caught.value)


# --- masking ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "redis_url",
    [
        f"redis://:{REDIS_PASSWORD}@cache.example:6379/0",
        f"rediss://deals:{REDIS_PASSWORD}@cache.example:6380/1",
    ],
)
def test_repr_and_str_mask_the_key_and_the_redis_password(tmp_path: Path, redis_url: str) -> None:
    settings = from_env({"KEEPA_API_KEY": KEY, "REDIS_URL": redis_url}, tmp_path)
    assert settings.keepa_api_key == KEY  # the value is kept, only its display is masked
    assert settings.redis_url == redis_url
    masked = settings.masked()
    for text in (repr(settings), str(settings), f"{settings}", f"{settings!r}", str(masked)):
        assert KEY not in text
        assert REDIS_PASSWORD not in text
        assert "cache.example" in text  # the rest is shown
    assert masked["KEEPA_API_KEY"] == f"<hidden:{len(KEY)} chars>"
    assert masked["REDIS_URL"] == redis_url.replace(REDIS_PASSWORD, "***")
    assert f"<hidden:{len(KEY)} chars>" in repr(settings)


# Every place redis-py takes a credential from a URL (redis.connection.parse_url): the
# user-info, and any query parameter (each becomes a connection argument).
P = REDIS_PASSWORD
MASKED_URLS = [
    (f"redis://:{P}@cache.example:6379/0", "redis://:***@cache.example:6379/0"),
    (f"rediss://deals:{P}@cache.example:6380/1", "rediss://deals:***@cache.example:6380/1"),
    (f"redis://cache.example:6379/0?password={P}", "redis://cache.example:6379/0?password=***"),
    (
        f"redis://cache.example/0?username=deals&password={P}&db=1",
        "redis://cache.example/0?username=deals&password=***&db=1",
    ),
    (f"rediss://cache.example/0?ssl_password={P}", "rediss://cache.example/0?ssl_password=***"),
    (f"redis://cache.example/0?Password={P}#x", "redis://cache.example/0?Password=***#x"),
    # A lone user-info is sent as the user name, but it is a password without its colon.
    (f"redis://{P}@cache.example:6379/0", "redis://***@cache.example:6379/0"),
    (f"unix://:{P}@/run/redis/redis.sock?db=0", "unix://:***@/run/redis/redis.sock?db=0"),
    (
        f"unix:///run/redis/redis.sock?db=0&password={P}",
        "unix:///run/redis/redis.sock?db=0&password=***",
    ),
    ("redis://:hunter2%40redis@cache.example/0", "redis://:***@cache.example/0"),
    # Unescaped / and @ in a password: urlsplit misreads them, the mask must not.
    ("redis://:hunter2/redis@pass@cache.example/0", "redis://:***@cache.example/0"),
    (f"redis://[::1/0?password={P}", "redis://[::1/0?password=***"),  # unparseable
    ("redis://cache.example:6379/0", "redis://cache.example:6379/0"),
]


@pytest.mark.parametrize(("url", "shown"), MASKED_URLS)
def test_every_credential_redis_py_reads_from_the_url_is_masked(url: str, shown: str) -> None:
    assert mask_url_password(url) == shown
    try:
        taken = parse_url(url)
    except ValueError:
        return  # redis-py refuses it too; the mask above still hid it
    secrets = [taken.get("password"), taken.get("ssl_password")]
    if "password" not in taken:
        secrets.append(taken.get("username"))  # the lone user-info case
    for secret in filter(None, secrets):
        assert secret not in shown


def test_masked_lists_every_variable() -> None:
    masked = Settings().masked()
    assert list(masked) == NAMES
    assert masked["KEEPA_API_KEY"] == "<none>"
    assert masked["RECHARGE_GATED_CLASSES"] == "backfill"


# --- .env.example -----------------------------------------------------------------------


def test_the_committed_env_example_is_generated_from_the_settings() -> None:
    assert (REPO / ".env.example").read_bytes() == env_example().encode()


def test_env_example_documents_each_variable_once_with_its_default() -> None:
    lines = env_example().splitlines()
    assignments = [line for line in lines if line and not line.startswith("#")]
    assert [line.split("=", 1)[0] for line in assignments] == NAMES
    for var, line in zip(VARIABLES, assignments, strict=True):
        assert line == f"{var.name}={var.default}"
        comment = lines[lines.index(line) - 1]
        assert comment.startswith("# ") and len(comment) > 4


def test_env_example_as_a_dotenv_file_gives_the_defaults(clean_env: Path) -> None:
    assert Settings.from_env(environ={}, dotenv_path=REPO / ".env.example") == Settings()


# --- .env and the environment -----------------------------------------------------------


def test_the_dotenv_file_is_read_and_the_environment_wins(tmp_path: Path) -> None:
    dotenv = tmp_path / "custom.env"
    dotenv.write_text(
        "# a comment\n"
        "KEEPA_DOMAIN=3\n"
        "KEEPA_REDIS_PREFIX=fromfile:\n"
        'DEALS_DB_PATH="/data/deals file.db"\n'
        "KEEPA_MAX_RETRIES\n",  # no value: ignored
        encoding="utf-8",
    )
    settings = Settings.from_env(environ={"KEEPA_DOMAIN": "4"}, dotenv_path=dotenv)
    assert settings.keepa_domain == 4
    assert settings.redis_prefix == "fromfile:"
    assert settings.deals_db_path == Path("/data/deals file.db")
    assert settings.keepa_max_retries == 3


def test_the_process_environment_is_used_by_default_and_wins(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (clean_env / ".env").write_text("KEEPA_DOMAIN=3\nKEEPA_PLAN_RATE=6\n", encoding="utf-8")
    monkeypatch.setenv("KEEPA_DOMAIN", "6")
    settings = Settings.from_env()
    assert settings.keepa_domain == 6
    assert settings.plan_rate == 6  # from ./.env, the default dotenv path


def test_no_dotenv_file_is_fine(clean_env: Path) -> None:
    assert Settings.from_env() == Settings()


def test_a_bad_value_in_the_dotenv_file_names_the_variable(clean_env: Path) -> None:
    (clean_env / ".env").write_text("KEEPA_DOMAIN=7\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        Settings.from_env()
    assert caught.value.variable == "KEEPA_DOMAIN"
    assert "KEEPA_DOMAIN=7" in str(caught.value)


def test_a_class_s_demand_outlives_the_gap_between_its_runs() -> None:
    """A run stopped for tokens keeps its class's claim until beat's next run."""
    from keepa_deals.tokens import TokenPolicy

    assert Settings().effective_demand_ttl_s == 900 + 60  # UPSERT_EVERY_S is the slower
    assert Settings(demand_ttl_s=2000).effective_demand_ttl_s == 2000
    fast = Settings(upsert_every_s=120, backfill_every_s=60)
    assert fast.effective_demand_ttl_s == 300  # TOKEN_DEMAND_TTL_S already covers it
    assert TokenPolicy.from_settings(Settings()).demand_ttl_s == 960


# --- a .env this user may not read ------------------------------------------------------


def unreadable(path: Path, what: str, owner: str, mode: str) -> Raised:
    user = other_user()
    group = grp.getgrgid(user.pw_gid).gr_name
    return Raised(
        "EnvFileUnreadable",
        f"{path}: {user.pw_name} (uid {user.pw_uid}) cannot read the settings file: {what} "
        f"is owned by {owner}, mode {mode}; let the service's group read it: chown "
        f"root:{group} {path} && chmod 0640 {path} (deploy_update.sh does this)",
    )


def test_a_dotenv_only_root_may_read_is_one_config_error_naming_owner_and_mode() -> None:
    """systemd reads the .env as root (EnvironmentFile); the service then read it again
    as its own user and crashed with a raw PermissionError. It is a ConfigError, and
    never skipped: what systemd parsed and what python-dotenv would parse can differ
    (quoting, `export`), so the service refuses to guess."""
    with folder() as home:
        dotenv = home / ".env"
        dotenv.write_text(f"KEEPA_API_KEY={KEY}\nKEEPA_DOMAIN=3\n", encoding="utf-8")
        dotenv.chmod(0o600)  # root's, as an editor under sudo leaves it
        result = run_as_other_user(lambda: Settings.from_env(environ={}, dotenv_path=dotenv))
    assert result == unreadable(dotenv, str(dotenv), "root:root", "0600")
    assert KEY not in result.message


def test_a_dotenv_in_a_folder_the_user_may_not_enter_names_the_folder() -> None:
    with folder(owner="root") as home:
        home.chmod(0o700)
        dotenv = home / ".env"
        dotenv.write_text("KEEPA_DOMAIN=3\n", encoding="utf-8")
        result = run_as_other_user(lambda: Settings.from_env(environ={}, dotenv_path=dotenv))
    assert result == unreadable(dotenv, f"its folder {home}", "root:root", "0700")


def test_a_dotenv_that_is_not_text_is_one_config_error(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_bytes(b"KEEPA_DOMAIN=3\n\xff\xfe\n")
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(environ={}, dotenv_path=dotenv)
    assert str(caught.value).startswith(f"{dotenv}: cannot be read as UTF-8 text (")
