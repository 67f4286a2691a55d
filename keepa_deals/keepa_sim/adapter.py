"""A `requests` transport adapter that answers from the simulator without sockets.

    session = requests.Session()
    session.mount("http://keepa.sim/", SimulatorAdapter(sim))
    session.get("http://keepa.sim/token", params={"key": "..."})

Faults behave as they would on the wire: latency sleeps, a stalled answer raises
`ReadTimeout` (after the charge), a dropped connection raises `ConnectionError`, a
truncated body raises `ChunkedEncodingError` when the content is read.
"""

from __future__ import annotations

import io
import time
from collections.abc import Mapping
from http.client import RemoteDisconnected
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3 import HTTPResponse
from urllib3.exceptions import ProtocolError

from keepa_deals.keepa_sim.app import SimulatorApp

if TYPE_CHECKING:
    from keepa_deals.keepa_sim.simulator import KeepaSimulator


def _read_timeout(timeout: Any) -> float | None:
    if isinstance(timeout, tuple):
        return float(timeout[1]) if timeout[1] is not None else None
    return float(timeout) if timeout is not None else None


class SimulatorAdapter(HTTPAdapter):
    def __init__(self, sim: KeepaSimulator | SimulatorApp) -> None:
        super().__init__(max_retries=0)
        self.app = sim if isinstance(sim, SimulatorApp) else sim.app

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: Any = True,
        cert: Any = None,
        proxies: Mapping[str, str] | None = None,
    ) -> requests.Response:
        split = urlsplit(request.url or "")
        body = request.body or b""
        if isinstance(body, str):
            body = body.encode()
        response = self.app.handle(
            request.method or "GET",
            split.path,
            parse_qs(split.query, keep_blank_values=True),
            body,
            dict(request.headers),
        )
        read_timeout = _read_timeout(timeout)
        waits = response.delay_s + (response.stall_s if response.after == "stall" else 0.0)
        if read_timeout is not None and waits > read_timeout:
            time.sleep(read_timeout)
            raise requests.exceptions.ReadTimeout(
                f"simulated read timeout after {read_timeout:g}s", request=request
            )
        if waits > 0:
            time.sleep(waits)
        if response.after in ("stall", "drop"):
            raise requests.exceptions.ConnectionError(
                ProtocolError("Connection aborted.", RemoteDisconnected("simulated drop")),
                request=request,
            )
        payload = response.body
        if response.after == "truncate":
            payload = payload[: len(payload) // 2]
        headers = {**response.headers, "Content-Length": str(len(response.body))}
        raw = HTTPResponse(
            body=io.BytesIO(payload),
            headers=headers,
            status=response.status,
            preload_content=False,
            decode_content=True,
            enforce_content_length=True,
            request_method=request.method,
        )
        return self.build_response(request, raw)
