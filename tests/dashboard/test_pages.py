"""The HTML pages: what they show, escaping of Keepa's strings, the CSP, My costs and
the CSV export."""

from __future__ import annotations

import csv
import io
import re
from html.parser import HTMLParser

import pytest
from fastapi.testclient import TestClient

from keepa_deals.dashboard.app import CSP
from keepa_deals.dashboard.state import TEMPLATES
from keepa_deals.store import open_store, transaction, upsert_deal
from tests.dashboard.conftest import ASIN, NOW_S, ClientFactory, rows

HTML = {"accept": "text/html"}
PAGES = ("/", f"/deal/1/{ASIN['A']}", "/costs", "/rejections", "/health", "/login")


class Tags(HTMLParser):
    """Every start tag with its attributes, and the text inside <script> elements."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.script_text = ""
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.script_text += data


def parse(html: str) -> Tags:
    tags = Tags()
    tags.feed(html)
    return tags


def page(client: TestClient, url: str) -> str:
    r = client.get(url, headers=HTML)
    assert r.status_code == 200, r.text
    return r.text


def test_deals_page_shows_the_view_in_order(client: TestClient) -> None:
    html = page(client, "/?sort=sales_rank&order=asc")
    found = re.findall(r'<tr data-asin="(B0000000\w+)"', html)
    assert found == [ASIN[k] for k in "CAEBD"]
    assert f'href="https://www.amazon.com/dp/{ASIN["A"]}"' in html
    assert f'href="https://keepa.com/#!product/1-{ASIN["A"]}"' in html


def test_sort_headers_flip_the_order_and_keep_the_filters(client: TestClient) -> None:
    html = page(client, "/?category=Textbooks&sort=profit_cents&order=desc")
    links = {a.get("data-column"): a.get("href") for t, a in parse(html).tags if t == "a"}
    assert links["profit_cents"] == "/?category=Textbooks&sort=profit_cents&order=asc"
    assert links["sales_rank"] == "/?category=Textbooks&sort=sales_rank&order=desc"


def test_pages_follow_the_cursor(client: TestClient) -> None:
    html = page(client, "/?size=25")
    assert 'id="next-page"' not in html  # five deals fit
    # The page takes the API's cursor: after E and C (fees ascending) come A, B, D.
    cursor = client.get("/api/deals?sort=fees_cents&order=asc&limit=2").json()["next"]
    assert cursor is not None
    raw = cursor.split("cursor=")[1]
    html = page(client, f"/?sort=fees_cents&order=asc&size=25&cursor={raw}")
    assert re.findall(r'<tr data-asin="(B0000000\w+)"', html) == [ASIN[k] for k in "ABD"]
    first = next(a for t, a in parse(html).tags if a.get("id") == "first-page")
    assert first["href"] == "/?sort=fees_cents&order=asc&size=25"


def test_the_new_deals_notice_polls_the_count_for_these_filters(client: TestClient) -> None:
    html = page(client, "/?category=Textbooks&sort=roi_percent")
    notice = next(a for t, a in parse(html).tags if a.get("id") == "new-deals")
    # The newest first_seen_s on the dashboard is A's: NOW_S - 600.
    assert notice["data-count-url"] == f"/api/deals/new?category=Textbooks&since_s={NOW_S - 600}"
    assert client.get(str(notice["data-count-url"])).json()["count"] == 0


def test_a_bad_filter_is_an_html_422_naming_it(client: TestClient) -> None:
    r = client.get("/?max_sales_rank=lots", headers=HTML)
    assert r.status_code == 422
    assert "max_sales_rank" in r.text
    assert r.headers["content-type"].startswith("text/html")


def test_deal_detail_shows_the_breakdown_and_earlier_verdicts(client: TestClient) -> None:
    html = page(client, f"/deal/1/{ASIN['A']}")
    assert '<td class="num" id="profit">18.70</td>' in html
    assert "drop_too_small" in html
    missing = client.get(f"/deal/1/{ASIN['F']}", headers=HTML)
    assert missing.status_code == 404
    assert f"no accepted deal {ASIN['F']} on domain 1" in missing.text
    assert missing.headers["content-type"].startswith("text/html")


@pytest.mark.parametrize("url", PAGES)
def test_every_page_has_the_csp_and_no_inline_script_or_handler(
    client: TestClient, url: str
) -> None:
    r = client.get(url, headers=HTML)
    assert r.headers["content-security-policy"] == CSP
    assert "'unsafe-inline'" not in CSP
    tags = parse(r.text)
    assert tags.script_text.strip() == ""
    for tag, attrs in tags.tags:
        if tag == "script":
            assert str(attrs.get("src", "")).startswith("/static/"), attrs
        assert not [a for a in attrs if a.startswith("on")], (tag, attrs)
        assert "style" not in attrs, (tag, attrs)


def test_templates_hold_no_inline_script_handler_or_style() -> None:
    for template in TEMPLATES.glob("*.html"):
        text = template.read_text(encoding="utf-8")
        assert re.search(r"<script(?![^>]*\bsrc=)", text) is None, template.name
        assert re.search(r"\son\w+=", text) is None, template.name
        assert " style=" not in text, template.name
        assert "|safe" not in text.replace(" ", ""), template.name


def test_pages_are_marked_simulated_without_a_key(make_client: ClientFactory) -> None:
    simulated = make_client()
    real = make_client(settings_changes={"keepa_api_key": "a" * 32})
    for url in PAGES:
        assert 'id="simulated"' in page(simulated, url), url
        assert 'id="simulated"' not in page(real, url), url


HOSTILE = {
    "A": "<script>window.pwned=1</script>Calculus",
    "B": '" onmouseover="window.pwned=1" x="',
    "C": "' onfocus='window.pwned=1' autofocus x='",
}


@pytest.fixture
def hostile_client(make_client: ClientFactory, db_path: object) -> TestClient:
    from dataclasses import replace
    from pathlib import Path

    assert isinstance(db_path, Path)
    conn = open_store(db_path)
    try:
        with transaction(conn):
            for row in rows():
                key = next(k for k, v in ASIN.items() if v == row.asin)
                if key in HOSTILE:
                    upsert_deal(
                        conn,
                        replace(
                            row, title=HOSTILE[key], category=HOSTILE[key], last_evaluated_s=NOW_S
                        ),
                    )
    finally:
        conn.close()
    return make_client()


@pytest.mark.parametrize(
    "url", ["/", f"/deal/1/{ASIN['A']}", f"/deal/1/{ASIN['B']}", "/?category=x"]
)
def test_hostile_titles_are_escaped(hostile_client: TestClient, url: str) -> None:
    r = hostile_client.get(url, headers=HTML)
    html = r.text
    assert "<script>window.pwned" not in html
    assert 'onmouseover="window.pwned' not in html
    tags = parse(html)
    assert tags.script_text.strip() == ""
    for tag, attrs in tags.tags:
        assert not [a for a in attrs if a.startswith("on") or a == "autofocus"], (tag, attrs)
    if url == "/":
        assert "&lt;script&gt;window.pwned=1&lt;/script&gt;Calculus" in html
        assert "&#34; onmouseover=&#34;window.pwned=1&#34;" in html


def test_csv_export_streams_the_filtered_view(client: TestClient) -> None:
    r = client.get("/export.csv?category=Textbooks&sort=profit_cents&order=asc")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    found = list(csv.DictReader(io.StringIO(r.text)))
    assert [(d["asin"], d["profit_cents"], d["roi_percent"]) for d in found] == [
        (ASIN["A"], "1870", "187.0"),
        (ASIN["B"], "2070", "82.8"),
    ]


def test_csv_export_defuses_spreadsheet_formulas(hostile_client: TestClient) -> None:
    """A title starting with = + - @ would run as a formula when the CSV is opened."""
    from keepa_deals.dashboard.pages import _csv_safe

    assert _csv_safe({"title": "=HYPERLINK(1)", "category": "@x"}) == {
        "title": "'=HYPERLINK(1)",
        "category": "'@x",
    }
    assert _csv_safe({"title": "Plain", "category": None}) == {"title": "Plain", "category": None}


def test_csv_export_pages_through_more_rows_than_one_chunk(client: TestClient) -> None:
    """The export reads in keyset chunks; chunk 2 here proves the chunks join up."""
    from keepa_deals.dashboard.costs import MyCosts
    from keepa_deals.dashboard.deals import DealFilters, Sort, iter_deals
    from keepa_deals.store import connect_readonly

    app_settings = client.app.state.dash.settings  # type: ignore[attr-defined]
    conn = connect_readonly(app_settings.deals_db_path)
    try:
        got = [
            d["asin"]
            for d in iter_deals(conn, DealFilters(), Sort(), MyCosts(), now_s=NOW_S, chunk=2)
        ]
        capped = list(
            iter_deals(conn, DealFilters(), Sort(), MyCosts(), now_s=NOW_S, chunk=2, max_rows=3)
        )
    finally:
        conn.close()
    assert got == [ASIN[k] for k in "DBACE"]
    assert len(capped) == 3


def test_my_costs_form_needs_its_csrf_token(client: TestClient) -> None:
    r = client.post("/costs", data={"prep_fee_cents": "100"}, follow_redirects=False)
    assert r.status_code == 403
    assert "my_costs" not in r.cookies


def test_my_costs_saved_change_profit_everywhere(client: TestClient) -> None:
    form = page(client, "/costs")
    token = re.search(r'name="csrf" value="([^"]+)"', form)
    assert token is not None
    r = client.post(
        "/costs",
        data={
            "csrf": token.group(1),
            "prep_fee_cents": "100",
            "inbound_shipping_cents": "50",
            "sales_tax_bps": "1000",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303
    html = page(client, f"/deal/1/{ASIN['A']}")
    assert '<td class="num" id="profit">16.20</td>' in html
    assert '<td class="num" id="roi">129.60 %</td>' in html
    assert (
        client.get("/api/deals", params={"q": "Calculus"}).json()["deals"][0]["profit_cents"]
        == 1620
    )


def test_my_costs_refuses_out_of_range_values(client: TestClient) -> None:
    form = page(client, "/costs")
    token = re.search(r'name="csrf" value="([^"]+)"', form)
    assert token is not None
    r = client.post(
        "/costs", data={"csrf": token.group(1), "sales_tax_bps": "99999"}, follow_redirects=False
    )
    assert r.status_code == 422
    assert "sales_tax_bps" in r.text


def test_rejections_page(client: TestClient) -> None:
    html = page(client, "/rejections")
    day = html[html.index('id="rejections-24h"') : html.index('id="rejections-7d"')]
    assert "rank_above_max" in day and "profit_too_low" in day
    assert "drop_too_small" not in day  # two days old
    assert "drop_too_small" in html[html.index('id="rejections-7d"') :]
