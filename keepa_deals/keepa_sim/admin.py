"""The simulator's own endpoints under /_sim/: free, keyless, never part of Keepa.

GET    /_sim/state                   clock, balances by key fingerprint, counters
POST   /_sim/advance?seconds=N       move a manual clock
POST   /_sim/plan?refill_rate=R      change the plan (rate and cap) now
GET    /_sim/faults                  the fault configuration and what is left of it
POST   /_sim/faults                  JSON body: set faults (see faults.py)
DELETE /_sim/faults                  clear them
POST   /_sim/keys                    JSON body {"key": ..., "status": "active" |
                                     "expired" | "unknown"} (in the body, so the key
                                     is never in a URL or a log line)
GET    /_sim/published?selection=JSON&start_s=S&end_s=E
                                     every deal matching the selection that became
                                     visible in (S, E]: {"deals": [[asin, minute]]}
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from keepa_deals.keepa_sim.wire import RequestError, Response, json_response

if TYPE_CHECKING:
    from keepa_deals.keepa_sim.app import SimulatorApp


def _fail(status: int, message: str) -> Response:
    return json_response(status, {"error": {"type": "SIMULATOR", "message": message}})


def _number(params: dict[str, str], name: str) -> float:
    try:
        return float(params[name])
    except (KeyError, ValueError):
        raise ValueError(f"query parameter {name} must be a number") from None


def _json_body(body: bytes) -> Any:
    try:
        return json.loads(body or b"{}")
    except ValueError:
        raise ValueError("the body is not valid JSON") from None


def handle_admin(
    app: SimulatorApp, method: str, route: str, params: dict[str, str], body: bytes
) -> Response:
    action = route.removeprefix("/_sim").strip("/")
    try:
        if (method, action) == ("GET", "state"):
            return json_response(200, app.state())
        if (method, action) == ("POST", "advance"):
            seconds = _number(params, "seconds")
            if seconds < 0:
                raise ValueError("a clock does not move backwards")
            return json_response(200, {"now_s": app.advance(seconds)})
        if (method, action) == ("POST", "plan"):
            rate = _number(params, "refill_rate")
            if rate != int(rate) or rate < 1:
                raise ValueError("refill_rate must be a positive integer")
            app.set_plan(int(rate))
            return json_response(200, {"refill_rate": int(rate)})
        if action == "faults":
            with app.lock:
                if method == "POST":
                    app.faults.set(_json_body(body))
                elif method == "DELETE":
                    app.faults.clear()
                elif method != "GET":
                    return _fail(405, f"{method} /_sim/faults is not supported")
                return json_response(200, app.faults.snapshot())
        if (method, action) == ("POST", "keys"):
            data = _json_body(body)
            if not isinstance(data, dict) or not isinstance(data.get("key"), str):
                raise ValueError('the body must be {"key": ..., "status": ...}')
            with app.lock:
                app.accounts.set_status(data["key"], data.get("status", "active"))
            return json_response(200, {"status": data.get("status", "active")})
        if (method, action) == ("GET", "published"):
            selection = json.loads(params.get("selection", "{}"))
            found = app.published(selection, _number(params, "start_s"), _number(params, "end_s"))
            return json_response(200, {"deals": [list(row) for row in found]})
    except RequestError as exc:
        return _fail(exc.status, exc.message)
    except (ValueError, RuntimeError) as exc:
        return _fail(400, str(exc))
    return _fail(404, f"no simulator endpoint {method} {route}")
