"""Fixtures: one behavioural suite, run against every queue engine.

`harness` is parametrized over the engines. Each harness opens engines on one shared store (a
SQLite file, or a key prefix on a private redis-server) and moves that engine's clock forward:
the SQLite engine gets a manual clock (no waiting); the Redis engine uses the server's clock, so
its harness really sleeps, with visibility timeouts short enough to keep the suite fast and long
enough (REDIS_TIMEOUT) that a claim a test still holds does not expire on a busy machine between
two calls: a test sleeps 0.6 of it and then heartbeats, so the margin is 0.4 of it.

tests/ is a package, so this directory imports as `tests.queue` and never shadows the standard
library's `queue`.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import trio

from stratumkit.queue.engine import QueueEngine
from stratumkit.queue.redis import open_redis_queue
from stratumkit.queue.sqlite import open_sqlite_queue

from .queue_harness import Harness, ManualClock, RedisServer, find_redis_server

#: Visibility timeout of the Redis harness, in real seconds of the server's clock.
REDIS_TIMEOUT = 1.5


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(find_redis_server(), tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def private_redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of the test's own, for tests that kill it."""
    directory = tmp_path / "redis"
    directory.mkdir()
    server = RedisServer(find_redis_server(), directory)
    server.start()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "redis"])
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Harness:
    if request.param == "sqlite":
        clock = ManualClock()
        path = tmp_path / "queue.sqlite3"

        async def advance_manual(seconds: float) -> None:
            clock.now += seconds
            await trio.lowlevel.checkpoint()

        return Harness("sqlite", lambda: open_sqlite_queue(path, clock=clock), advance_manual, 30.0)

    server: RedisServer = request.getfixturevalue("redis_server")
    prefix = f"test:{uuid.uuid4().hex}"
    return Harness("redis", lambda: open_redis_queue(server.url, prefix=prefix), trio.sleep, REDIS_TIMEOUT)


@pytest.fixture
async def engine(harness: Harness) -> AsyncIterator[QueueEngine]:
    async with harness.open() as opened:
        yield opened
