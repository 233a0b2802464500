"""Fixtures: pool processes on the shared regtest nodes (tests/conftest.py), always stopped when a
test ends, whatever its outcome."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import trio

from tests.node.regtest import RegtestNetwork

from .harness import PoolProcess

StartPool = Callable[..., Awaitable[PoolProcess]]


@pytest.fixture
async def start_pool(
    nursery: trio.Nursery,
    tmp_path: Path,
    healthy_regtest: RegtestNetwork,
) -> AsyncIterator[StartPool]:
    """`await start_pool(payout_address=..., solo=..., data_dir=...)`: a pool on node 1."""
    started: list[PoolProcess] = []

    async def start(*, data_dir: Path | None = None, **options: Any) -> PoolProcess:
        pool = await PoolProcess.start(
            nursery,
            data_dir or tmp_path / f"pool-{len(started)}",
            node_url=healthy_regtest.rpc_url,
            **options,
        )
        started.append(pool)
        return pool

    try:
        yield start
    finally:
        with trio.CancelScope(shield=True):
            for pool in started:
                if pool.running:
                    await pool.stop()
