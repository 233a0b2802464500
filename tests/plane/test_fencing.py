"""The leader lock and the fenced lease store against a real redis-server.

A leader that was paused past its lock's ttl wakes up to a plane that has a newer leader: its
renewal is refused, and every write it tries on the shared store is refused by the epoch check
(and tells it to step down), while the newer leader's writes go through.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import coredis
import pytest

from stratumkit.lease import LeaseController, LeaseSpec, RigCapabilities, Selector
from stratumkit.lease.redis_store import Fenced, RedisLeaseStore
from stratumkit.lease.store import JobRecord
from stratumkit.plane.keys import PlaneKeys
from stratumkit.plane.lock import PlaneLock
from stratumkit.queue.redis import open_redis_queue
from tests.lease.conftest import make_caps
from tests.queue.queue_harness import RedisServer


@asynccontextmanager
async def redis_client(url: str) -> AsyncIterator[coredis.Redis[bytes]]:
    async with open_redis_queue(url, prefix=f"t:{uuid.uuid4().hex}") as queue:
        yield queue.client


def controller_with(rigs: int, caps: RigCapabilities) -> LeaseController:
    c = LeaseController()
    for n in range(rigs):
        c.register_rig(f"rig-{n}", f"rig-{n}.w", caps, 0.0)
    c.create(LeaseSpec(Selector(rigs), "q", 600.0), 1.0, lease_id="lease-x")
    return c


async def test_a_stale_leader_cannot_write_after_a_newer_one_took_the_plane(
    private_redis_server: RedisServer,
) -> None:
    keys = PlaneKeys(f"p{uuid.uuid4().hex[:8]}")
    async with redis_client(private_redis_server.url) as client:
        old_lock = PlaneLock(client, keys, "fe-1", ttl_s=30.0)
        new_lock = PlaneLock(client, keys, "fe-2", ttl_s=30.0)
        old_epoch = await old_lock.acquire()
        assert old_epoch == 1
        assert await new_lock.acquire() is None  # the lock is held
        assert await old_lock.renew(old_epoch)
        fenced: list[str] = []
        old = RedisLeaseStore(
            client, prefix=keys.store_prefix, fence=(keys.epoch, old_epoch), on_fenced=lambda: fenced.append("old")
        )
        await old.save(controller_with(1, make_caps()).snapshot(2.0), 1000.0)
        await old.touch(1001.0)

        await client.delete([keys.leader])  # the old leader was paused past its ttl: its lock expired
        new_epoch = await new_lock.acquire()
        assert new_epoch == 2
        new = RedisLeaseStore(client, prefix=keys.store_prefix, fence=(keys.epoch, new_epoch))
        newer = controller_with(2, make_caps())
        await new.save(newer.snapshot(3.0), 2000.0)

        # the old leader wakes up: it cannot renew, and none of its writes lands
        assert not await old_lock.renew(old_epoch)
        with pytest.raises(Fenced):
            await old.save(controller_with(1, make_caps()).snapshot(4.0), 3000.0)
        with pytest.raises(Fenced):
            await old.touch(3001.0)
        with pytest.raises(Fenced):
            await old.save_jobs([JobRecord("j1", "lease-x", "rig-0", 5.0)])
        with pytest.raises(Fenced):
            await old.add_integrator("digest", "acme")
        assert fenced == ["old"] * 4
        assert not await old_lock.release(old_epoch)  # nor can it give away the newer leader's lock

        stored = await RedisLeaseStore(client, prefix=keys.store_prefix).load()
        assert stored is not None and stored.saved_at == 2000.0 and stored.alive_at == 2000.0
        assert [r["rig_id"] for r in stored.snapshot["rigs"]] == ["rig-0", "rig-1"]
        assert await new.lease_jobs("lease-x", 10) == []
        assert await new.integrators() == {}
        await new.touch(2001.0)  # the newer leader writes on
        assert await new_lock.renew(new_epoch)
        assert await new_lock.release(new_epoch)
        assert await old_lock.acquire() == 3  # free again: the next holder gets a newer epoch
