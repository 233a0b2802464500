"""Builders shared by the lease tests, as fixtures (robust to any pytest import mode)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import trio

from stratumkit.lease import GPU, LeaseSpec, RigCapabilities, Selector
from stratumkit.lease.service import LeaseService
from stratumkit.queue.sqlite import SqliteQueueEngine, open_sqlite_queue
from tests.queue.conftest import private_redis_server

__all__ = ["private_redis_server"]  # a redis-server of the test's own, shared with the queue tests


def make_caps(
    gpus: int = 1,
    *,
    gpu_model: str = "RTX 4090",
    vram_mb: int = 24576,
    serves: tuple[str, ...] = ("llama-3-8b",),
    hashrate: float = 1e9,
    power_w: float = 300.0,
) -> RigCapabilities:
    return RigCapabilities(
        gpus=tuple(GPU(gpu_model, vram_mb) for _ in range(gpus)),
        models=serves,
        hashrate=hashrate,
        power_w=power_w,
    )


def make_spec(
    count: int = 1,
    duration_s: float = 100.0,
    *,
    queue: str = "q",
    priority: int = 0,
    **selector: Any,
) -> LeaseSpec:
    return LeaseSpec(Selector(count, **selector), queue, duration_s, priority=priority)


@pytest.fixture
def caps() -> Callable[..., RigCapabilities]:
    return make_caps


@pytest.fixture
def spec() -> Callable[..., LeaseSpec]:
    return make_spec


@pytest.fixture
async def queue(tmp_path: Path) -> AsyncIterator[SqliteQueueEngine]:
    # offload=False: no worker threads, so trio's autojump clock sees every wait the service does
    async with open_sqlite_queue(tmp_path / "queue.db", offload=False) as engine:
        yield engine


@pytest.fixture
async def service(queue: SqliteQueueEngine, nursery: trio.Nursery) -> LeaseService:
    svc = LeaseService(queue, drain_timeout_s=5.0, return_timeout_s=5.0)
    await nursery.start(svc.run)
    return svc
