"""The JSON API on a database with known rows: every filter and sort, exact rows."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from keepa_deals.dashboard.deals import DASHBOARD_WHERE, SORT_COLUMNS
from tests.dashboard.conftest import ASIN, NOW_S, ClientFactory

# Every sortable column, descending; ascending is the reverse (no ties in the data).
DESC = {
    "profit_cents": "DBACE",
    "roi_percent": "CABDE",
    "buy_price_cents": "DBAEC",
    "sell_price_cents": "DBACE",
    "fees_cents": "DBACE",
    "avg90_price_cents": "DBAEC",  # C's is NULL: last descending
    "sales_rank": "DBEAC",
    "rank_drops_90": "ABEDC",  # C's is NULL
    "percent_drop": "DAEBC",  # C's is NULL
    "first_seen_s": "AEBCD",
    "last_seen_s": "DAEBC",
    "last_evaluated_s": "BAEDC",  # C never evaluated
}


def keys(body: dict[str, Any]) -> str:
    by_asin = {v: k for k, v in ASIN.items()}
    return "".join(by_asin[d["asin"]] for d in body["deals"])


def get(client: TestClient, url: str, **params: Any) -> dict[str, Any]:
    # params={} would replace the query string already in `url`.
    r = client.get(url, params=params) if params else client.get(url)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def test_every_sortable_column_is_covered() -> None:
    assert set(DESC) == set(SORT_COLUMNS)


@pytest.mark.parametrize("column", sorted(DESC))
def test_sort_both_ways(client: TestClient, column: str) -> None:
    assert keys(get(client, "/api/deals", sort=column, order="desc")) == DESC[column]
    assert keys(get(client, "/api/deals", sort=column, order="asc")) == DESC[column][::-1]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, "DBACE"),
        ({"q": "chem"}, "B"),
        ({"q": "CHEM"}, "B"),
        ({"q": "100%"}, "E"),  # % is literal, not a wildcard
        ({"q": "0%"}, "E"),
        ({"q": "%"}, "E"),
        ({"q": "_"}, "E"),  # _ is literal too
        ({"q": ASIN["C"].lower()}, "C"),  # an ASIN, any case
        ({"category": "Textbooks"}, "BA"),
        ({"category": "Literature & Fiction"}, "CE"),
        ({"min_profit_cents": 1870}, "DBA"),
        ({"min_roi_percent": 82.8}, "BAC"),
        ({"max_sales_rank": 45_000}, "ACE"),
        ({"min_rank_drops_90": 5}, "BAE"),  # C (NULL) is hidden only when the filter is set
        ({"min_percent_drop": 30}, "DAE"),
        ({"min_buy_cents": 800, "max_buy_cents": 2500}, "BAE"),
        ({"seen_within": "1h"}, "AE"),
        ({"seen_within": "24h"}, "BAE"),
        ({"seen_within": "7d"}, "BACE"),
        ({"seen_within": "any"}, "DBACE"),
        ({"domain": 3}, "E"),
        ({"domain": 1, "category": "Textbooks", "min_profit_cents": 2000}, "B"),
        ({"q": "nothing like this"}, ""),
    ],
)
def test_filters(client: TestClient, params: dict[str, Any], expected: str) -> None:
    assert keys(get(client, "/api/deals", **params)) == expected


def test_an_empty_parameter_means_any(client: TestClient) -> None:
    assert keys(get(client, "/api/deals?min_profit_cents=&q=&domain=")) == "DBACE"


def test_keyset_pages_follow_next_to_the_end(client: TestClient) -> None:
    seen = ""
    url: str | None = "/api/deals?sort=roi_percent&order=asc&limit=2"
    pages = 0
    while url is not None:
        body = get(client, url)
        seen += keys(body)
        url = body["next"]
        pages += 1
    assert seen == DESC["roi_percent"][::-1]
    assert pages == 3


def test_next_is_null_when_the_page_is_the_last(client: TestClient) -> None:
    assert get(client, "/api/deals", limit=5)["next"] is None
    assert get(client, "/api/deals", limit=4)["next"] is not None


def test_a_deal_has_every_field(client: TestClient) -> None:
    a = get(client, "/api/deals", q="Calculus")["deals"][0]
    assert a == {
        "asin": ASIN["A"],
        "domain": 1,
        "title": "Calculus: Early Transcendentals",
        "category": "Textbooks",
        "root_category_id": 283155,
        "buy_price_cents": 1000,
        "sell_price_cents": 4000,
        "avg90_price_cents": 5000,
        "referral_fee_cents": 600,
        "closing_fee_cents": 180,
        "fba_fee_cents": 350,
        "fees_cents": 1130,
        "cost_cents": 1000,
        "profit_cents": 1870,
        "roi_percent": 187.0,
        "stored_profit_cents": 1870,
        "stored_roi_percent": 187.0,
        "sales_rank": 5000,
        "rank_drops_90": 30,
        "percent_drop": 40,
        "keepa_last_update_s": NOW_S - 720,
        "keepa_last_update": "2027-01-15T07:48:00+00:00",
        "first_seen_s": NOW_S - 600,
        "first_seen": "2027-01-15T07:50:00+00:00",
        "last_seen_s": NOW_S - 540,
        "last_seen": "2027-01-15T07:51:00+00:00",
        "last_evaluated_s": NOW_S - 100,
        "last_evaluated": "2027-01-15T07:58:20+00:00",
        "verdict_age_s": 100,
        "source": "upsert",
        "amazon_url": f"https://www.amazon.com/dp/{ASIN['A']}",
        "keepa_url": f"https://keepa.com/#!product/1-{ASIN['A']}",
    }
    e = get(client, "/api/deals", domain=3)["deals"][0]
    assert e["amazon_url"] == f"https://www.amazon.de/dp/{ASIN['E']}"


def test_my_costs_recompute_profit_and_roi(client: TestClient) -> None:
    costs = {"prep_fee_cents": 100, "inbound_shipping_cents": 50, "sales_tax_bps": 1000}
    body = get(client, "/api/deals", q="Calculus", **costs)
    a = body["deals"][0]
    # cost 1000 + 100 tax + 100 prep + 50 inbound; profit 4000 - 1130 - 1250
    assert (a["cost_cents"], a["profit_cents"], a["roi_percent"]) == (1250, 1620, 129.6)
    assert (a["stored_profit_cents"], a["stored_roi_percent"]) == (1870, 187.0)
    # E: cost 800 + 80 + 150 = 1030, profit 2000 - 830 - 1030 = 140: below a 200 floor.
    assert keys(get(client, "/api/deals", min_profit_cents=200, **costs)) == "DBAC"
    assert keys(get(client, "/api/deals", min_profit_cents=140, **costs)) == "DBACE"


def test_negative_roi_rounds_down_in_sql_as_in_python(client: TestClient) -> None:
    """E with a 10.01 $ prep fee: profit -631 on a cost of 1801, ROI -35.0361... -> -35.04
    (the stored convention: rounded down). The filter computed in SQL must agree."""
    costs = {"prep_fee_cents": 1001}
    e = get(client, "/api/deals", domain=3, **costs)["deals"][0]
    assert (e["profit_cents"], e["roi_percent"]) == (-631, -35.04)
    assert keys(get(client, "/api/deals", domain=3, min_roi_percent=-35.04, **costs)) == "E"
    assert keys(get(client, "/api/deals", domain=3, min_roi_percent=-35.03, **costs)) == ""


def test_saved_costs_come_from_the_cookie_and_set_default_floors(client: TestClient) -> None:
    client.cookies.set("my_costs", "prep_fee_cents=100&min_profit_cents=1900")
    body = get(client, "/api/deals")
    # profit - 100 each: D 3020, B 1970, A 1770 ... floor 1900
    assert keys(body) == "DB"
    assert [d["profit_cents"] for d in body["deals"]] == [3020, 1970]
    assert keys(get(client, "/api/deals", min_profit_cents=271)) == "DBAC"  # explicit wins


def test_new_deals_count(client: TestClient) -> None:
    assert get(client, "/api/deals/new", since_s=NOW_S - 1000) == {
        "count": 1,
        "since_s": NOW_S - 1000,
    }
    assert get(client, "/api/deals/new", since_s=NOW_S - 7201)["count"] == 3
    assert get(client, "/api/deals/new", since_s=NOW_S - 7201, domain=3)["count"] == 1


def test_one_deal_with_its_earlier_verdicts(client: TestClient) -> None:
    body = get(client, f"/api/deals/1/{ASIN['A']}")
    assert body["status"] == "accepted"
    assert body["profit_cents"] == 1870
    assert [(r["stage"], r["reason"], r["price_cents"]) for r in body["rejections"]] == [
        ("peek", "drop_too_small", 1500)
    ]


@pytest.mark.parametrize("key", ["F", "G", "H"])
def test_rows_not_on_the_dashboard_are_404(client: TestClient, key: str) -> None:
    assert client.get(f"/api/deals/1/{ASIN[key]}").status_code == 404
    assert ASIN[key] not in client.get("/api/deals", params={"limit": 500}).text


@pytest.mark.parametrize(
    ("url", "parameter"),
    [
        ("/api/deals?min_profit_cents=abc", "min_profit_cents"),
        ("/api/deals?min_roi_percent=nan", "min_roi_percent"),
        ("/api/deals?sort=title", "sort"),
        ("/api/deals?order=sideways", "order"),
        ("/api/deals?seen_within=2h", "seen_within"),
        ("/api/deals?limit=501", "limit"),
        ("/api/deals?limit=0", "limit"),
        ("/api/deals?cursor=nonsense", "cursor"),
        ("/api/deals?domain=13", "domain"),
        ("/api/deals?prep_fee_cents=-1", "prep_fee_cents"),
        ("/api/deals/1/short", "asin"),
        ("/api/deals/0/B00000000A", "domain"),
        ("/api/deals/new", "since_s"),
        ("/api/rejections/summary?hours=0", "hours"),
        ("/api/runs?task=reaper", "task"),
        ("/api/runs?limit=501", "limit"),
    ],
)
def test_bad_parameters_are_422_naming_them(client: TestClient, url: str, parameter: str) -> None:
    r = client.get(url)
    assert r.status_code == 422, r.text
    assert parameter in [e["loc"][-1] for e in r.json()["detail"]]


def test_rejections_summary(client: TestClient) -> None:
    body = get(client, "/api/rejections/summary", hours=24)
    assert body["reasons"] == [
        {"stage": "free", "reason": "rank_above_max", "deals": 2, "times": 2, "tokens": 0},
        {"stage": "commit", "reason": "profit_too_low", "deals": 1, "times": 1, "tokens": 11},
    ]
    assert (body["total_deals"], body["total_tokens"], body["since_s"]) == (3, 11, NOW_S - 86_400)
    week = get(client, "/api/rejections/summary", hours=168)
    assert (week["total_deals"], week["total_tokens"]) == (4, 12)


def test_runs(client: TestClient) -> None:
    body = get(client, "/api/runs")
    assert [(r["task"], r["stop_reason"], r["tokens_total"]) for r in body["runs"]] == [
        ("backfill", "http_429", 7),
        ("upsert", "done", 60),
    ]
    upsert = get(client, "/api/runs", task="upsert", limit=1)["runs"]
    assert [(r["task"], r["deals_accepted"], r["started_s"]) for r in upsert] == [
        ("upsert", 2, NOW_S - 3 * 3600)
    ]


def test_status_is_what_status_json_prints_without_the_key(
    make_client: ClientFactory,
) -> None:
    key = "apikeythatmustneverleak0123456789"
    client = make_client(settings_changes={"keepa_api_key": key})
    r = client.get("/api/status")
    assert r.status_code == 200
    body = r.json()
    assert body["database"]["state"] == "ok"
    assert body["database"]["deals_by_status"] == {
        "accepted": 6,
        "candidate": 1,
        "rejected": 1,
    }
    assert set(body) == {"settings", "tokens", "locks", "database"}
    for url in ("/api/status", "/api/deals", "/", "/health", "/metrics", "/healthz"):
        assert key not in client.get(url).text, url


def test_missing_database_is_503_not_500(make_client: ClientFactory, tmp_path: Path) -> None:
    client = make_client(settings_changes={"deals_db_path": tmp_path / "none" / "deals.db"})
    r = client.get("/api/deals")
    assert r.status_code == 503
    assert "keepa-deals migrate" in r.json()["detail"]


def test_the_where_clause_is_the_views(db_path: Path) -> None:
    """The API reads `deals` under DASHBOARD_WHERE (for its rowid): the same rows as the
    `dashboard_deals` view, here with a rejected, a candidate and a zombie row."""
    conn = sqlite3.connect(db_path)
    try:
        view = conn.execute("SELECT asin, domain FROM dashboard_deals ORDER BY 1, 2").fetchall()
        ours = conn.execute(
            f"SELECT asin, domain FROM deals WHERE {DASHBOARD_WHERE} ORDER BY 1, 2"
        ).fetchall()
        sql = conn.execute(
            "SELECT sql FROM sqlite_schema WHERE name = 'dashboard_deals'"
        ).fetchone()[0]
    finally:
        conn.close()
    assert ours == view
    assert len(view) == 5
    normalised = " ".join(sql.split())
    for clause in DASHBOARD_WHERE.split(" AND "):
        assert clause.strip() in normalised


def test_openapi_documents_the_api(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    assert {
        "/api/deals",
        "/api/deals/new",
        "/api/deals/{domain}/{asin}",
        "/api/status",
        "/api/rejections/summary",
        "/api/runs",
        "/healthz",
    } <= set(doc["paths"])
    names = {p["name"] for p in doc["paths"]["/api/deals"]["get"]["parameters"]}
    assert {"q", "min_profit_cents", "sort", "order", "cursor", "limit", "seen_within"} <= names
