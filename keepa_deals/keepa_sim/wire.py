"""What the request handler returns, and how bodies are put together.

`Response` is transport-neutral: the HTTP server and the in-process `requests` adapter
both turn it into bytes on the wire, and both honour its fault directives (`delay_s`,
`after`), which is what lets a fault stall a real socket or raise the matching
`requests` exception without one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

JSON_TYPE = "application/json;charset=UTF-8"
ERROR_TYPES = {
    400: "REQUEST_REJECTED",
    402: "PAYMENT_REQUIRED",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    429: "NOT_ENOUGH_TOKEN",
    500: "INTERNAL_SERVER_ERROR",
    503: "SERVICE_UNAVAILABLE",
}
# What happens after the body is ready (and, for paid requests, charged):
# "stall" holds the answer back for `stall_s`, then closes without one; "drop" closes
# the connection at once; "truncate" sends half the body under the full Content-Length.
After = Literal["", "stall", "drop", "truncate"]


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes
    delay_s: float = 0.0
    after: After = ""
    stall_s: float = 0.0


class RawJSON:
    """Already-serialised JSON to splice in as a value (deal records, product parts)."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def parse(self) -> Any:
        return json.loads(self.text)


class RawMembers(RawJSON):
    """Already-serialised object members (`"a":1,"b":2`) to splice into a dict."""

    __slots__ = ()


class RequestError(Exception):
    """A request Keepa would refuse; nothing is charged."""

    def __init__(self, status: int, message: str, details: str = "") -> None:
        self.status = status
        self.message = message
        self.details = details
        super().__init__(f"{status}: {message}")

    def error_object(self) -> dict[str, str]:
        return {
            "type": ERROR_TYPES.get(self.status, "REQUEST_FAILED"),
            "message": self.message,
            "details": self.details,
        }


_encode = json.JSONEncoder(separators=(",", ":")).encode
_names: dict[str, str] = {}


def render_value(value: object) -> str:
    """JSON text of a value whose dicts and lists may hold RawJSON parts (and dicts
    RawMembers); lists without containers inside go through the C encoder whole."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, RawMembers):
        raise TypeError("RawMembers belong inside a dict")
    if isinstance(value, RawJSON):
        return value.text
    if isinstance(value, dict):
        parts = []
        for name, item in value.items():
            if isinstance(item, RawMembers):
                if item.text:
                    parts.append(item.text)
                continue
            key = _names.get(name)
            if key is None:
                key = _names[name] = _encode(name) + ":"
            parts.append(key + render_value(item))
        return "{" + ",".join(parts) + "}"
    if isinstance(value, list) and any(isinstance(v, dict | list | RawJSON) for v in value):
        return "[" + ",".join(render_value(v) for v in value) + "]"
    return _encode(value)


def render(fields: Mapping[str, object]) -> bytes:
    return render_value(dict(fields)).encode()


def json_response(status: int, fields: Mapping[str, object]) -> Response:
    return Response(status, {"Content-Type": JSON_TYPE}, render(fields))
