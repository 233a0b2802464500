"""`stratumkit serve` as a real child process, with its JSON log lines parsed as they arrive."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import trio

from .helpers import TIMEOUT

REPO = Path(__file__).resolve().parents[2]


def serve_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "stratumkit.cli", "serve", *args]


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    return env


class ServeProcess:
    """Start with `await ServeProcess.start(nursery, *flags)`; `port` comes from the log line
    "pool listening". The process is killed when the test's nursery is cancelled."""

    def __init__(self, process: trio.Process) -> None:
        self.process = process
        self.lines: list[str] = []
        self.events: list[dict[str, Any]] = []
        self._changed = trio.Event()
        self.port: int | None = None

    @classmethod
    async def start(cls, nursery: trio.Nursery, *args: str) -> ServeProcess:
        process = await trio.lowlevel.open_process(
            serve_command(*args),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=child_env(),
        )
        server = cls(process)
        nursery.start_soon(server._read_stderr)
        nursery.start_soon(server._kill_when_cancelled)
        listening = await server.wait_event("pool listening")
        server.port = int(listening["port"])
        return server

    async def _kill_when_cancelled(self) -> None:
        try:
            await trio.sleep_forever()
        finally:
            if self.process.returncode is None:
                self.process.kill()
            with trio.CancelScope(shield=True):
                await self.process.wait()
            if self.process.stderr is not None:
                await trio.aclose_forcefully(self.process.stderr)

    async def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        buffer = b""
        try:
            while True:
                try:
                    data = await self.process.stderr.receive_some(65536)
                except (trio.ClosedResourceError, trio.BrokenResourceError):
                    data = b""
                if not data:
                    break
                buffer += data
                *lines, buffer = buffer.split(b"\n")
                for raw in lines:
                    line = raw.decode(errors="replace")
                    self.lines.append(line)
                    try:
                        event = json.loads(line)
                    except ValueError:
                        continue
                    if isinstance(event, dict):
                        self.events.append(event)
                self._wake()
        finally:
            self.lines.append("<eof>")
            self._wake()

    def _wake(self) -> None:
        changed, self._changed = self._changed, trio.Event()
        changed.set()

    async def wait_event(self, name: str, timeout: float = TIMEOUT) -> dict[str, Any]:
        with trio.fail_after(timeout):
            while True:
                for event in self.events:
                    if event.get("event") == name:
                        return event
                if self.lines and self.lines[-1] == "<eof>":
                    raise AssertionError(f"no {name!r} before the process ended:\n" + "\n".join(self.lines))
                await self._changed.wait()

    async def wait_exit(self, timeout: float = TIMEOUT) -> int:
        with trio.fail_after(timeout):
            return await self.process.wait()
