"""A private redis-server process: for the test suite and for `make run` on a bare host."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import redis


class RedisServerError(RuntimeError):
    pass


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class RedisServerProcess:
    """Starts `redis-server` on a free loopback port with no persistence."""

    def __init__(
        self,
        port: int | None = None,
        host: str = "127.0.0.1",
        workdir: Path | None = None,
        *,
        own_session: bool = False,
    ) -> None:
        """`own_session`: start it outside the caller's process group, so a terminal's
        Ctrl-C does not stop Redis while the rest still shuts down through it."""
        self.binary = shutil.which("redis-server")
        if self.binary is None:
            raise RedisServerError(
                "redis-server is not installed; run scripts/ensure-redis-server.sh "
                "(Debian: apt-get install redis-server)"
            )
        self.host = host
        self.port = port or free_port(host)
        self._own_dir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="keepa-redis-"))
        self.own_session = own_session
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def start(self, timeout_s: float = 10.0) -> RedisServerProcess:
        argv = [
            str(self.binary),
            "--port",
            str(self.port),
            "--bind",
            self.host,
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.workdir),
            "--maxmemory-policy",
            "noeviction",
            "--protected-mode",
            "yes",
            "--logfile",
            str(self.workdir / "redis.log"),
        ]
        self._proc = subprocess.Popen(
            argv,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=self.own_session,
        )
        client = redis.Redis(host=self.host, port=self.port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + timeout_s
        try:
            while True:
                if self._proc.poll() is not None:
                    err = self._proc.stderr.read().decode() if self._proc.stderr else ""
                    raise RedisServerError(f"redis-server exited at start-up: {err.strip()}")
                try:
                    if client.ping():
                        return self
                except redis.ConnectionError:
                    pass
                if time.monotonic() > deadline:
                    raise RedisServerError(f"redis-server did not answer on {self.url}")
                time.sleep(0.02)
        finally:
            client.close()

    def stop(self) -> None:
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if self._proc.stderr:
            self._proc.stderr.close()
        self._proc = None

    def restart(self) -> None:
        """Stop and start on the same port: every key is gone, as after a reboot."""
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> RedisServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
