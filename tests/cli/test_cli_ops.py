"""Operator commands against a real redis-server and a temporary database."""

from __future__ import annotations

import json
import os
import pwd
import time
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner

from keepa_deals.cli import main
from keepa_deals.config import Settings
from keepa_deals.harvest.backfiller import pass_due
from keepa_deals.harvest.context import HarvestContext
from keepa_deals.infra.checks import Check
from keepa_deals.infra.clock import ManualClock
from keepa_deals.infra.redis_keys import RedisKeys
from keepa_deals.infra.redis_server import RedisServerProcess
from keepa_deals.service.doctor import check_database_readonly
from keepa_deals.service.preflight import check_database
from keepa_deals.store import (
    BackfillCursor,
    advance_watermark,
    get_cursor,
    get_watermark,
    open_store,
    set_cursor,
    transaction,
)
from keepa_deals.tokens import TokenManager
from tests.support.as_other_user import folder, other_user, run_as_other_user
from tests.support.locked_redis import LockedRedis

KEY = "clitestkey0123456789abcdef"


@pytest.fixture
def env(
    tmp_path: Path, redis_server: RedisServerProcess, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    monkeypatch.chdir(tmp_path)  # no stray .env
    values = {
        "REDIS_URL": redis_server.url,
        "KEEPA_REDIS_PREFIX": prefix,
        "DEALS_DB_PATH": str(tmp_path / "deals.db"),
        "KEEPA_API_KEY": KEY,
        "KEEPA_API_URL": "http://127.0.0.1:9",  # nothing listens: Keepa unreachable
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def test_migrate_creates_the_database(env: dict[str, str]) -> None:
    code, out = invoke("migrate")
    assert code == 0 and "schema v" in out
    assert Path(env["DEALS_DB_PATH"]).exists()


def test_migrate_refuses_a_file_that_is_no_database_with_one_line(env: dict[str, str]) -> None:
    path = Path(env["DEALS_DB_PATH"])
    content = b"SQLite format 2\0 (not really) " * 20
    path.write_bytes(content)
    before_ns = path.stat().st_mtime_ns
    result = CliRunner().invoke(main, ["migrate"], catch_exceptions=False)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == (
        f"error: {path}: not a SQLite database (file is not a database); it was left "
        "untouched: restore it from a backup, or move it aside and run `keepa-deals "
        "migrate` to start an empty one\n"
    )
    assert path.read_bytes() == content and path.stat().st_mtime_ns == before_ns
    assert not Path(f"{path}-wal").exists() and not Path(f"{path}-shm").exists()


@pytest.mark.parametrize("command", [["migrate"], ["backfill", "--restart"]])
@pytest.mark.parametrize("what", ["a folder", "under a file"])
def test_a_database_path_that_cannot_be_opened_is_one_line(
    env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    what: str,
    command: list[str],
) -> None:
    if what == "a folder":
        path = tmp_path / "deals.db"
        path.mkdir()
    else:
        (tmp_path / "var").write_text("a file where the folder should be\n")
        path = tmp_path / "var" / "deals.db"
    monkeypatch.setenv("DEALS_DB_PATH", str(path))
    result = CliRunner().invoke(main, command, catch_exceptions=False)
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}: cannot be opened ("), lines
    assert lines[0].endswith(
        "DEALS_DB_PATH must name a file in a folder that exists or can be created"
    )


def root_owned_database(var: Path) -> Path:
    """What `sudo keepa-deals migrate` before a deploy leaves: deals.db, root's, 0644."""
    path = var / "deals.db"
    open_store(path, busy_timeout_s=10).close()
    path.chmod(0o644)
    return path


def test_as_the_service_user_a_root_owned_database_fails_every_start_up_check(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """It passed preflight, migrate was a no-op, and every run failed at its first write
    ("attempt to write a readonly database")."""
    with folder() as var:
        db = root_owned_database(var)
        monkeypatch.setenv("DEALS_DB_PATH", str(db))
        monkeypatch.chdir(var)  # a cwd the other user may read (for .env)
        settings = Settings.from_env()
        user = other_user()
        why = (
            f"{db}: {user.pw_name} (uid {user.pw_uid}) cannot write the database: {db} is "
            f"owned by root:root, mode 0644; give the database files to that user: "
            f"chown {user.pw_name}: {db}*"
        )

        def as_service_user() -> tuple[object, ...]:
            migrate = CliRunner().invoke(main, ["migrate"])
            return (
                check_database(settings),
                check_database_readonly(settings),
                migrate.exit_code,
                migrate.stderr,
            )

        preflight_check, doctor_check, code, err = run_as_other_user(as_service_user)
    assert preflight_check == Check("database", "fail", why)
    assert doctor_check == Check("database", "fail", why)
    assert (code, err) == (2, f"error: {why}\n")


def test_doctor_as_another_user_only_warns_about_the_service_user_s_database() -> None:
    """doctor can check writes only as the user running it. The service user's files,
    seen by an operator in its group, are not the service's failure: a warning that
    says how to check. (Root's files fail whoever asks: see the test above.)"""
    with folder(owner="daemon") as var:  # daemon stands for the service user here
        var.chmod(0o777)  # the reader may still create -shm: only the file is the service's
        db = var / "deals.db"
        open_store(db, busy_timeout_s=10).close()
        db.chmod(0o644)
        daemon = pwd.getpwnam("daemon")
        os.chown(db, daemon.pw_uid, daemon.pw_gid)
        settings = Settings.from_mapping({"DEALS_DB_PATH": str(db)})
        check = run_as_other_user(lambda: check_database_readonly(settings))
    user = other_user()
    assert check == Check(
        "database",
        "warn",
        f"{db}: {user.pw_name} (uid {user.pw_uid}) cannot write the database ({db} is owned "
        "by daemon:daemon, mode 0644); fine if the service runs as that owner: run doctor "
        "as the service user to see what it meets",
    )


def test_reset_watermark_moves_it_backwards_and_says_so(env: dict[str, str]) -> None:
    conn = open_store(env["DEALS_DB_PATH"])
    with transaction(conn):
        advance_watermark(conn, 1_800_000_000, 1_800_000_000)
    code, out = invoke("reset-watermark", "--to", "2026-11-20T00:00:00Z")
    assert code == 0 and "2026-11-20T00:00:00+00:00" in out and "2027-01-15" in out
    assert get_watermark(conn) == 1_795_132_800
    conn.close()


def test_reset_watermark_refuses_a_bad_time(env: dict[str, str]) -> None:
    code, out = invoke("reset-watermark", "--to", "yesterday")
    assert code == 2 and "--to" in out


def test_backfill_restart_puts_the_cursor_on_page_zero(env: dict[str, str]) -> None:
    conn = open_store(env["DEALS_DB_PATH"])
    set_cursor(conn, BackfillCursor(7, 2), 1_800_000_000)
    code, out = invoke("backfill", "--restart")
    assert code == 0
    assert out == (
        "backfill restarted: cursor moved from page 7 to page 0 (completed passes stay 2); "
        "the next backfill run reads page 0 at once, without the "
        "BACKFILL_PASS_PAUSE_S=21600 pause\n"
    )
    assert get_cursor(conn) == BackfillCursor(0, 2)  # the abandoned pass did not complete
    conn.close()


def test_backfill_restart_makes_the_next_pass_due_now_even_inside_the_pause(
    env: dict[str, str], redis_client: redis.Redis
) -> None:
    conn = open_store(env["DEALS_DB_PATH"])
    now = int(time.time())
    set_cursor(conn, BackfillCursor(0, 4), now)  # a pass has just ended: 6 hours' pause
    settings = Settings.from_env()
    ctx = HarvestContext.from_settings(settings, conn=conn, redis=redis_client)
    try:
        assert pass_due(ctx, get_cursor(conn)) is False
        code, out = invoke("backfill", "--restart")
        assert code == 0 and "from page 0 to page 0 (completed passes stay 4)" in out
        # The old command counted a finished pass dated now: nothing read for 6 hours.
        assert pass_due(ctx, get_cursor(conn)) is True
    finally:
        ctx.close()
        conn.close()


def test_pause_and_resume_change_the_shared_state(env: dict[str, str]) -> None:
    code, out = invoke("pause")
    assert code == 1 and "no token state" in out  # nothing to pause yet: said plainly
    settings = Settings.from_env()
    client = redis.Redis.from_url(env["REDIS_URL"])
    clock = ManualClock()
    tm = TokenManager.from_settings(settings, redis=client)
    tm.observe(
        {
            "tokensLeft": 300,
            "refillIn": 30_000,
            "refillRate": 5,
            "tokensConsumed": 0,
            "timestamp": round(clock.now() * 1000),
        }
    )
    code, out = invoke("pause")
    assert code == 0 and "recharge is now ON" in out
    assert tm.status().as_dict()["recharge"]["active"] is True
    code, out = invoke("resume")
    assert code == 0 and "recharge is now OFF" in out
    assert tm.status().as_dict()["recharge"]["active"] is False
    client.close()


def test_status_json_reports_every_part(env: dict[str, str]) -> None:
    invoke("migrate")
    code, out = invoke("status", "--json")
    assert code == 0
    report = json.loads(out)
    assert set(report) >= {"tokens", "locks", "database"}
    assert report["locks"] == {"upsert": None, "backfill": None}
    assert report["database"]["state"] == "ok"
    assert KEY not in out


def test_status_names_each_class_and_the_claim_it_holds(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The plain `status` a user reads: one line per class, a waiting class with its
    wait and reason, and an entitled class between asks with the tokens it holds back
    from classes without credit."""
    monkeypatch.setenv("TOKEN_MIN_SHARE_UPSERT", "0.4")
    invoke("migrate")
    settings = Settings.from_env()
    client = redis.Redis.from_url(env["REDIS_URL"])
    try:
        tm = TokenManager.from_settings(settings, redis=client)
        now_ms = round(time.time() * 1000)
        tm.observe(
            {
                "tokensLeft": 10,
                "refillIn": 30_000,
                "refillRate": 5,
                "tokensConsumed": 0,
                "timestamp": now_ms,
            }
        )
        # Just granted, with credit for two more requests of 5: it holds max(1, -180 + 5)
        # for the next and 5 for the one after.
        tm.redis.hset(
            tm.keys.token_class("upsert"),
            mapping={"credit": 10, "last_cost": 5, "last_ask_ms": now_ms},
        )
        assert not tm.try_acquire("backfill", 5).granted
        code, out = invoke("status")
    finally:
        client.close()
    assert code == 0, out
    lines = {line.split(":")[0].strip(): line for line in out.splitlines() if ":" in line}
    assert "holds 6 tokens for its share" in lines["upsert"], out
    assert "waits" not in lines["upsert"], out
    # Balance 10 is under RECHARGE_LOW: the gated backfiller waits for 280, about 54 min.
    assert "min (recharge)" in lines["backfill"] and "holds" not in lines["backfill"], out
    assert "last exit none yet" in lines["recharge"], out
    assert KEY not in out


def test_doctor_fails_and_names_what_is_wrong(env: dict[str, str]) -> None:
    invoke("migrate")
    code, out = invoke("doctor")
    assert code == 1
    assert "[ok  ] redis" in out and "[ok  ] database" in out
    assert "[FAIL] keepa" in out  # nothing listens on the configured Keepa URL
    assert "[FAIL] workers" in out
    assert KEY not in out


def test_worker_refuses_bad_settings_with_one_line(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOKEN_THRESHOLD_BACKFILL", "480")
    result = CliRunner().invoke(main, ["worker"])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "TOKEN_THRESHOLD_BACKFILL=480" in lines[0]


def test_worker_refuses_unreachable_redis(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:9/0")
    result = CliRunner().invoke(main, ["worker"])
    assert result.exit_code == 2
    assert "redis: unreachable at redis://127.0.0.1:9/0" in result.output


@pytest.mark.parametrize("form", ["query", "unix"])
def test_worker_refuses_a_redis_url_celery_cannot_read_with_one_line(
    env: dict[str, str], locked_redis: LockedRedis, monkeypatch: pytest.MonkeyPatch, form: str
) -> None:
    """redis-py takes `?password=` and `unix://`; kombu, Celery's broker, fails on both
    (TypeError: two passwords; KeyError: no such transport) with a traceback, after the
    start-up checks had passed."""
    server, password = locked_redis.server, locked_redis.password
    url = {
        "query": f"redis://{server.host}:{server.port}/0?password={password}",
        "unix": f"unix://:{password}@/run/redis/redis.sock?db=0",
    }[form]
    monkeypatch.setenv("REDIS_URL", url)
    result = CliRunner().invoke(main, ["worker"])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error: redis: REDIS_URL ")
    assert "Celery's broker cannot use it" in lines[0]
    assert password not in result.output


def test_worker_refuses_a_malformed_deal_query(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    query = tmp_path / "query.json"
    query.write_text('{"domainId": 1, "dateRange": "1"}')
    monkeypatch.setenv("DEAL_QUERY_PATH", str(query))
    result = CliRunner().invoke(main, ["worker"])
    assert result.exit_code == 2
    assert "dateRange" in result.output


# --- a Redis that cannot be asked, and one that answers with an error ------------------

WRONG_PASSWORD = "not-the-password-7f2e"


@pytest.fixture
def wrong_password(
    env: dict[str, str], locked_redis: LockedRedis, monkeypatch: pytest.MonkeyPatch
) -> str:
    """The service's settings, but Redis refuses the password: nothing can be read."""
    monkeypatch.setenv("REDIS_URL", locked_redis.url(WRONG_PASSWORD))
    invoke("migrate")
    return f"redis://:***@127.0.0.1:{locked_redis.server.port}/0"


def test_status_with_redis_unreachable_says_unknown_never_free(
    wrong_password: str, locked_redis: LockedRedis
) -> None:
    """It printed `lock state: free` and `lock error: free`: the error object's keys
    read as task names, and a lock it could not read as a free one."""
    code, out = invoke("status")
    assert code == 0, out
    lines = out.splitlines()
    assert lines[:3] == [
        f"tokens: unknown (Redis unreachable at {wrong_password}: "
        "invalid username-password pair or user is disabled.)",
        "lock upsert: unknown (Redis unreachable)",
        "lock backfill: unknown (Redis unreachable)",
    ]
    assert "free" not in out
    assert WRONG_PASSWORD not in out and locked_redis.password not in out


def test_status_json_with_redis_unreachable_marks_each_lock_unknown(
    wrong_password: str,
) -> None:
    code, out = invoke("status", "--json")
    assert code == 0
    report = json.loads(out)
    unknown = {
        "state": "unknown",
        "cause": "unreachable",
        "error": f"Redis unreachable at {wrong_password}: "
        "invalid username-password pair or user is disabled.",
    }
    assert report["tokens"] == unknown
    # Keyed by task as when Redis answers, so a reader walking the tasks meets no None.
    assert report["locks"] == {"upsert": unknown, "backfill": unknown}
    assert report["database"]["state"] == "ok"  # what does work is still reported
    assert WRONG_PASSWORD not in out


def test_doctor_with_redis_unreachable_calls_the_locks_unknown(
    wrong_password: str, locked_redis: LockedRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEEPA_API_KEY", "")  # no Keepa calls and their retries
    code, out = invoke("doctor")
    assert code == 1
    reason = f"Redis unreachable at {wrong_password}: invalid username-password pair"
    assert f"[FAIL] redis: unreachable at {wrong_password}: invalid username-password" in out
    assert f"[FAIL] tokens: unknown: {reason}" in out
    assert f"[FAIL] locks: unknown: {reason}" in out
    assert "[FAIL] workers: cannot ask the workers: invalid username-password pair" in out
    assert "none held" not in out
    assert WRONG_PASSWORD not in out and locked_redis.password not in out


def broken_token_state(env: dict[str, str], redis_client: redis.Redis) -> None:
    """The token state's key holding a string: every token script fails on it (WRONGTYPE)
    while Redis itself answers."""
    redis_client.set(RedisKeys(env["KEEPA_REDIS_PREFIX"]).token_state, "not a hash")


def test_status_names_a_token_script_error_as_such(
    env: dict[str, str], redis_client: redis.Redis
) -> None:
    invoke("migrate")
    broken_token_state(env, redis_client)
    code, out = invoke("status")
    assert code == 0
    first = out.splitlines()[0]
    assert first.startswith("tokens: unknown (token script error: WRONGTYPE "), out
    assert "unreachable" not in out
    assert "lock upsert: free" in out  # Redis answered: the locks were read
    code, out = invoke("status", "--json")
    tokens = json.loads(out)["tokens"]
    assert (tokens["state"], tokens["cause"]) == ("unknown", "script_error")


def test_doctor_names_a_token_script_error_as_such(
    env: dict[str, str], redis_client: redis.Redis
) -> None:
    invoke("migrate")
    broken_token_state(env, redis_client)
    code, out = invoke("doctor")
    assert code == 1
    assert "[FAIL] tokens: token script error: WRONGTYPE " in out
    assert "[ok  ] locks: none held" in out
    assert "unreachable" not in out.split("[FAIL] keepa")[0]  # redis, database: fine


def test_doctor_masks_a_redis_password_in_the_query_string(
    env: dict[str, str], locked_redis: LockedRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """redis-py authenticates with it, so doctor gets as far as printing the URL."""
    server = locked_redis.server
    monkeypatch.setenv(
        "REDIS_URL", f"redis://{server.host}:{server.port}/0?password={locked_redis.password}"
    )
    invoke("migrate")
    _, out = invoke("doctor")
    assert f"{server.host}:{server.port}/0?password=***" in out
    assert locked_redis.password not in out
