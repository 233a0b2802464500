"""A child process under the agent (the external miner, the inference server): started, stopped
or frozen, watched, restarted.

The command is split like a shell would (``shlex``) but run without one; ``{url}``, ``{host}``,
``{port}``, ``{user}`` and ``{password}`` in it are replaced by the local stratum endpoint's. The
child runs in its own process group, so signals reach a wrapper script's children too.

Rules:
- ``pause()`` stops the hashing by ``method``: ``stop`` ends the process (SIGTERM, SIGKILL after
  ``stop_grace`` s: the GPU is freed), ``signal`` sends SIGSTOP (SIGCONT on ``resume()``; a
  process restarted while frozen is frozen at once),
  ``withhold`` leaves the process alone (the relay withholds its work instead).
- A process that exits while it should be running is a crash: logged with its exit code and
  the last lines of its output, and started again after a backoff (reset once it has run for
  ``healthy_after`` s).
- Its output (stdout and stderr) is kept in a bounded buffer of ``log_lines`` lines.
- Log lines are named after ``name``: "miner started", "inference server exited: restarting" ...
"""

from __future__ import annotations

import enum
import os
import shlex
import signal
import subprocess
from collections import deque
from collections.abc import Mapping

import structlog
import trio

from .backoff import Backoff

log = structlog.get_logger("stratumkit.agent")


class StopMethod(enum.Enum):
    STOP = "stop"
    SIGNAL = "signal"
    WITHHOLD = "withhold"


def command_argv(command: str, values: Mapping[str, str]) -> list[str]:
    """The argv of ``command`` with the endpoint's placeholders filled in; ValueError if it is empty
    or names a placeholder we do not know."""
    try:
        argv = [part.format_map(values) for part in shlex.split(command)]
    except KeyError as exc:
        known = ", ".join("{" + key + "}" for key in values)
        raise ValueError(f"command {command!r}: unknown placeholder {{{exc.args[0]}}} (known: {known})") from None
    except ValueError as exc:
        raise ValueError(f"command {command!r}: {exc}") from None
    if not argv:
        raise ValueError("the command is empty")
    return argv


class SupervisedProcess:
    def __init__(
        self,
        argv: list[str],
        method: StopMethod = StopMethod.STOP,
        *,
        name: str = "miner",
        running: bool = True,
        log_lines: int = 200,
        restart: Backoff | None = None,
        stop_grace: float = 5.0,
        healthy_after: float = 30.0,
    ) -> None:
        self.argv = argv
        self.method = method
        self.name = name
        self.output: deque[str] = deque(maxlen=log_lines)
        self.restart = restart or Backoff(1.0, 30.0)
        self.stop_grace = stop_grace
        self.healthy_after = healthy_after
        self.process: trio.Process | None = None
        self.starts = 0
        self.crashes = 0
        self.frozen = False
        self._want_running = running
        self._wanted = trio.Event()
        if running:
            self._wanted.set()
        self._stop: trio.CancelScope | None = None

    @property
    def wanted(self) -> bool:
        return self._want_running

    def pause(self) -> None:
        if self.method is StopMethod.STOP:
            self._want_running = False
            self._wanted = trio.Event()
            if self._stop is not None:
                self._stop.cancel()
        elif self.method is StopMethod.SIGNAL:
            self._signal(signal.SIGSTOP)
            self.frozen = True
            log.info(f"{self.name} frozen", pid=self.pid)

    def resume(self) -> None:
        if self.method is StopMethod.STOP:
            self._want_running = True
            self._wanted.set()
        elif self.method is StopMethod.SIGNAL and self.frozen:
            self._signal(signal.SIGCONT)
            self.frozen = False
            log.info(f"{self.name} resumed", pid=self.pid)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def _signal(self, signum: int) -> None:
        if self.process is not None and self.process.returncode is None:
            try:
                os.killpg(self.process.pid, signum)
            except ProcessLookupError:
                pass

    async def run(self) -> None:
        """Keep the miner running while it is wanted, until cancelled (then it is stopped)."""
        while True:
            await self._wanted.wait()
            started = trio.current_time()
            code = await self._run_once()
            if not self._want_running:
                log.info(f"{self.name} stopped", code=code)
                continue
            self.crashes += 1
            if trio.current_time() - started >= self.healthy_after:
                self.restart.reset()
            delay = self.restart.next_delay()
            log.warning(
                f"{self.name} exited: restarting", code=code, retry_in=delay, last_output=list(self.output)[-5:]
            )
            await trio.sleep(delay)

    async def _run_once(self) -> int | None:
        async with trio.open_nursery() as nursery:
            process: trio.Process = await nursery.start(_run_process, self.argv, self.stop_grace)
            self.process = process
            self.starts += 1
            log.info(f"{self.name} started", pid=process.pid, argv=self.argv)
            if self.frozen:  # restarted after a crash while it was meant to be frozen
                self._signal(signal.SIGSTOP)
            read_all = trio.Event()
            nursery.start_soon(self._read_output, process, read_all)
            with trio.CancelScope() as scope:
                self._stop = scope
                if not self._want_running:
                    scope.cancel()
                await process.wait()
                with trio.move_on_after(1.0):  # its last lines say why it exited
                    await read_all.wait()
            self._stop = None
            nursery.cancel_scope.cancel()  # a stop request: _run_process ends the child
        return self.process.returncode if self.process is not None else None

    async def _read_output(self, process: trio.Process, done: trio.Event) -> None:
        assert process.stdout is not None
        buffer = b""
        async for chunk in process.stdout:
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            self.output.extend(line.decode(errors="replace") for line in lines)
            if len(buffer) > 64 * 1024:  # a line that never ends is kept in pieces
                self.output.append(buffer.decode(errors="replace"))
                buffer = b""
        if buffer:
            self.output.append(buffer.decode(errors="replace"))
        done.set()


async def _run_process(argv: list[str], grace: float, *, task_status: trio.TaskStatus[trio.Process]) -> None:
    """trio.run_process in its own process group; cancelled: SIGCONT + SIGTERM, SIGKILL after ``grace``."""

    async def deliver_cancel(process: trio.Process) -> None:
        for signum in (signal.SIGCONT, signal.SIGTERM):
            try:
                os.killpg(process.pid, signum)
            except ProcessLookupError:
                return
        with trio.move_on_after(grace):
            await process.wait()
            return
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    await trio.run_process(
        argv,
        check=False,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        deliver_cancel=deliver_cancel,
        task_status=task_status,
    )
