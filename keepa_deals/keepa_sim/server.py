"""The HTTP layer: a threading HTTP/1.1 server over `SimulatorApp.handle`.

Keep-alive with Content-Length, zstd or gzip when the client asks for it (zstd first,
as Keepa answers the `keepa` client's `zstd, gzip, deflate`), and the transport
half of the faults: latency, stalled or dropped connections, truncated bodies. Nothing
here logs a request line or a query string: Keepa's key travels in the query.
"""

from __future__ import annotations

import contextlib
import gzip
import logging
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from keepa_deals.infra.redact import redact
from keepa_deals.keepa_sim.app import SimulatorApp
from keepa_deals.keepa_sim.wire import JSON_TYPE, Response, render

if sys.version_info >= (3, 14):
    from compression import zstd
else:  # pinned in requirements.txt for the Pythons before 3.14
    from backports import zstd

log = logging.getLogger("keepa_deals.keepa_sim.http")
_BUG = render({"error": {"type": "INTERNAL_SERVER_ERROR", "message": "simulator failure"}})


class SimulatorHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # idle keep-alive threads must not hold up stop()
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], app: SimulatorApp) -> None:
        self.app = app
        self.stopping = threading.Event()
        self.connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def track(self, connection: socket.socket, open_: bool) -> None:
        with self._connections_lock:
            if open_:
                self.connections.add(connection)
            else:
                self.connections.discard(connection)

    def close_connections(self) -> None:
        """Hang up on every client, so no handler thread outlives the server."""
        with self._connections_lock:
            for connection in self.connections:
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)
            self.connections.clear()

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("keepa-sim http: connection error", exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "KeepaSimulator/1.0"
    sys_version = ""
    timeout = 120  # an idle keep-alive connection is closed after this
    disable_nagle_algorithm = True  # headers and body go out in two writes
    server: SimulatorHTTPServer

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, True)

    def finish(self) -> None:
        self.server.track(self.connection, False)
        super().finish()

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def _serve(self) -> None:
        split = urlsplit(self.path)
        query = parse_qs(split.query, keep_blank_values=True)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        try:
            response = self.server.app.handle(
                self.command, split.path, query, body, dict(self.headers.items())
            )
        except Exception:
            log.exception("keepa-sim: the request handler failed")
            response = Response(500, {"Content-Type": JSON_TYPE}, _BUG)
        stopping = self.server.stopping
        if response.delay_s > 0:
            stopping.wait(response.delay_s)
        if response.after in ("stall", "drop"):
            if response.after == "stall":
                stopping.wait(response.stall_s)
            self.close_connection = True
            self._abort()
            return
        payload = response.body
        headers = dict(response.headers)
        encoding = content_encoding(self.headers.get("Accept-Encoding") or "")
        if payload and encoding == "zstd":
            payload = zstd.compress(payload, 1)
            headers["Content-Encoding"] = "zstd"
        elif payload and encoding == "gzip":
            payload = gzip.compress(payload, compresslevel=1)
            headers["Content-Encoding"] = "gzip"
        self.send_response(response.status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if response.after == "truncate":
            self.wfile.write(payload[: len(payload) // 2])
            self.wfile.flush()
            self.close_connection = True
            self._abort()
        else:
            self.wfile.write(payload)

    def _abort(self) -> None:
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # The default logs the request line, which holds the key.
        log.debug("keepa-sim http %s %s -> %s", self.command, urlsplit(self.path).path, code)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("keepa-sim http: %s", redact(format % args))


def content_encoding(accept_encoding: str) -> str:
    """zstd, gzip or "" (identity) for an Accept-Encoding header; q-values are ignored
    except q=0, which refuses a coding."""
    offered = set()
    for part in accept_encoding.lower().split(","):
        name, _, params = part.partition(";")
        if params.replace(" ", "") not in ("q=0", "q=0.0", "q=0.00", "q=0.000"):
            offered.add(name.strip())
    for coding in ("zstd", "gzip"):
        if coding in offered:
            return coding
    return ""


class ServerThread:
    """The server on a daemon thread; `url` is where it listens."""

    def __init__(self, app: SimulatorApp, host: str = "127.0.0.1", port: int = 0) -> None:
        self.server = SimulatorHTTPServer((host, port), app)
        bound_port = self.server.server_address[1]
        shown = "127.0.0.1" if host in ("", "0.0.0.0") else host
        self.url = f"http://{shown}:{bound_port}"
        self._thread = threading.Thread(
            target=self.server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="keepa-simulator",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        self.server.stopping.set()
        self.server.shutdown()
        self.server.server_close()
        self.server.close_connections()
        self._thread.join(timeout=5)
