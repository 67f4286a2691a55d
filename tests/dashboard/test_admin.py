"""Security: binding, the password, sessions, CSRF, and the deal query editor."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from keepa_deals.cli.dashboard import dashboard_command
from keepa_deals.config import Settings
from keepa_deals.dashboard.admin import write_atomically
from keepa_deals.dashboard.config import DashboardConfig, check_bind
from keepa_deals.dashboard.security import new_session, session_valid
from keepa_deals.errors import ConfigError
from tests.dashboard.conftest import PASSWORD, ClientFactory

HTML = {"accept": "text/html"}


def csrf_of(client: TestClient, url: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', client.get(url, headers=HTML).text)
    assert found is not None
    return found.group(1)


def login(client: TestClient, password: str = PASSWORD) -> int:
    token = csrf_of(client, "/login")
    r = client.post(
        "/login",
        data={"csrf": token, "password": password, "next": "/query"},
        follow_redirects=False,
    )
    return r.status_code


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost"])
def test_loopback_binds_need_no_password(host: str) -> None:
    assert "only this machine" in check_bind(host, DashboardConfig(settings=Settings()))


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.5", "::"])
def test_other_binds_are_refused_without_a_password(host: str) -> None:
    with pytest.raises(ConfigError, match="DASHBOARD_PASSWORD"):
        check_bind(host, DashboardConfig(settings=Settings()))
    line = check_bind(host, DashboardConfig(settings=Settings(), password=PASSWORD))
    assert "every page asks for DASHBOARD_PASSWORD" in line


def test_the_command_refuses_a_public_bind_without_a_password(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env here
    monkeypatch.delenv("DASHBOARD_PASSWORD", raising=False)
    result = CliRunner().invoke(dashboard_command, ["--host", "0.0.0.0"])
    assert result.exit_code == 2
    assert "DASHBOARD_PASSWORD" in result.output


def test_a_short_password_is_refused() -> None:
    with pytest.raises(ConfigError, match="at least 12"):
        Settings.from_mapping({"DASHBOARD_PASSWORD": "short"})


def test_the_dashboard_reads_its_settings_from_the_one_settings_object() -> None:
    settings = Settings.from_mapping(
        {"DASHBOARD_PASSWORD": PASSWORD, "DASHBOARD_SESSION_S": "600", "DASHBOARD_PORT": "8099"}
    )
    config = DashboardConfig.from_settings(settings)
    assert (config.password, config.session_s) == (PASSWORD, 600)
    assert settings.dashboard_port == 8099
    assert PASSWORD not in repr(settings) and PASSWORD not in str(settings.masked())


def test_sessions_expire() -> None:
    config = DashboardConfig(settings=Settings(), password=PASSWORD, session_s=600)
    cookie = new_session(config, now_s=1000)
    assert session_valid(config, cookie, now_s=1599)
    assert not session_valid(config, cookie, now_s=1600)
    forged = "99999999999." + cookie.split(".", 1)[1]
    assert not session_valid(config, forged, now_s=1000)
    other = DashboardConfig(settings=Settings(), password=PASSWORD, session_s=600)
    assert not session_valid(other, cookie, now_s=1000)  # another process's secret


def test_admin_pages_without_a_password_say_how_to_set_one(client: TestClient) -> None:
    r = client.get("/query", headers=HTML)
    assert r.status_code == 403
    assert "set DASHBOARD_PASSWORD" in r.text


def test_the_query_page_needs_a_login(make_client: ClientFactory) -> None:
    client = make_client(password=PASSWORD)
    r = client.get("/query", headers=HTML, follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (303, "/login?next=/query")
    assert login(client, "wrong password!") == 401
    assert login(client) == 303
    assert client.get("/query", headers=HTML).status_code == 200


def test_login_needs_its_csrf_token(make_client: ClientFactory) -> None:
    client = make_client(password=PASSWORD)
    r = client.post("/login", data={"password": PASSWORD}, follow_redirects=False)
    assert r.status_code == 403
    assert "dash_session" not in r.cookies


def test_login_never_redirects_to_another_site(make_client: ClientFactory) -> None:
    client = make_client(password=PASSWORD)
    token = csrf_of(client, "/login")
    for target in ("https://evil.example/", "//evil.example/", "javascript:alert(1)"):
        r = client.post(
            "/login",
            data={"csrf": token, "password": PASSWORD, "next": target},
            follow_redirects=False,
        )
        assert r.headers["location"] == "/"


def test_query_edit_invalid_then_valid(make_client: ClientFactory, settings: Settings) -> None:
    client = make_client(password=PASSWORD)
    assert login(client) == 303
    path = settings.deal_query_path
    before = path.read_text(encoding="utf-8")
    token = csrf_of(client, "/query")

    r = client.post("/query", data={"csrf": token, "query": "{not json"}, headers=HTML)
    assert r.status_code == 422
    assert "is not valid JSON" in r.text
    assert path.read_text(encoding="utf-8") == before

    bad = {"domainId": 1, "priceTypes": [2], "dateRange": "1"}
    r = client.post("/query", data={"csrf": token, "query": json.dumps(bad)}, headers=HTML)
    assert r.status_code == 422
    # The service's own validator's message, naming the field.
    assert "dateRange: must be a JSON number" in r.text
    assert path.read_text(encoding="utf-8") == before

    good = {"domainId": 1, "priceTypes": [2], "dateRange": 2, "page": 0}
    r = client.post(
        "/query", data={"csrf": token, "query": json.dumps(good)}, follow_redirects=False
    )
    assert (r.status_code, r.headers["location"]) == (303, "/query?saved=true")
    assert json.loads(path.read_text(encoding="utf-8")) == good
    assert "The next run uses it" in client.get("/query?saved=true", headers=HTML).text
    assert sorted(p.name for p in path.parent.iterdir() if p.name.startswith(".deal")) == []


def test_query_edit_needs_csrf_and_a_session(
    make_client: ClientFactory, settings: Settings
) -> None:
    client = make_client(password=PASSWORD)
    before = settings.deal_query_path.read_text(encoding="utf-8")
    r = client.post("/query", data={"query": "{}"}, follow_redirects=False)
    assert r.status_code == 303  # to the login page
    assert login(client) == 303
    r = client.post("/query", data={"query": '{"domainId": 1, "priceTypes": [2]}'})
    assert r.status_code == 403
    assert settings.deal_query_path.read_text(encoding="utf-8") == before


def test_the_packaged_query_is_never_edited(make_client: ClientFactory) -> None:
    from keepa_deals.config import DEFAULT_DEAL_QUERY

    client = make_client(
        password=PASSWORD, settings_changes={"deal_query_path": DEFAULT_DEAL_QUERY}
    )
    before = DEFAULT_DEAL_QUERY.read_text(encoding="utf-8")
    assert login(client) == 303
    token = csrf_of(client, "/query")
    r = client.post("/query", data={"csrf": token, "query": '{"domainId": 1, "priceTypes": [2]}'})
    assert r.status_code == 409
    assert "DEAL_QUERY_PATH" in r.text
    assert DEFAULT_DEAL_QUERY.read_text(encoding="utf-8") == before


def test_atomic_write_keeps_the_old_file_when_writing_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "q.json"
    target.write_text("old", encoding="utf-8")

    def broken_replace(src: str, dst: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("keepa_deals.dashboard.admin.os.replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        write_atomically(target, "new")
    assert target.read_text(encoding="utf-8") == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["q.json"]


def test_login_everywhere_guards_every_page_but_healthz(make_client: ClientFactory) -> None:
    client = make_client(password=PASSWORD, login_everywhere=True)
    r = client.get("/", headers=HTML, follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (303, "/login?next=%2F")
    assert client.get("/api/deals").status_code == 401
    assert client.get("/metrics").status_code == 401
    assert client.get("/healthz").status_code == 200
    basic = base64.b64encode(f"prometheus:{PASSWORD}".encode()).decode()
    assert client.get("/metrics", headers={"authorization": f"Basic {basic}"}).status_code == 200
    wrong = base64.b64encode(b"prometheus:nope").decode()
    assert client.get("/api/deals", headers={"authorization": f"Basic {wrong}"}).status_code == 401
    assert login(client) == 303
    assert client.get("/", headers=HTML).status_code == 200


def test_pages_say_simulated_for_the_demos_simulator_too() -> None:
    demo = Settings(
        keepa_api_key="keepadealsSIMULATORdemokey0000", keepa_api_url="http://127.0.0.1:5000"
    )
    assert DashboardConfig(settings=demo).simulated
    assert DashboardConfig(settings=Settings()).simulated  # no key
    real = Settings(keepa_api_key="k" * 32)
    assert not DashboardConfig(settings=real).simulated


def test_run_starts_the_dashboard_and_stops_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from keepa_deals.cli import dashboard as cli

    started: list[list[str]] = []
    children: list[FakeChild] = []

    class FakeChild:
        def __init__(self, argv: list[str], env: dict[str, str], start_new_session: bool) -> None:
            started.append(argv)
            children.append(self)
            self.env, self.session, self.terminated = env, start_new_session, False

        def poll(self) -> int | None:
            return 0 if self.terminated else None

        def terminate(self) -> None:
            self.terminated = True

        def wait(self, timeout: float | None = None) -> int:
            return 0

    monkeypatch.setattr("keepa_deals.cli.dashboard.subprocess.Popen", FakeChild)
    cleanups: list[Callable[[], None]] = []
    env = {"DASHBOARD_PORT": "8099", "DEALS_DB_PATH": "var/demo.db"}
    cli.start_with_run(env, cleanups)
    assert started[0][-4:] == ["keepa_deals", "dashboard", "--port", "8099"]
    assert len(cleanups) == 1
    assert children[0].session and children[0].env is env  # the demo's settings
    cleanups[0]()
    assert children[0].terminated


def test_the_dashboard_unit_has_the_workers_hardening() -> None:
    """deploy/systemd: the same user, environment file and sandboxing as the worker,
    bound to loopback, and deploy_update.sh installs it."""
    units = Path(__file__).resolve().parents[2] / "deploy" / "systemd"

    def settings_of(name: str) -> dict[str, str]:
        out = {}
        for line in (units / name).read_text(encoding="utf-8").splitlines():
            if "=" in line and not line.startswith("#"):
                key, _, value = line.partition("=")
                out[key] = value
        return out

    worker, dashboard = (
        settings_of(f"keepa-deals-{name}.service") for name in ("worker", "dashboard")
    )
    for key in (
        "User",
        "Group",
        "WorkingDirectory",
        "EnvironmentFile",
        "NoNewPrivileges",
        "ProtectSystem",
        "PrivateTmp",
        "Restart",
        "CPUSchedulingPolicy",
        "IOSchedulingClass",
    ):
        assert dashboard[key] == worker[key], key
    assert int(dashboard["Nice"]) >= int(worker["Nice"])
    assert "--host 127.0.0.1" in dashboard["ExecStart"]
    deploy = (units.parent.parent / "deploy_update.sh").read_text(encoding="utf-8")
    assert "keepa-deals-dashboard.service" in deploy
