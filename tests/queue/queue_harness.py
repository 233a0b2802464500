"""Test helpers for the queue engines: a private redis-server, a manual clock, the harness type.

Imported by conftest.py and the test modules as `tests.queue.queue_harness`.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path

import pytest

from stratumkit.queue.engine import QueueEngine
from tests.support.ports import PortTaken, retry_on_bind_failure

REPO_ROOT = Path(__file__).resolve().parents[2]
REDIS_INSTALL_HINT = "apt-get update && apt-get install -y redis-server  (Debian; or: bash scripts/redis-server.sh)"
_REDIS_LOCATIONS = (
    "/usr/bin/redis-server",
    "/usr/local/bin/redis-server",
    "/usr/sbin/redis-server",
)


def find_redis_server() -> str:
    """The redis-server binary, or a test failure that says how to install it (never a skip)."""
    found = shutil.which("redis-server") or next((p for p in _REDIS_LOCATIONS if os.access(p, os.X_OK)), None)
    if found is None:
        pytest.fail(
            f"redis-server is not installed, and the Redis queue tests need a real one: {REDIS_INSTALL_HINT}",
            pytrace=False,
        )
    return found


class RedisServer:
    """A private redis-server on a loopback port, persisting to an append-only file in `directory`
    with an fsync per write, so it can be killed and started again without losing a reply.

    redis-server cannot bind port 0 and say which port it got: the first start picks a free port
    and picks again if another process took it first; a restart keeps its port (clients hold the URL)."""

    def __init__(self, binary: str, directory: Path) -> None:
        self.binary = binary
        self.directory = directory
        self.port: int | None = None
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        assert self.port is not None, "redis-server was never started"
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        if self.port is None:
            retry_on_bind_failure(self._start_on, 1)
        else:
            self._launch()

    def _start_on(self, ports: list[int]) -> None:
        (self.port,) = ports
        self._launch()

    def _launch(self) -> None:
        log = self.directory / "redis.log"
        log_start = log.stat().st_size if log.exists() else 0
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.directory),
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
                "--daemonize",
                "no",
                "--logfile",
                str(log),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while True:
            if self.process.poll() is not None:
                text = log.read_bytes()[log_start:].decode(errors="replace") if log.exists() else ""
                self.process = None
                if "Address already in use" in text:
                    raise PortTaken(f"redis-server could not bind port {self.port}")
                pytest.fail(f"redis-server exited:\n{text}")
            if self._ping():
                return
            if time.monotonic() > deadline:
                self.stop()
                pytest.fail("redis-server did not answer PING within 30 s")
            time.sleep(0.02)

    def _ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL: no shutdown save, no goodbye; only what was fsynced survives."""
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
            self.process = None

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None


class ManualClock:
    """Wall-clock-like seconds that move only when told."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class Harness:
    """One engine kind under test.

    `open()` gives another engine on the same store (a reopen, or a second connection); `advance`
    moves the engine's clock; `timeout` is a visibility timeout fitting that clock."""

    kind: str
    open: Callable[[], AbstractAsyncContextManager[QueueEngine]]
    advance: Callable[[float], Awaitable[None]]
    timeout: float
