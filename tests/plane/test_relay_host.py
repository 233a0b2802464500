"""A front end's relay and the leader's host joined in memory: what the Redis streams carry,
as direct calls. The rig is the lease tests' recording fake; the lease service is the real one,
on a real SQLite queue and lease store.

- a rig on a front end registers, is diverted and serves a lease decided by the leader;
- a new leader (a new epoch, restored from the store) gets a hello for the rig, which resumes
  its stint with the job it holds, and a request the dead leader never answered; the old
  leader's commands no longer reach the rig;
- a front end that vanished has its rig suspended; the rig resumes its stint through another;
- a leader that lost the plane does not act on its deadlines (no commands, no requeues).
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from stratumkit.lease.errors import Unavailable
from stratumkit.lease.service import LeaseService
from stratumkit.lease.sqlite_store import open_sqlite_lease_store
from stratumkit.plane.host import PlaneHost
from stratumkit.plane.relay import Relay
from stratumkit.protocol import rig as wire
from stratumkit.protocol.events import ExtensionRequest
from stratumkit.queue.engine import NewJob
from stratumkit.queue.sqlite import SqliteQueueEngine, open_sqlite_queue
from stratumkit.session.ports import RigMode
from tests.lease.test_service import FakeRig, registration

LEASE = {"count": 1, "queue": "q", "duration_s": 600}
_ids = itertools.count(1)


class Streams:
    """The plane's streams as calls: relays -> host.dispatch, host -> relay.apply. A host set to
    None is a leader that is gone (what is sent to it is lost)."""

    def __init__(self) -> None:
        self.host: PlaneHost | None = None
        self.relays: dict[str, Relay] = {}
        self.stale: list[tuple[str, dict[str, Any]]] = []

    def relay(self, front_end: str) -> Relay:
        relay = Relay(front_end, self._to_leader)
        self.relays[front_end] = relay
        return relay

    def _to_leader(self, message: dict[str, Any]) -> None:
        if self.host is not None:
            self.host.dispatch(message)

    def to_front_end(self, front_end: str, command: dict[str, Any]) -> None:
        self.relays[front_end].apply(command)

    async def lead(self, nursery: trio.Nursery, service: LeaseService, epoch: int) -> PlaneHost:
        await nursery.start(service.run)
        host = PlaneHost(service, epoch, self.to_front_end)
        await nursery.start(host.run)
        self.host = host
        for relay in self.relays.values():
            relay.new_epoch(epoch)
        await trio.testing.wait_all_tasks_blocked()
        return host


@pytest.fixture
async def queue(tmp_path: Path) -> AsyncIterator[SqliteQueueEngine]:
    async with open_sqlite_queue(tmp_path / "queue.db", offload=False) as engine:
        yield engine


def plane_service(queue: SqliteQueueEngine, store: Any) -> LeaseService:
    service = LeaseService(queue, drain_timeout_s=5.0, return_timeout_s=5.0, resume_grace_s=30.0, store=store)
    service.suspend_moved_rigs = True
    service.defer_restored_requeue = True
    return service


async def send(relay: Relay, rig: FakeRig, msg: Any) -> int:
    """One request of the rig through its front end's relay, carried out everywhere it goes."""
    request_id = next(_ids)
    await relay.handle(rig, ExtensionRequest(request_id, msg.METHOD, msg.to_params()))
    await trio.testing.wait_all_tasks_blocked()
    return request_id


async def call(relay: Relay, rig: FakeRig, msg: Any) -> Any:
    return rig.answer(await send(relay, rig, msg))


async def test_a_rig_on_a_front_end_serves_a_lease_the_leader_decides(
    queue: SqliteQueueEngine, nursery: trio.Nursery
) -> None:
    streams = Streams()
    relay = streams.relay("fe-2")
    service = plane_service(queue, None)
    await streams.lead(nursery, service, epoch=1)
    rig = FakeRig(accepted=3)
    assert await call(relay, rig, registration()) == {"rig_id": "rig-a"}
    assert rig.rig_id == "rig-a"
    (view,) = service.rigs()
    assert view["rig_id"] == "rig-a" and view["accepted_shares"] == 3 and view["connected"]
    relay.on_accepted(rig, 0.0)
    await trio.testing.wait_all_tasks_blocked()
    assert service.rigs()[0]["accepted_shares"] == 4

    lease = await service.create_lease(dict(LEASE))
    await trio.testing.wait_all_tasks_blocked()
    divert = rig.last(wire.LeaseDivert)
    assert divert.lease_id == lease["lease_id"] and rig.mode is RigMode.DIVERTED
    assert await call(relay, rig, wire.LeaseServing(divert.token)) is True
    assert service.lease_view(lease["lease_id"])["state"] == "serving"

    await relay.on_closed(rig)
    await trio.testing.wait_all_tasks_blocked()
    assert not service.rigs()[0]["connected"]


