"""Fixtures: a NodeRPC of the first regtest node per test (the nodes: tests/conftest.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from stratumkit.jobs.rpc import NodeRPC

from .regtest import RegtestNetwork


@pytest.fixture
async def rpc(healthy_regtest: RegtestNetwork) -> AsyncIterator[NodeRPC]:
    async with healthy_regtest.rpc as client:
        yield client
