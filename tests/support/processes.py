"""`stratumkit` commands as child processes, with their JSON log lines parsed as they arrive.

A served pool binds port 0 and says where it listens in its log ("pool listening" port=..., "API
listening" port=...), so a test never picks a port that someone else may take before the bind.
The child is killed when the test's nursery is cancelled, whatever the test's outcome.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio

from .waiting import TIMEOUT, Changed

REPO = Path(__file__).resolve().parents[2]


def cli_command(*args: str) -> list[str]:
    """`stratumkit ARGS` run by this interpreter, from this checkout."""
    return [sys.executable, "-m", "stratumkit.cli", *args]


def serve_command(*args: str) -> list[str]:
    return cli_command("serve", *args)


#: A child interpreter importing stratumkit takes seconds on a machine whose cores are all busy.
CHILD_TIMEOUT = 60.0


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """`stratumkit ARGS` to its end (a command that fails at start, or exits at once): its output."""
    return subprocess.run(cli_command(*args), capture_output=True, text=True, timeout=CHILD_TIMEOUT, env=child_env())


def child_env(**extra: str) -> dict[str, str]:
    """The test's environment, with this checkout first on PYTHONPATH."""
    env = dict(os.environ, **extra)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    return env


class ServeProcess:
    """`await ServeProcess.start(nursery, *serve_flags)`: waits for "pool listening" and reads `port`.

    The flags must make the log JSON (`--log-format json`, or log_format in a --config file).
    `log_copy`, if given, receives every byte of the log as it arrives (kept after the test)."""

    def __init__(self, process: trio.Process, log_copy: Path | None = None) -> None:
        self.process = process
        self.lines: list[str] = []
        self.events: list[dict[str, Any]] = []
        self.eof = False
        self.port = 0  # known once it listens
        self._log_copy = log_copy
        self._changed = Changed()

    @classmethod
    async def start(
        cls, nursery: trio.Nursery, *args: str, log_copy: Path | None = None, timeout: float = TIMEOUT
    ) -> ServeProcess:
        server = await cls.spawn(nursery, serve_command(*args), log_copy=log_copy)
        listening = await server.wait_event("pool listening", timeout)
        server.port = int(listening["port"])
        return server

    @classmethod
    async def spawn(cls, nursery: trio.Nursery, command: list[str], *, log_copy: Path | None = None) -> ServeProcess:
        """Any command whose stderr is a JSON log (`stratumkit agent`, `mine`), not waited on."""
        process = await trio.lowlevel.open_process(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=child_env(),
        )
        child = cls(process, log_copy)
        nursery.start_soon(child._read_stderr)
        nursery.start_soon(child._kill_when_cancelled)
        return child

    async def api_port(self, timeout: float = TIMEOUT) -> int:
        """The HTTP API's port, from its "API listening" line (serve with --api-port 0)."""
        return int((await self.wait_event("API listening", timeout))["port"])

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
        copy = self._log_copy.open("ab") if self._log_copy is not None else None
        try:
            while True:
                try:
                    data = await self.process.stderr.receive_some(65536)
                except (trio.ClosedResourceError, trio.BrokenResourceError):
                    data = b""
                if not data:
                    break
                if copy is not None:
                    copy.write(data)
                    copy.flush()
                buffer += data
                *lines, buffer = buffer.split(b"\n")
                for raw in lines:
                    self._add_line(raw.decode(errors="replace"))
                self._changed.notify()
        finally:
            if buffer:
                self._add_line(buffer.decode(errors="replace"))
            if copy is not None:
                copy.close()
            self.eof = True
            self._changed.notify()

    def _add_line(self, line: str) -> None:
        self.lines.append(line)
        try:
            event = json.loads(line)
        except ValueError:
            return
        if isinstance(event, dict):
            self.events.append(event)

    def find_events(self, name: str, **fields: Any) -> list[dict[str, Any]]:
        """Log records named `name` whose fields have these values."""
        return [e for e in self.events if e.get("event") == name and all(e.get(k) == v for k, v in fields.items())]

    async def wait_event(
        self,
        name: str,
        timeout: float = TIMEOUT,
        where: Callable[[dict[str, Any]], bool] | None = None,
    ) -> dict[str, Any]:
        """The first log record named `name` (and meeting `where`), waiting for it if need be."""
        with trio.move_on_after(timeout):
            while True:
                for event in self.events:
                    if event.get("event") == name and (where is None or where(event)):
                        return event
                if self.eof:
                    raise AssertionError(f"no {name!r} before the process ended; its log ends with:\n{self.tail()}")
                await self._changed.wait()
        raise AssertionError(f"no {name!r} within {timeout:g} s; the log ends with:\n{self.tail()}")

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.lines[-lines:])

    @property
    def running(self) -> bool:
        return self.process.returncode is None and self.process.poll() is None

    def freeze(self) -> None:
        """SIGSTOP: the process does nothing until `thaw` (its timers then fire at once)."""
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        self.process.send_signal(signal.SIGCONT)

    async def wait_exit(self, timeout: float = TIMEOUT) -> int:
        with trio.fail_after(timeout):
            return await self.process.wait()

    async def stop(self, timeout: float = TIMEOUT) -> int:
        """SIGTERM and wait: the exit status (0: a clean shutdown). Killed if it does not stop."""
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGCONT)  # a frozen process cannot act on SIGTERM
            self.process.send_signal(signal.SIGTERM)
        with trio.move_on_after(timeout):
            return await self.process.wait()
        self.process.kill()
        await self.process.wait()
        raise AssertionError(f"the process did not stop on SIGTERM within {timeout:g} s:\n{self.tail()}")
