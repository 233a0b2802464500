"""The lease service across a restart: leases, stints, rigs and accounting come back from the store.

A "crash" here cancels the service's task: what survives is what the store holds, exactly as after
kill -9 (the end-to-end test in tests/e2e_lease kills a real process). Trio's autojump clock runs
the outage; the store and the queue are real SQLite files.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio
import trio.testing

from stratumkit.lease.errors import Unavailable
from stratumkit.lease.service import LeaseService
from stratumkit.lease.sqlite_store import SqliteLeaseStore, open_sqlite_lease_store
from stratumkit.protocol import rig as wire
from stratumkit.queue.sqlite import SqliteQueueEngine
from tests.lease.test_ids import ULID
from tests.lease.test_service import LEASE, FakeRig, call, registration, serving_rig


@pytest.fixture
def path(tmp_path: Path) -> Path:
    """The lease store's file, shared by the processes of one test."""
    return tmp_path / "leases.sqlite"


@asynccontextmanager
async def running(
    queue: SqliteQueueEngine, path: Path, resume_grace_s: float = 60.0
) -> AsyncIterator[tuple[LeaseService, SqliteLeaseStore]]:
    """A service on its own store engine (one per process), cancelled (crashed) on exit."""
    async with open_sqlite_lease_store(path, offload=False) as store, trio.open_nursery() as own:
        service = LeaseService(queue, store=store, resume_grace_s=resume_grace_s)
        await own.start(service.run)
        yield service, store
        own.cancel_scope.cancel()


