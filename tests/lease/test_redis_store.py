"""The Redis lease store against a real redis-server: the same promises as the SQLite store."""

from __future__ import annotations

import gc
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest

from stratumkit.lease import LeaseController, LeaseSpec, RigCapabilities
from stratumkit.lease.redis_store import RedisLeaseStore
from stratumkit.lease.store import JobRecord, LeaseStoreError
from stratumkit.queue.redis import open_redis_queue
from tests.lease.test_sqlite_store import serving_controller
from tests.queue.queue_harness import RedisServer

Caps = Callable[..., RigCapabilities]
Spec = Callable[..., LeaseSpec]


@asynccontextmanager
async def open_redis_lease_store(url: str, *, prefix: str) -> AsyncIterator[RedisLeaseStore]:
    """The store on a Redis queue engine's connections, as the pool opens it."""
    async with open_redis_queue(url, prefix=prefix) as queue:
        yield RedisLeaseStore(queue.client, prefix=prefix + ":leases")


async def test_save_load_and_a_kill_9_of_redis(private_redis_server: RedisServer, caps: Caps, spec: Spec) -> None:
    prefix = f"t:{uuid.uuid4().hex}"
    c = serving_controller(caps, spec)
    async with open_redis_lease_store(private_redis_server.url, prefix=prefix) as store:
        assert await store.load() is None
        await store.save(c.snapshot(10.0), 1000.0)
        c.record_job("lease-x", "a")
        await store.save(c.snapshot(11.0), 1001.0)  # only the changed lease row is sent
        await store.touch(1002.5)
        await store.add_integrator("d1", "acme")
        await store.save_jobs([JobRecord("j1", "lease-x", "a", 5.0), JobRecord("j2", "lease-x", "b", 6.0)])
        await store.save_jobs([JobRecord("j1", "lease-x", "a", 5.0, 7.0)])  # finished: same place
    private_redis_server.kill()  # kill -9: appendonly with an fsync per write keeps every reply it gave
    private_redis_server.start()
    async with open_redis_lease_store(private_redis_server.url, prefix=prefix) as store:
        stored = await store.load()
        assert stored is not None and (stored.saved_at, stored.alive_at) == (1001.0, 1002.5)
        restored = LeaseController.restore(stored.snapshot, 11.0)
        assert restored.leases() == c.leases() and [r.rig_id for r in restored.rigs()] == ["a", "b", "c"]
        assert await store.integrators() == {"d1": "acme"}
        assert await store.lease_jobs("lease-x", 10) == [
            JobRecord("j1", "lease-x", "a", 5.0, 7.0),
            JobRecord("j2", "lease-x", "b", 6.0),
        ]
        fresh = LeaseController()
        await store.save(fresh.snapshot(0.0), 2000.0)  # a new engine rewrites everything
        again = await store.load()
        assert again is not None and again.snapshot["leases"] == [] and again.snapshot["rigs"] == []


# coredis leaves anyio memory streams unclosed when a connection attempt fails (see
# tests/queue/test_queue_redis.py); collected here so the warning stays with this test.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_a_redis_that_is_gone_is_a_store_error(private_redis_server: RedisServer) -> None:
    async with open_redis_lease_store(private_redis_server.url, prefix="gone") as store:
        private_redis_server.stop()
        with pytest.raises(LeaseStoreError, match="redis"):
            await store.touch(1.0)
        private_redis_server.start()
    gc.collect()
