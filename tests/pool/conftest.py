"""Fixtures for the pool tests: a real pool (embedded chain, loopback TCP, port 0) per test.

`make_pool(**overrides)` starts one in the test's nursery with `helpers.pool_config` defaults
(share difficulty 1e-6, vardiff held still) plus the overrides; it stops when the test ends.
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import trio

from stratumkit.server.pool import Pool

from .helpers import pool_config, start_pool

MakePool = Callable[..., Awaitable[Pool]]


@pytest.fixture
async def make_pool(nursery: trio.Nursery, tmp_path: Path) -> MakePool:
    numbers = itertools.count()

    async def make(**overrides: Any) -> Pool:
        data_dir = overrides.pop("data_dir", None) or tmp_path / f"pool-{next(numbers)}"
        return await start_pool(nursery, pool_config(Path(data_dir), **overrides))

    return make


@pytest.fixture
async def pool(make_pool: MakePool) -> Pool:
    return await make_pool()
