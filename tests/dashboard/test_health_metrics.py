"""/healthz, the Health page's banner, and /metrics parsed with prometheus-client."""

from __future__ import annotations

import html
import threading
import time
from collections.abc import Callable

import redis
from prometheus_client.parser import text_string_to_metric_families

from keepa_deals.config import Settings
from keepa_deals.dashboard.db import reading
from keepa_deals.dashboard.deals import categories
from keepa_deals.dashboard.state import DoctorCache, Refreshed
from keepa_deals.infra.checks import Check
from keepa_deals.tokens import TokenManager
from tests.dashboard.conftest import NOW_S, ClientFactory, ok_checks

HTML = {"accept": "text/html"}


def failing_checks() -> list[Callable[[Settings], Check]]:
    return [
        lambda s: Check("redis", "ok", "fine"),
        lambda s: Check(
            "progress", "fail", "nothing evaluated for 1.2h although runs stopped for other reasons"
        ),
        lambda s: Check("workers", "fail", "no Celery worker answered a ping within 2 s"),
    ]


def test_healthz_is_200_when_doctor_passes(make_client: ClientFactory) -> None:
    r = make_client(checks=ok_checks()).get("/healthz")
    assert r.status_code == 200
    assert r.json()["ok"] is True
    assert r.json()["failing"] == []


def test_healthz_is_503_with_the_failing_checks(make_client: ClientFactory) -> None:
    r = make_client(checks=failing_checks()).get("/healthz")
    assert r.status_code == 503
    assert [c["name"] for c in r.json()["failing"]] == ["progress", "workers"]


def test_health_page_has_a_red_banner_naming_the_cause(make_client: ClientFactory) -> None:
    html = make_client(checks=failing_checks()).get("/health", headers=HTML).text
    banner = html[
        html.index('id="doctor-banner"') : html.index("</div>", html.index('id="doctor-banner"'))
    ]
    assert "<b>progress</b>: nothing evaluated for 1.2h" in banner
    assert "<b>workers</b>: no Celery worker answered" in banner
    assert "redis" not in banner
    healthy = make_client(checks=ok_checks()).get("/health", headers=HTML).text
    assert 'id="doctor-banner"' not in healthy and 'id="doctor-ok"' in healthy


def test_health_page_shows_runs_and_their_stop_reasons(make_client: ClientFactory) -> None:
    html = make_client().get("/health", headers=HTML).text
    runs = html[html.index('id="runs"') :]
    assert "http_429" in runs and "done" in runs
    assert 'id="chart-class"' in html and 'id="chart-429"' in html


def test_doctor_runs_once_per_interval_for_all_requests() -> None:
    calls: list[int] = []

    def check(s: Settings) -> Check:
        calls.append(1)
        return Check("x", "ok", "")

    cache = DoctorCache(Settings(), every_s=3600, checks=[check])
    for _ in range(5):
        assert [c.name for c in cache.get()[0]] == ["x"]
    assert len(calls) == 1


def test_a_stale_value_is_served_while_the_background_refreshes_it() -> None:
    """Refreshed: the first get computes in place; later ones never wait for a
    computation, they get the last value and start one refresh."""
    release = threading.Event()
    computed: list[int] = []

    def compute() -> int:
        if computed:  # every refresh after the first waits for the test
            assert release.wait(60)
        computed.append(len(computed) + 1)
        return len(computed)

    value = Refreshed(every_s=0, compute=compute)
    assert value.get()[0] == 1
    assert value.get()[0] == 1  # stale: served at once, a refresh started
    assert value.get()[0] == 1  # one refresh at a time: no second thread
    release.set()
    deadline = time.monotonic() + 60
    while value.get()[0] < 2:  # wait for the refresh to land (a condition, bounded)
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert computed[:2] == [1, 2]


def metrics(client_text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(client_text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_metrics_report_the_database_and_the_token_state(
    make_client: ClientFactory, settings: Settings
) -> None:
    client = redis.Redis.from_url(settings.redis_url)
    try:
        TokenManager.from_settings(settings, redis=client).observe(
            {
                "tokensLeft": 250,
                "refillIn": 30_000,
                "refillRate": 5,
                "tokensConsumed": 0,
                "timestamp": round(time.time() * 1000),
            }
        )
        status = TokenManager.from_settings(settings, redis=client).status().as_dict()
    finally:
        client.close()
    r = make_client().get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    m = metrics(r.text)
    p = "keepa_deals_"
    assert m[(p + "redis_up", ())] == 1.0
    assert m[(p + "database_up", ())] == 1.0
    assert m[(p + "tokens_keepa_balance", ())] == 250.0
    assert m[(p + "tokens_capacity", ())] == float(status["capacity"])
    assert m[(p + "tokens_rate_per_min", ())] == 5.0
    assert m[(p + "recharge_active", ())] == 0.0
    assert m[(p + "deals", (("status", "accepted"),))] == 6.0
    assert m[(p + "deals", (("status", "rejected"),))] == 1.0
    assert m[(p + "rejections", (("stage", "free"),))] == 2.0
    assert m[(p + "runs_total", (("stop_reason", "http_429"), ("task", "backfill")))] == 1.0
    assert m[(p + "tokens_spent_total", (("stage", "commit"), ("task", "upsert")))] == 30.0
    assert m[(p + "http_429_stops_total", ())] == 1.0
    assert m[(p + "pending", ())] == 0.0
    assert m[(p + "lock_held", (("task", "upsert"),))] == 0.0
    for cls in status["classes"]:
        assert (p + "tokens_granted_total", (("cls", cls),)) in m


def test_metrics_without_redis_still_report_the_database(make_client: ClientFactory) -> None:
    r = make_client(settings_changes={"redis_url": "redis://127.0.0.1:1/0"}).get("/metrics")
    m = metrics(r.text)
    assert m[("keepa_deals_redis_up", ())] == 0.0
    assert m[("keepa_deals_deals", (("status", "accepted"),))] == 6.0
    assert NOW_S  # the database's clock is the test's


def test_start_up_computes_the_snapshots_before_the_first_visitor(
    make_client: ClientFactory,
) -> None:
    client = make_client()
    dash = client.app.state.dash  # type: ignore[attr-defined]
    assert dash.snapshots == {}
    with client:  # runs the app's lifespan, as uvicorn does
        deadline = time.monotonic() + 60
        while not all(name in dash.snapshots for name in ("health", "metrics")):
            assert time.monotonic() < deadline, dash.snapshots
            time.sleep(0.01)
        (status, series), _ = dash.snapshots["health"].get()
        assert status["database"]["state"] == "ok"
        assert series is not None
        families, _ = dash.snapshots["metrics"].get()
        assert "keepa_deals_deals" in {f.name for f in families}


def test_start_up_reads_the_category_list_so_no_deals_page_visitor_waits_for_it(
    make_client: ClientFactory,
) -> None:
    """The category filter's choices scan every accepted deal (1.3 s at 400 000): read
    at start-up and refreshed in the background, never in a visitor's request."""
    client = make_client()
    dash = client.app.state.dash  # type: ignore[attr-defined]
    with client:
        deadline = time.monotonic() + 60
        while "categories" not in dash.snapshots:
            assert time.monotonic() < deadline, dash.snapshots
            time.sleep(0.01)
        cats, _ = dash.snapshots["categories"].get()
        with reading(dash.settings) as conn:
            assert cats == categories(conn) and cats  # the fixture's accepted deals have some
        # The page shows what start-up read.
        page = client.get("/")
        assert all(f">{html.escape(name)}</option>" in page.text for name in cats)
