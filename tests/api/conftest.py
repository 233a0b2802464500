"""Fixtures for the API tests: a real pool (embedded chain), a real LeaseService on the SQLite
queue engine, and the HTTP API, all on loopback port 0; rigs are real stratum clients.

`make_stack(api_token=None)` starts one such stack in the test's nursery; `stack` is one
without a token. `rig(stack, rig_id)` connects a rig agent's stratum side and registers it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio

from stratumkit.agent.stratum import StratumClient
from stratumkit.api.app import DEFAULT_MAX_BODY_BYTES, serve_api
from stratumkit.app import open_app
from stratumkit.lease.service import LeaseService
from stratumkit.protocol.events import ErrorReply, Event, ExtensionNotification, Response
from stratumkit.server.config import PoolConfig
from stratumkit.server.operator import PoolOperator
from stratumkit.server.pool import Pool

#: Upper bound on any single wait (everything here takes milliseconds when it works).
TIMEOUT = 10.0


@dataclass
class Stack:
    pool: Pool
    leases: LeaseService
    api_port: int
    token: str | None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def stratum_port(self) -> int:
        assert self.pool.port is not None
        return self.pool.port


MakeStack = Callable[..., Awaitable[Stack]]


@pytest.fixture
async def make_stack(tmp_path: Path) -> AsyncIterator[MakeStack]:
    """`make_stack(api_token=None, max_body_bytes=..., **pool_config)` starts pool, lease service
    (SQLite queue) and API; everything stops when the test ends."""
    async with AsyncExitStack() as exits, trio.open_nursery() as nursery:
        count = 0

        async def make(
            *,
            api_token: str | None = None,
            max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
            **config: Any,
        ) -> Stack:
            nonlocal count
            count += 1
            data = tmp_path / f"stack-{count}"
            # the test rigs answer a divert only when a test makes them: a lease stays draining
            values: dict[str, Any] = dict(
                host="127.0.0.1", port=0, api_port=None, data_dir=str(data), start_difficulty=0.001,
                embedded_difficulty=0.02, lease_drain_timeout=300.0,
                check_jobs=False,  # these tests enqueue placeholder payloads; tests/lease/test_job_check.py checks jobs
            )  # fmt: skip
            app = await exits.enter_async_context(open_app(PoolConfig(**(values | config))))
            await nursery.start(app.run)
            assert app.leases is not None and app.power is not None  # a lone pool, not a shared lease plane
            serve = partial(  # the API started here, to set max_body_bytes
                serve_api,
                app.pool,
                app.leases,
                "127.0.0.1",
                0,
                api_token=api_token,
                max_body_bytes=max_body_bytes,
                operator=PoolOperator(app.pool, app.leases, app.queue, app.power.hashprice),
            )
            port = await nursery.start(serve)
            return Stack(app.pool, app.leases, port, api_token)

        yield make
        nursery.cancel_scope.cancel()


@pytest.fixture
async def stack(make_stack: MakeStack) -> Stack:
    return await make_stack()


@dataclass
class Rig:
    """A rig agent's stratum side: handshake, registration, and the lease messages it gets."""

    rig_id: str
    client: StratumClient
    notifications: list[ExtensionNotification] = field(default_factory=list)
    changed: trio.Event = field(default_factory=trio.Event)

    def on_event(self, event: Event) -> None:
        if isinstance(event, ExtensionNotification):
            self.notifications.append(event)
            self.changed.set()
            self.changed = trio.Event()

    async def request(self, method: str, params: list[Any]) -> Any:
        with trio.fail_after(TIMEOUT):
            reply = await self.client.call(self.client.conn.send_request, method, params)
        if isinstance(reply, ErrorReply):
            raise AssertionError(f"{method} refused: {reply.message}")
        assert isinstance(reply, Response)
        return reply.result

    async def wait_notification(self, method: str) -> dict[str, Any]:
        with trio.fail_after(TIMEOUT):
            while True:
                for note in self.notifications:
                    if note.method == method:
                        params: dict[str, Any] = note.params[0]
                        return params
                await self.changed.wait()


async def connect_rig(
    nursery: trio.Nursery,
    stack: Stack,
    rig_id: str,
    *,
    gpu_model: str = "RTX 4090",
    vram_mb: int = 24576,
    models: tuple[str, ...] = ("all-MiniLM-L6-v2",),
) -> Rig:
    rig: Rig | None = None

    def on_event(event: Event) -> None:
        if rig is not None:
            rig.on_event(event)

    client = await StratumClient.connect(nursery, "127.0.0.1", stack.stratum_port, on_event=on_event)
    nursery.start_soon(_close_when_cancelled, client)
    rig = Rig(rig_id, client)
    with trio.fail_after(TIMEOUT):
        await client.handshake(f"{rig_id}.gpu")
    result = await rig.request(
        "stratumkit.rig.register",
        [
            {
                "rig_id": rig_id,
                "gpus": [{"model": gpu_model, "vram_mb": vram_mb}],
                "models": list(models),
                "hashrate": 1e9,
                "power_w": 300,
            }
        ],
    )
    assert result == {"rig_id": rig_id}
    return rig


async def _close_when_cancelled(client: StratumClient) -> None:
    try:
        await trio.sleep_forever()
    finally:
        await trio.aclose_forcefully(client.stream)
