"""A dashboard served by uvicorn in a thread, and Playwright on Debian's chromium.

Playwright is only ever given /usr/bin/chromium (`executable_path`): it never downloads
a browser. Screenshots go to DASHBOARD_ARTIFACTS_DIR (default var/test-artifacts/
dashboard, git-ignored), one per page, so a failed run can be looked at.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import uvicorn
from fastapi import FastAPI

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(os.environ.get("DASHBOARD_ARTIFACTS_DIR", "var/test-artifacts/dashboard"))
# Generous: the suite shares two cores with other test runs.
START_TIMEOUT_S = 60.0


def chromium_path() -> str:
    found = shutil.which("chromium") or (str(CHROMIUM) if CHROMIUM.exists() else None)
    if found is None:
        raise RuntimeError(
            "chromium is missing: `make test` installs it (sudo apt-get install chromium "
            "chromium-driver)"
        )
    return found


@contextmanager
def serving(app: FastAPI) -> Iterator[str]:
    """The app on a free loopback port, for the duration; yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT_S
    while not server.started:  # a condition, polled: uvicorn offers no event to wait on
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the dashboard did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


def artifact(name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS / name
