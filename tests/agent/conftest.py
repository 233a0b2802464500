"""Real `stratumkit serve` and `stratumkit agent` processes for the agent's tests, logging JSON."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest
import trio

from tests.support.certificates import make_certificate
from tests.support.processes import ServeProcess, cli_command
from tests.support.waiting import TIMEOUT


def pool_flags(data_dir: Path, port: int = 0, *extra: str) -> list[str]:
    return [
        "--host", "127.0.0.1", "--port", str(port), "--api-port", "0", "--data-dir", str(data_dir),
        "--start-difficulty", "0.0005", "--embedded-difficulty", "1", "--share-interval", "2",
        "--log-format", "json", *extra,
    ]  # fmt: skip


async def start_pool(nursery: trio.Nursery, data_dir: Path, port: int = 0, *extra: str) -> ServeProcess:
    return await ServeProcess.start(nursery, *pool_flags(data_dir, port, *extra), timeout=60)


#: The built-in CPU model as the agent's backend, on one thread (the machine is small).
MINILM = ("--inference", "minilm", "--inference-threads", "1")


async def kill9(process: ServeProcess) -> None:
    process.process.send_signal(signal.SIGKILL)
    await process.wait_exit()


async def start_agent(nursery: trio.Nursery, *flags: str) -> ServeProcess:
    """`stratumkit agent FLAGS --log-format json`, not waited on."""
    return await ServeProcess.spawn(nursery, cli_command("agent", *flags, "--log-format", "json"))


async def wait_new_event(proc: ServeProcess, name: str, seen: int, timeout: float = TIMEOUT) -> dict[str, Any]:
    """The first `name` record after the first `seen` of them."""

    def later(event: dict[str, Any]) -> bool:
        return any(event is e for e in proc.find_events(name)[seen:])

    return await proc.wait_event(name, timeout, where=later)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_certificate(tmp_path_factory.mktemp("tls"))
