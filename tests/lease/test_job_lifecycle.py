"""The job view's times (enqueued, claimed, started, completed) and a dead job's cause, as
integrators read them: from the queue, so they outlive the pool process (a restart is a new
service on a new engine on the same SQLite file or Redis)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import pytest
import trio

from stratumkit.lease.service import LeaseService
from stratumkit.protocol import rig as wire
from stratumkit.queue.engine import QueueEngine
from stratumkit.queue.redis import open_redis_queue
from stratumkit.queue.sqlite import open_sqlite_queue
from tests.lease.test_service import call, serving_rig
from tests.queue.queue_harness import RedisServer

Opener = Callable[[], AbstractAsyncContextManager[QueueEngine]]


async def test_job_view_times(service: LeaseService) -> None:
    rig, divert = await serving_rig(service)
    job_id = await service.enqueue("q", {"kind": "embeddings", "input": "a"})
    pending = await service.job(job_id)
    assert pending["status"] == "pending" and "claimed_at" not in pending and "started_at" not in pending
    await call(service, rig, wire.JobClaim(divert.token, 1))
    claimed = await service.job(job_id)
    assert claimed["status"] == "pending"
    # the rig protocol has no "started" message: a rig starts a job when its claim reply comes
    assert claimed["started_at"] == claimed["claimed_at"] >= pending["enqueued_at"]
    assert await call(service, rig, wire.JobResult(job_id, {"data": []})) is True
    done = await service.job(job_id)
    assert done["status"] == "done"
    assert done["enqueued_at"] <= done["claimed_at"] == done["started_at"] <= done["completed_at"]
    [listed] = await service.lease_jobs(divert.lease_id)
    assert listed["job_id"] == job_id and listed["rig"] == "rig-a"
    assert {"enqueued_at", "claimed_at", "started_at", "completed_at", "finished_at"} <= set(listed)
    assert listed["enqueued_at"] == done["enqueued_at"] and listed["completed_at"] == done["completed_at"]
    assert listed["started_at"] == listed["claimed_at"] and listed["finished_at"] is not None


async def test_a_released_job_shows_its_cause_while_pending(service: LeaseService) -> None:
    rig, divert = await serving_rig(service)
    job_id = await service.enqueue("q", {"n": 1})
    await call(service, rig, wire.JobClaim(divert.token, 1))
    await call(service, rig, wire.JobRelease(job_id, "CUDA out of memory"))
    view = await service.job(job_id)
    assert view["status"] == "pending" and view["last_cause"] == "CUDA out of memory"


@pytest.fixture(params=["sqlite", "redis"])
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Opener:
    if request.param == "sqlite":
        return lambda: open_sqlite_queue(tmp_path / "queue.db", offload=False)
    server: RedisServer = request.getfixturevalue("private_redis_server")
    prefix = f"t:{uuid.uuid4().hex}"
    return lambda: open_redis_queue(server.url, prefix=prefix)


async def running(queue: QueueEngine, nursery: trio.Nursery) -> LeaseService:
    service = LeaseService(queue, drain_timeout_s=5.0, return_timeout_s=5.0)
    await nursery.start(service.run)
    return service


async def test_a_dead_job_keeps_its_cause_across_a_restart(opener: Opener) -> None:
    async with opener() as queue, trio.open_nursery() as nursery:
        service = await running(queue, nursery)
        rig, divert = await serving_rig(service)
        job_id = await service.enqueue("q", {"n": 1})
        await call(service, rig, wire.JobClaim(divert.token, 1))
        await call(service, rig, wire.JobRelease(job_id, "CUDA out of memory"))
        for _ in range(4):  # the rest of the default 5 deliveries, given back without a cause
            [claim] = await queue.claim("q", "someone", 30.0)
            await queue.nack(claim)
        before = await service.job(job_id)
        nursery.cancel_scope.cancel()
    assert before["status"] == "dead" and before["cause"] == "CUDA out of memory"

    async with opener() as queue, trio.open_nursery() as nursery:  # a new pool process
        service = await running(queue, nursery)
        assert service.job_causes == {}
        after = await service.job(job_id)
        nursery.cancel_scope.cancel()
    assert after["status"] == "dead" and after["cause"] == after["last_cause"] == "CUDA out of memory"
    assert (after["reason"], after["deliveries"]) == ("max_deliveries", 5)
    assert after["enqueued_at"] == before["enqueued_at"] and after["claimed_at"] == before["claimed_at"]


async def test_times_survive_a_restart(opener: Opener) -> None:
    async with opener() as queue, trio.open_nursery() as nursery:
        service = await running(queue, nursery)
        rig, divert = await serving_rig(service)
        job_id = await service.enqueue("q", {"n": 1})
        await call(service, rig, wire.JobClaim(divert.token, 1))
        await call(service, rig, wire.JobResult(job_id, {"ok": True}))
        before = await service.job(job_id)
        nursery.cancel_scope.cancel()
    async with opener() as queue, trio.open_nursery() as nursery:
        service = await running(queue, nursery)
        after = await service.job(job_id)
        nursery.cancel_scope.cancel()
    assert after == before
    assert {"enqueued_at", "claimed_at", "started_at", "completed_at"} <= set(after)