async def test_a_new_leader_takes_over_the_rig_its_job_and_what_was_unanswered(
    queue: SqliteQueueEngine, nursery: trio.Nursery, tmp_path: Path
) -> None:
    streams = Streams()
    relay = streams.relay("fe-2")
    async with open_sqlite_lease_store(tmp_path / "old.sqlite", offload=False) as old_store:
        old = plane_service(queue, old_store)
        old_host = await streams.lead(nursery, old, epoch=1)
        rig = FakeRig()
        await call(relay, rig, registration())
        lease_id = (await old.create_lease(dict(LEASE)))["lease_id"]
        await trio.testing.wait_all_tasks_blocked()
        divert = rig.last(wire.LeaseDivert)
        assert await call(relay, rig, wire.LeaseServing(divert.token)) is True
        await queue.enqueue_many("q", [NewJob({"n": 1}), NewJob({"n": 2})])
        (granted,) = await call(relay, rig, wire.JobClaim(divert.token, max_jobs=1))
        assert old.persister is not None
        await old.persister.flush()
        snapshot = await old_store.load()

    # the old leader is gone; a request sent meanwhile is lost with it
    streams.host = None
    heartbeat = await send(relay, rig, wire.JobHeartbeat(granted["job_id"]))
    assert heartbeat not in rig.replies and heartbeat not in rig.errors

    async with open_sqlite_lease_store(tmp_path / "new.sqlite", offload=False) as new_store:
        assert snapshot is not None
        await new_store.save(snapshot.snapshot, snapshot.saved_at)  # the shared store, as it was
        new = plane_service(queue, new_store)
        notified = len(rig.notifications)
        await streams.lead(nursery, new, epoch=2)
        # the hello resumed the stint under its token: the divert is sent again, nothing else
        (method, params), *more = rig.notifications[notified:]
        again = wire.LeaseDivert.from_params(params)
        assert method == wire.LeaseDivert.METHOD and more == []
        assert (again.lease_id, again.token) == (lease_id, divert.token)
        view = new.lease_view(lease_id)
        assert view["state"] == "serving" and [r["phase"] for r in view["rigs"]] == ["serving"]
        assert new.rigs()[0]["connected"] and new.rigs()[0]["jobs_in_flight"] == 1
        assert rig.answer(heartbeat) is True  # sent again to the new leader, answered once
        # the job the rig was running is still its own: its result is recorded
        assert await call(relay, rig, wire.JobResult(granted["job_id"], {"ok": True})) is True
        assert new.lease_view(lease_id)["usage"]["jobs_done"] == 1

        # the old leader, woken up, cannot touch the rig any more (nor save: its store is gone,
        # as a fenced one would refuse it)
        before = len(rig.notifications)
        with pytest.raises(Unavailable):
            await old_host.service.cancel_lease(lease_id)
        await trio.testing.wait_all_tasks_blocked()
        assert len(rig.notifications) == before and rig.mode is RigMode.DIVERTED


async def test_a_vanished_front_end_suspends_its_rig_which_resumes_through_another(
    queue: SqliteQueueEngine, nursery: trio.Nursery
) -> None:
    streams = Streams()
    first, second = streams.relay("fe-1"), streams.relay("fe-2")
    service = plane_service(queue, None)
    host = await streams.lead(nursery, service, epoch=1)
    rig = FakeRig()
    await call(first, rig, registration())
    lease_id = (await service.create_lease(dict(LEASE)))["lease_id"]
    await trio.testing.wait_all_tasks_blocked()
    divert = rig.last(wire.LeaseDivert)
    assert await call(first, rig, wire.LeaseServing(divert.token)) is True

    assert host.suspend("fe-1", keep=first.boot) == 0  # alive, under the boot that has the rig
    assert host.suspend("fe-1", keep="restarted") == 1  # restarted within the ttl (or gone: None)
    await trio.testing.wait_all_tasks_blocked()
    (view,) = service.rigs()
    assert not view["connected"] and view["lease_id"] == lease_id  # still bound: it may resume

    again = FakeRig()  # the agent failed over to the other front end
    await call(second, again, registration(resume_token=divert.token))
    assert again.last(wire.LeaseDivert).token == divert.token
    lease = service.lease_view(lease_id)
    assert lease["state"] == "serving" and [r["phase"] for r in lease["rigs"]] == ["serving"]
    assert service.rigs()[0]["connected"]


async def test_a_leader_that_lost_the_plane_does_not_act_on_its_deadlines(
    queue: SqliteQueueEngine, nursery: trio.Nursery, mock_clock: trio.testing.MockClock
) -> None:
    streams = Streams()
    relay = streams.relay("fe-2")
    service = plane_service(queue, None)
    leading = True

    async def still_leading() -> bool:
        return leading

    service.still_leading = still_leading
    await streams.lead(nursery, service, epoch=1)
    rig = FakeRig()
    await call(relay, rig, registration())
    lease_id = (await service.create_lease(dict(LEASE)))["lease_id"]
    await trio.testing.wait_all_tasks_blocked()
    rig.last(wire.LeaseDivert)
    leading = False  # a newer leader took the plane while this one was paused
    mock_clock.jump(60.0)  # far past the drain timeout (5 s)
    await trio.testing.wait_all_tasks_blocked()
    assert [method for method, _ in rig.notifications] == [wire.LeaseDivert.METHOD]  # no return sent
    assert [r["phase"] for r in service.lease_view(lease_id)["rigs"]] == ["draining"]
