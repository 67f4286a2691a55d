"""The request handler without sockets: a pure function of the request and the clock."""

from __future__ import annotations

import json

from keepa_deals.infra.clock import ManualClock
from keepa_deals.keepa_sim import KeepaSimulator
from tests.keepa_sim.conftest import KEY, USED_BOOKS


def test_handle_answers_keepas_endpoints_and_the_admin_ones(clock: ManualClock) -> None:
    sim = KeepaSimulator(seed=7, clock=clock, catalogue_size=4000)
    app = sim.app
    token = app.handle("GET", "/token", {"key": [KEY]}, b"", {})
    assert token.status == 200 and token.headers["Content-Type"].startswith("application/json")
    assert json.loads(token.body)["tokensLeft"] == 300
    deal = app.handle("POST", "/deal/", {"key": KEY}, json.dumps(USED_BOOKS).encode(), {})
    body = json.loads(deal.body)
    assert (deal.status, body["tokensConsumed"], len(body["deals"]["dr"])) == (200, 5, 150)
    assert (deal.delay_s, deal.after) == (0.0, "")
    advanced = app.handle("POST", "/_sim/advance", {"seconds": "60"}, b"", {})
    assert json.loads(advanced.body)["now_s"] == clock.now()
    assert json.loads(app.handle("GET", "/token/", {"key": KEY}).body)["tokensLeft"] == 300
    missing = app.handle("GET", "/product", {"key": KEY, "domain": "1"})
    assert missing.status == 400
    assert json.loads(missing.body)["error"]["type"] == "REQUEST_REJECTED"
