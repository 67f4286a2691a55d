"""The dashboard in a real browser (Debian's chromium through Playwright), on a
database the real harvest filled from the simulator.

One flow, as a user would take it: filter, sort, page, open a deal and see its chart,
change My costs and see profit change, see the "new deals" notice after the harvest
accepts more, edit the deal query (invalid, then valid), load Health and Rejections,
and check that a hostile title runs nothing. Every wait is for a condition
(Playwright's auto-waiting `expect`), with generous timeouts; a screenshot of each page
is saved (tests/dashboard/browser.py says where).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx2 as httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from keepa_deals.dashboard.app import create_app
from keepa_deals.dashboard.config import DashboardConfig
from keepa_deals.service.doctor import (
    check_database_readonly,
    check_locks,
    check_progress,
    check_tokens,
)
from keepa_deals.service.preflight import check_deal_query, check_redis
from keepa_deals.store import get_deal, transaction, upsert_deal
from tests.dashboard.browser import artifact, chromium_path, serving
from tests.dashboard.conftest import PASSWORD
from tests.support.harness import Harness, HarnessFactory

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
WAIT_MS = 30_000  # per expectation: a loaded machine is slow, a broken page never passes
# Enough accepted deals for two pages of 25 (48 with seed 11 today).
HARVEST = {
    "min_profit_cents": 1,
    "min_roi_percent": 1,
    "min_percent_drop": 10,
    "initial_tokens": 50_000,
    "refill_rate": 500,
    "deal_rate": 10.0,
    "catalogue_size": 8000,
    "query": {},  # a query file of its own: the admin page may edit it
}
README_SHOTS = os.environ.get("DASHBOARD_README_SHOTS") == "1"


@pytest.fixture
def harvested(make_harness: HarnessFactory) -> Harness:
    h = make_harness(**HARVEST)
    h.backfill()
    h.at(1800)
    h.upsert()
    return h


@pytest.fixture
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
        try:
            yield b
        finally:
            b.close()


def api(base: str, path: str, **params: Any) -> Any:
    r = httpx.get(base + path, params=params, timeout=60)
    r.raise_for_status()
    return r.json()


def table_asins(page: Page) -> list[str]:
    return [
        str(a)
        for a in page.locator("#deals tbody tr[data-asin]").evaluate_all(
            "rows => rows.map(r => r.dataset.asin)"
        )
    ]


def shot(page: Page, name: str, readme: str | None = None) -> None:
    page.screenshot(path=str(artifact(f"{name}.png")), full_page=True)
    if README_SHOTS and readme is not None:
        # The README's copy masks the checks' details: they name this run's temporary
        # files and ports.
        Path("docs/img").mkdir(parents=True, exist_ok=True)
        page.screenshot(
            path=f"docs/img/{readme}.png",
            full_page=readme == "health",
            mask=[page.locator("#checks td:nth-child(3)")],
        )


def test_a_user_session_in_a_real_browser(harvested: Harness, browser: Browser) -> None:
    h = harvested
    checks = [
        check_deal_query,
        check_redis,
        check_database_readonly,
        check_tokens,
        lambda s: check_locks(s, now_s=h.clock.now()),
        lambda s: check_progress(s, now_s=h.clock.now()),  # on the harvest's clock
    ]
    config = DashboardConfig(settings=h.settings, password=PASSWORD, doctor_every_s=0)
    app = create_app(config, clock=h.clock.now, doctor_checks=checks)
    errors: list[str] = []
    with serving(app) as base:
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.set_default_timeout(WAIT_MS)
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        everything = api(base, "/api/deals", limit=500)["deals"]
        assert len(everything) > 25, "the harvest accepted too few deals to page"

        # --- the deals page, filtered, sorted, paged -------------------------------------
        page.goto(base + "/")
        expect(page.locator("#simulated")).to_be_visible()
        expect(page.locator("#deals tbody tr[data-asin]")).to_have_count(min(50, len(everything)))
        shot(page, "deals", readme="deals")

        word = re.findall(r"[A-Za-z]{4,}", everything[0]["title"])[0]
        page.fill("input[name=q]", word)
        page.click("#apply")
        expect(page).to_have_url(re.compile(r"[?&]q=" + word))
        wanted = [d["asin"] for d in api(base, "/api/deals", q=word)["deals"]]
        expect(page.locator("#deals tbody tr[data-asin]")).to_have_count(len(wanted))
        assert table_asins(page) == wanted
        page.go_back()  # the URL holds the view: back restores it
        expect(page.locator("#deals tbody tr[data-asin]")).to_have_count(min(50, len(everything)))
        page.go_forward()
        expect(page.locator("#deals tbody tr[data-asin]")).to_have_count(len(wanted))

        page.goto(base + "/?size=25")
        page.click("a.sort[data-column=sales_rank]")
        expect(page).to_have_url(re.compile("sort=sales_rank"))
        first = api(base, "/api/deals", sort="sales_rank", order="desc", limit=25)
        expect(page.locator("#deals tbody tr[data-asin]")).to_have_count(25)
        assert table_asins(page) == [d["asin"] for d in first["deals"]]
        page.click("a.sort[data-column=sales_rank]")  # again: the other way
        expect(page).to_have_url(re.compile("order=asc"))
        asc = api(base, "/api/deals", sort="sales_rank", order="asc", limit=25)["deals"]
        expect(page.locator("#deals tbody tr[data-asin]").first).to_have_attribute(
            "data-asin", asc[0]["asin"]
        )
        page.click("#next-page")
        expect(page).to_have_url(re.compile("cursor="))
        cursor = parse_qs(urlsplit(page.url).query)["cursor"][0]
        second = api(base, "/api/deals", sort="sales_rank", order="asc", limit=25, cursor=cursor)[
            "deals"
        ]
        expect(page.locator("#deals tbody tr[data-asin]")).to_have_count(len(second))
        assert table_asins(page) == [d["asin"] for d in second]

        # --- a deal: its chart, then My costs changing its profit --------------------------
        page.goto(base + "/")
        page.locator("#deals tbody tr[data-asin] td.title a").first.click()
        expect(page.locator("#chart[data-drawn=true] canvas")).to_be_visible()
        shot(page, "deal")
        deal_url = page.url
        before = float(page.locator("#profit").inner_text())
        page.goto(base + "/costs")
        page.fill("input[name=prep_fee_cents]", "500")
        page.click("#save-costs")
        expect(page.locator("#saved")).to_be_visible()
        shot(page, "costs")
        page.goto(deal_url)
        expect(page.locator("#profit")).to_have_text(f"{before - 5:.2f}")

        # --- "N new deals" after the harvest accepts more ----------------------------------
        page.goto(base + "/?poll_ms=500")
        mark = int(
            parse_qs(
                urlsplit(str(page.locator("#new-deals").get_attribute("data-count-url"))).query
            )["since_s"][0]
        )
        for step in range(2, 30):  # harvest runs until one accepts a deal new to the page
            h.at(1800 * step)
            h.upsert()
            if api(base, "/api/deals/new", since_s=mark)["count"] > 0:
                break
        else:
            pytest.fail("thirty upserter runs accepted no new deal")
        expect(page.locator("#new-deals")).to_be_visible()
        expect(page.locator("#new-deals-link")).to_contain_text("new deal")
        page.click("#new-deals-link")
        expect(page).to_have_url(re.compile("sort=first_seen_s"))
        newest = api(base, "/api/deals", sort="first_seen_s", order="desc", limit=1)["deals"][0]
        assert newest["first_seen_s"] > mark
        expect(page.locator("#deals tbody tr[data-asin]").first).to_have_attribute(
            "data-asin", newest["asin"]
        )

        # --- the deal query: log in, an invalid then a valid document ----------------------
        query_path = h.settings.deal_query_path
        original = query_path.read_text(encoding="utf-8")
        page.goto(base + "/query")
        expect(page).to_have_url(re.compile("/login"))
        page.fill("input[name=password]", PASSWORD)
        page.click("#login")
        expect(page).to_have_url(re.compile("/query$"))
        page.fill("#query", '{"domainId": 1, "priceTypes": [2], "dateRange": "1"}')
        page.click("#save-query")
        expect(page.locator("#error")).to_contain_text("dateRange: must be a JSON number")
        assert query_path.read_text(encoding="utf-8") == original
        page.fill("#query", "{oops")
        page.click("#save-query")
        expect(page.locator("#error")).to_contain_text("is not valid JSON")
        shot(page, "query-invalid")
        valid = {**json.loads(original), "dateRange": 2}
        page.fill("#query", json.dumps(valid))
        page.click("#save-query")
        expect(page.locator("#saved")).to_be_visible()
        assert json.loads(query_path.read_text(encoding="utf-8")) == valid
        shot(page, "query")

        # --- Health and Rejections ----------------------------------------------------------
        page.goto(base + "/health")
        expect(page.locator("#checks")).to_be_visible()
        expect(page.locator("#chart-class[data-drawn=true] canvas")).to_be_visible()
        shot(page, "health", readme="health")
        page.goto(base + "/rejections")
        expect(page.locator("#rejections-24h")).to_be_visible()
        shot(page, "rejections")

        # --- a hostile title runs nothing ---------------------------------------------------
        victim = get_deal(h.conn, newest["asin"], newest["domain"])
        assert victim is not None
        hostile = (
            '<img src=x onerror="window.pwned=1"><script>window.pwned=2</script>'
            '" onmouseover="window.pwned=3'
        )
        with transaction(h.conn):
            upsert_deal(h.conn, replace(victim, title=hostile))
        page.goto(base + "/?q=onerror")
        expect(page.locator("#deals tbody tr[data-asin]")).to_have_count(1)
        page.locator("#deals tbody tr[data-asin] td.title a").hover()
        expect(page.locator("#deals tbody td.title a").first).to_contain_text("<script>")
        assert page.evaluate("window.pwned") is None
        page.goto(f"{base}/deal/{newest['domain']}/{newest['asin']}")
        expect(page.locator("#deal-title")).to_contain_text("onerror=")
        assert page.evaluate("window.pwned") is None
        shot(page, "hostile")
    assert errors == []
