"""A real pool, lease service, SQLite queue and rig agents over real loopback TCP, in one trio run."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from stratumkit.agent.rig import AgentConfig, RigAgent
from stratumkit.app import open_app
from stratumkit.inference.backend import InferenceBackend
from stratumkit.inference.minilm import MiniLMBackend
from stratumkit.lease.service import LeaseService
from stratumkit.power.service import PowerService
from stratumkit.server.config import PoolConfig
from stratumkit.server.pool import Pool

EMBED = {"kind": "embeddings", "model": "all-MiniLM-L6-v2"}


@dataclass
class Rig:
    agent: RigAgent
    scope: trio.CancelScope

    def kill(self) -> None:
        """The agent dies: its task ends and its socket closes, as with a killed process."""
        self.scope.cancel()


class Site:
    def __init__(
        self, pool: Pool, leases: LeaseService, nursery: trio.Nursery, backend: InferenceBackend, power: PowerService
    ) -> None:
        self.pool = pool
        self.leases = leases
        self.power = power
        self.nursery = nursery
        self.backend = backend

    async def add_rig(
        self,
        name: str,
        *,
        backend: InferenceBackend | None = None,
        gpu: str | None = "RTX 4090",
        vram: int = 24576,
        power_w: float = 0.0,
    ) -> Rig:
        gpus = [(gpu, vram)] if gpu else []
        config = AgentConfig(
            "127.0.0.1", self.pool.port or 0, f"{name}.w", rig_id=name, gpus=gpus, duty=0.2, power_w=power_w
        )
        agent = RigAgent(config, backend or self.backend)
        scope = trio.CancelScope()

        async def run(task_status: trio.TaskStatus[RigAgent] = trio.TASK_STATUS_IGNORED) -> None:
            with scope:
                await agent.run(task_status=task_status)

        await self.nursery.start(run)
        return Rig(agent, scope)

    async def wait_jobs(self, job_ids: list[str], timeout: float = 30) -> list[dict[str, Any]]:
        with trio.fail_after(timeout):
            while True:
                results = [await self.leases.job(j) for j in job_ids]
                if all(r["status"] == "done" for r in results):
                    return results
                await trio.sleep(0.05)


@asynccontextmanager
async def open_site(tmp_path: Path, **config: Any) -> AsyncIterator[Site]:
    cfg = PoolConfig(
        host="127.0.0.1",
        port=0,
        api_port=None,
        data_dir=str(tmp_path / "pool"),
        start_difficulty=0.0005,
        embedded_difficulty=1.0,
        share_interval=2.0,
        lease_drain_timeout=5,
        lease_return_timeout=5,
        **config,
    )
    backend = MiniLMBackend()
    await backend.start()
    async with open_app(cfg) as app, trio.open_nursery() as nursery:
        await nursery.start(app.run)
        assert app.leases is not None and app.power is not None  # a lone pool, not a shared lease plane
        yield Site(app.pool, app.leases, nursery, backend, app.power)
        nursery.cancel_scope.cancel()
    await backend.close()