async def test_a_serving_lease_survives_a_crash_and_its_rig_resumes_it(
    queue: SqliteQueueEngine, path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with running(queue, path) as (service, _):
        rig, divert = await serving_rig(service)
        lease_id = divert.lease_id
        assert ULID.fullmatch(lease_id)
        job_id = await service.enqueue("q", {"n": 1})
        (held,) = wire.ClaimReply.from_result(await call(service, rig, wire.JobClaim(divert.token))).jobs
        assert held.job_id == job_id
        await trio.sleep(10.0)
        before = service.lease_view(lease_id)
        assert service.persister is not None
        await service.persister.flush()
    await trio.sleep(100.0)  # the outage: the pool is down, its rig's connection is gone

    async with running(queue, path) as (service, _):
        view = service.lease_view(lease_id)
        assert view["state"] == "serving" and view["rigs"][0]["phase"] == "serving"
        assert view["remaining_s"] == pytest.approx(before["remaining_s"], abs=0.5)  # the outage is not lease time
        assert view["usage"]["gpu_seconds"] == pytest.approx(before["usage"]["gpu_seconds"], abs=0.5)  # nor billed
        (listed,) = service.rigs()
        assert listed["rig_id"] == "rig-a" and listed["connected"] is False and listed["lease_id"] == lease_id

        back = FakeRig()
        await call(service, back, registration(resume_token=divert.token))
        again = back.last(wire.LeaseDivert)
        assert (again.lease_id, again.token) == (lease_id, divert.token)  # the same stint, sent again
        assert await call(service, back, wire.LeaseServing(divert.token)) is True
        # the job the old connection held went back at once, not after its visibility timeout
        (granted,) = wire.ClaimReply.from_result(await call(service, back, wire.JobClaim(divert.token))).jobs
        assert (granted.job_id, granted.deliveries) == (job_id, 2)
        assert await call(service, back, wire.JobResult(job_id, {"ok": True})) is True
        done = await service.job(job_id)
        assert done["status"] == "done" and done["deliveries"] == 2
        assert service.lease_view(lease_id)["usage"]["jobs_done"] == 1

        # a new lease in the new process gets a new id
        other = FakeRig(worker="rig-b.w")
        await call(service, other, registration(rig_id="rig-b"))
        second = await service.create_lease(dict(LEASE))
        assert ULID.fullmatch(second["lease_id"]) and second["lease_id"] != lease_id
        assert [v["lease_id"] for v in service.list_leases()] == [lease_id, second["lease_id"]]


async def test_a_rig_that_does_not_resume_is_released_after_the_grace(
    queue: SqliteQueueEngine, path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with running(queue, path) as (service, _):
        lease_id = (await serving_rig(service))[1].lease_id
        await trio.sleep(10.0)
        assert service.persister is not None
        await service.persister.flush()
        billed = service.lease_view(lease_id)["usage"]["gpu_seconds"]
    async with running(queue, path, resume_grace_s=5.0) as (service, _):
        await trio.sleep(4.0)
        assert service.lease_view(lease_id)["state"] == "serving"
        await trio.sleep(2.0)
        view = service.lease_view(lease_id)
        assert view["state"] == "failed" and view["rigs"][0]["phase"] == "lost"
        assert view["usage"]["gpu_seconds"] == pytest.approx(billed, abs=0.1)  # not the 5 s it did not come back in
        # a rig coming back with no token now is a fresh, idle rig
        await call(service, FakeRig(), registration())
        assert service.rigs()[0]["connected"] is True and service.rigs()[0]["lease_id"] is None


async def test_a_granted_lease_is_saved_before_the_reply(queue: SqliteQueueEngine, path: Path) -> None:
    async with running(queue, path) as (service, _):
        await call(service, FakeRig(), registration())
        lease_id = (await service.create_lease(dict(LEASE)))["lease_id"]
        async with open_sqlite_lease_store(path) as other:  # as a restarted process would read it
            stored = await other.load()
        assert stored is not None and [lease["lease_id"] for lease in stored.snapshot["leases"]] == [lease_id]


async def test_shutdown_keeps_stints_that_connections_closing_would_end(queue: SqliteQueueEngine, path: Path) -> None:
    async with running(queue, path) as (service, _):
        rig, divert = await serving_rig(service)
        lease_id = divert.lease_id
        await service.freeze()
        await service.on_closed(rig)  # the pool closing its connections as it stops
    async with running(queue, path) as (service, _):
        assert service.lease_view(lease_id)["state"] == "serving"
        assert service.lease_view(lease_id)["rigs"][0]["phase"] == "serving"


async def test_a_store_that_fails_answers_unavailable(queue: SqliteQueueEngine, path: Path) -> None:
    async with running(queue, path) as (service, store):
        await call(service, FakeRig(), registration())
        store.close()  # the database goes away under the service
        with pytest.raises(Unavailable, match="not saved"):
            await service.create_lease(dict(LEASE))


async def test_issued_integrator_tokens_survive_a_restart(queue: SqliteQueueEngine, path: Path) -> None:
    async with running(queue, path) as (service, _):
        token = await service.issue_token("acme")
        assert service.integrator(token) == "acme" and service.integrator("guess") is None
    async with running(queue, path) as (service, store):
        assert service.integrator(token) == "acme"
        assert token not in str(await store.integrators())  # only its digest is kept


async def test_a_lease_lists_its_jobs_with_their_times_across_a_restart(queue: SqliteQueueEngine, path: Path) -> None:
    async with running(queue, path) as (service, _):
        rig, divert = await serving_rig(service)
        done, pending = await service.enqueue("q", {"n": 1}), await service.enqueue("q", {"n": 2})
        await service.enqueue("other", {"n": 3})  # another queue: not this lease's
        claimed = wire.ClaimReply.from_result(await call(service, rig, wire.JobClaim(divert.token, 2))).jobs
        assert [job.job_id for job in claimed] == [done, pending]
        await call(service, rig, wire.JobResult(done, {"data": []}))
        listed = await service.lease_jobs(divert.lease_id)
        assert service.persister is not None
        await service.persister.flush()
    assert [(j["job_id"], j["status"], j["rig"]) for j in listed] == [
        (done, "done", "rig-a"),
        (pending, "pending", "rig-a"),
    ]
    assert listed[0]["claimed_at"] <= listed[0]["finished_at"] and listed[1]["finished_at"] is None
    async with running(queue, path) as (service, _):
        again = await service.lease_jobs(divert.lease_id)
        assert [(j["job_id"], j["claimed_at"], j["finished_at"]) for j in again] == [
            (j["job_id"], j["claimed_at"], j["finished_at"]) for j in listed
        ]
        assert await service.lease_jobs("lease-unknown") == []


async def test_a_shutdown_does_not_hang_on_a_writer_that_never_started(
    queue: SqliteQueueEngine, path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_sqlite_lease_store(path, offload=False) as store:
        service = LeaseService(queue, store=store)  # never run: its writer is not there
        assert service.persister is not None
        service.persister.mark()
        with trio.fail_after(10):
            await service.freeze()
        assert service.persister.frozen
