"""Keys and paths: 400 for a missing or unknown key, 402 for an expired one, 404 for an
unknown path; error bodies carry the token fields and `error: {type, message, details}`."""

from __future__ import annotations

import pytest

from keepa_deals.keepa_sim import KeepaSimulator
from tests.keepa_sim.conftest import KEY, USED_BOOKS, Api, SimFactory, envelope_fields


def assert_error(body: dict[str, object], error_type: str) -> None:
    envelope_fields(body)  # every token field is there
    error = body["error"]
    assert isinstance(error, dict)
    assert error["type"] == error_type
    assert isinstance(error["message"], str) and "details" in error


@pytest.mark.parametrize("endpoint", ["token", "deal", "product"])
def test_a_missing_key_is_rejected_as_invalid(api: Api, endpoint: str) -> None:
    response = api.session.get(f"{api.base}/{endpoint}", timeout=10)
    assert response.status_code == 400
    body = response.json()
    assert_error(body, "REQUEST_REJECTED")
    assert "key" in body["error"]["message"].lower()
    assert body["tokensConsumed"] == 0


def test_only_known_keys_are_accepted_when_keys_are_given(make_sim: SimFactory) -> None:
    sim = make_sim(accept_any_key=False, keys=[KEY])
    api = Api(sim.url)
    assert api.token()["tokensLeft"] == 300
    response = api.get("deal", key="someone-elses-key", selection="{}")
    assert response.status_code == 400
    assert_error(response.json(), "REQUEST_REJECTED")
    assert "invalid" in response.json()["error"]["message"].lower()
    sim.set_key("someone-elses-key", "active")
    assert api.get("token", key="someone-elses-key").status_code == 200


def test_an_expired_key_gets_402_with_no_tokens_and_no_charge(
    sim: KeepaSimulator, api: Api
) -> None:
    api.deal(USED_BOOKS)
    sim.set_key(KEY, "expired")
    for response in (api.deal(USED_BOOKS), api.get("token")):
        assert response.status_code == 402
        assert_error(response.json(), "PAYMENT_REQUIRED")
        # An expired plan has nothing to spend and refills nothing.
        body = response.json()
        assert (body["tokensLeft"], body["refillRate"], body["refillIn"]) == (0, 0, 0)
    sim.set_key(KEY, "active")  # renewed: the balance it had, less this deal page
    assert api.deal(USED_BOOKS).json()["tokensLeft"] == 290


def test_a_key_expired_before_its_first_call_reports_no_full_bucket(
    sim: KeepaSimulator, api: Api
) -> None:
    sim.set_key(KEY, "expired")
    response = api.get("token")
    assert response.status_code == 402
    assert response.json()["tokensLeft"] == 0
    assert sim.state()["keys"] == {}  # no bucket was made for it


def test_an_unknown_key_status_can_be_set_over_http(api: Api) -> None:
    response = api.admin("POST", "keys", json={"key": KEY, "status": "unknown"})
    assert response.status_code == 200
    assert api.get("token").status_code == 400
    assert api.admin("POST", "keys", json={"key": KEY, "status": "bogus"}).status_code == 400


@pytest.mark.parametrize("path", ["/query", "/tokens", "/", "/deal/extra"])
def test_unknown_paths_get_404_with_token_fields(api: Api, path: str) -> None:
    response = api.session.get(f"{api.base}{path}", params={"key": api.key}, timeout=10)
    assert response.status_code == 404
    body = response.json()
    assert_error(body, "NOT_FOUND")
    # The key's own balance and rate, uncharged, as on any other error.
    token = api.session.get(f"{api.base}/token", params={"key": api.key}, timeout=10).json()
    assert (body["tokensLeft"], body["refillRate"]) == (token["tokensLeft"], token["refillRate"])
    assert body["refillRate"] > 0 and body["tokensConsumed"] == 0


def test_trailing_slashes_reach_the_endpoints(api: Api) -> None:
    for endpoint in ("token/", "product/", "deal/"):
        response = api.session.get(f"{api.base}/{endpoint}", params={"key": api.key}, timeout=10)
        assert response.status_code in (200, 400)  # 400: no asin / selection given
        assert response.json().get("error", {}).get("type") != "NOT_FOUND"


def test_admin_rejects_what_it_does_not_know(api: Api) -> None:
    assert api.admin("GET", "nothing").status_code == 404
    assert api.admin("POST", "advance", params={"seconds": "soon"}).status_code == 400
    assert api.admin("POST", "advance", params={"seconds": -5}).status_code == 400
    assert api.admin("POST", "plan", params={"refill_rate": 0}).status_code == 400
    assert api.admin("POST", "faults", data=b"{not json").status_code == 400
    assert api.admin("POST", "faults", json={"storm": 3}).status_code == 400


def test_a_wall_clock_cannot_be_advanced(make_sim: SimFactory) -> None:
    api = Api(make_sim(clock="wall").url)
    response = api.admin("POST", "advance", params={"seconds": 60})
    assert response.status_code == 400
    assert "manual" in response.json()["error"]["message"]
