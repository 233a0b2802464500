"""The lease service through its extension port: a fake connection that records what the service
does to it, the real controller and the real SQLite queue."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import pytest
import trio

from stratumkit.lease.service import CLAIM_POLL_S, FIRST_SHARE_AFTER_RETURN_S, LeaseService
from stratumkit.protocol import rig as wire
from stratumkit.protocol.events import ExtensionRequest
from stratumkit.protocol.jsonrpc import RequestId
from stratumkit.queue.sqlite import SqliteQueueEngine
from stratumkit.session.ports import RigConnection, RigMode

#: Declared hashrate: a share at difficulty 1 every 0.1 s, so the quick difficulty is exactly 1.
HASHRATE = 2**32 / FIRST_SHARE_AFTER_RETURN_S
LEASE = {"count": 1, "queue": "q", "duration_s": 60}

_ids = itertools.count(1)


class Refused(Exception):
    """The service answered the request with an error."""


@dataclass
class FakeRig:
    """A RigConnection that records every call the service makes on it."""

    worker: str | None = "rig-a.w"
    peer: str = "192.0.2.1:4000"
    rig_id: str | None = None
    accepted: int = 0
    mode: RigMode = RigMode.MINING
    replies: dict[RequestId, tuple[float, Any]] = field(default_factory=dict)
    errors: dict[RequestId, str] = field(default_factory=dict)
    notifications: list[tuple[str, Any]] = field(default_factory=list)
    modes: list[tuple[RigMode, float | None]] = field(default_factory=list)
    dropped: str | None = None

    def register_rig(self, rig_id: str) -> None:
        self.rig_id = rig_id

    def set_mode(self, mode: RigMode, now: float, *, difficulty: float | None = None) -> None:
        """`mode` is the latest of `modes`, which the tests read."""
        self.mode = mode
        self.modes.append((mode, difficulty))

    def respond(self, request_id: RequestId, result: Any) -> None:
        assert request_id not in self.replies and request_id not in self.errors, "answered twice"
        self.replies[request_id] = (trio.current_time(), result)

    def respond_error(self, request_id: RequestId, message: str) -> None:
        assert request_id not in self.replies and request_id not in self.errors, "answered twice"
        self.errors[request_id] = message

    def notify(self, method: str, params: Any) -> None:
        self.notifications.append((method, params))

    def drop(self, reason: str) -> None:
        self.dropped = reason

    def answer(self, request_id: RequestId) -> Any:
        if request_id in self.errors:
            raise Refused(self.errors[request_id])
        return self.replies[request_id][1]

    def last(self, kind: type[wire.LeaseDivert] | type[wire.LeaseReturn]) -> Any:
        for method, params in reversed(self.notifications):
            if method == kind.METHOD:
                return kind.from_params(params)
        raise AssertionError(f"no {kind.METHOD} sent")


def assert_mining_quickly(rig: FakeRig) -> None:
    """The rig was sent work at the difficulty that makes its first share come at once."""
    mode, difficulty = rig.modes[-1]
    assert mode is RigMode.MINING and difficulty is not None and abs(difficulty - 1.0) < 1e-9


def _conn(rig: FakeRig) -> RigConnection:
    return rig  # the fake satisfies the port (mypy checks it here)


async def send(service: LeaseService, rig: FakeRig, method: str, params: Any) -> RequestId:
    """Hand the service one request; returns its id (the answer may come later)."""
    request_id = next(_ids)
    await service.handle(_conn(rig), ExtensionRequest(request_id, method, params))
    return request_id


async def call(service: LeaseService, rig: FakeRig, msg: Any) -> Any:
    request_id = await send(service, rig, msg.METHOD, msg.to_params())
    return rig.answer(request_id)


def registration(rig_id: str | None = "rig-a", hashrate: float = HASHRATE, **more: Any) -> wire.RigRegister:
    return wire.RigRegister(
        gpus=(wire.GpuInfo("RTX 4090", 24576),), hashrate=hashrate, rig_id=rig_id, power_w=300.0, **more
    )


async def serving_rig(service: LeaseService, rig: FakeRig | None = None) -> tuple[FakeRig, wire.LeaseDivert]:
    """A registered rig, diverted to a new lease and serving it."""
    rig = rig or FakeRig()
    await call(service, rig, registration())
    await service.create_lease(dict(LEASE))
    divert = rig.last(wire.LeaseDivert)
    assert await call(service, rig, wire.LeaseServing(divert.token)) is True
    return rig, divert


# ---------------------------------------------------------------------------- registration


async def test_register_marks_the_connection_a_rig(service: LeaseService) -> None:
    rig = FakeRig(accepted=7)
    assert service.methods == frozenset(wire.REQUESTS) and len(service.methods) == 7
    reply = await call(service, rig, registration())
    assert wire.RegisterReply.from_result(reply) == wire.RegisterReply("rig-a")
    assert rig.rig_id == "rig-a" and rig.modes == []
    (view,) = service.rigs()
    assert view["rig_id"] == "rig-a" and view["worker"] == "rig-a.w" and view["mode"] == "mining"
    assert view["accepted_shares"] == 7 and view["jobs_in_flight"] == 0
    assert view["capabilities"]["gpus"] == [{"model": "RTX 4090", "vram_mb": 24576}]


async def test_rig_id_defaults_to_the_worker(service: LeaseService) -> None:
    rig = FakeRig(worker="farm.rig7")
    assert await call(service, rig, registration(rig_id=None)) == {"rig_id": "farm.rig7"}


@pytest.mark.parametrize(
    ("rig", "params", "message"),
    [
        (FakeRig(worker=None), registration().to_params(), "authorize a worker"),
        (FakeRig(), [{"gpus": [], "hashrate": 1.0}], "at least one GPU"),
        (FakeRig(), [{"gpus": [{"model": "A", "vram_mb": 1}], "hashrate": True}], "hashrate"),
        (FakeRig(), [], "params"),
    ],
)
async def test_registration_refused(service: LeaseService, rig: FakeRig, params: Any, message: str) -> None:
    with pytest.raises(Refused, match=message):
        rig.answer(await send(service, rig, wire.RigRegister.METHOD, params))
    assert rig.rig_id is None and service.rigs() == []


async def test_unregistered_connection_and_unknown_method(service: LeaseService) -> None:
    rig = FakeRig()
    with pytest.raises(Refused, match="not a registered rig"):
        await call(service, rig, wire.JobClaim(1))
    with pytest.raises(Refused, match="unknown method"):
        rig.answer(await send(service, rig, "stratumkit.rig.dance", []))
    await call(service, rig, registration())
    with pytest.raises(Refused, match="already rig"):
        await call(service, rig, registration(rig_id="rig-b"))


async def test_second_registration_drops_the_old_connection(service: LeaseService) -> None:
    old, divert = await serving_rig(service)
    new = FakeRig()
    await call(service, new, registration())
    assert old.dropped is not None and new.dropped is None
    assert service.links["rig-a"].conn is new
    # the old connection's end, reported later, does not touch the new one
    await service.on_closed(_conn(old))
    assert service.links["rig-a"].conn is new and service.controller.rig("rig-a").connected
    # the stint ended with the old connection (a live disconnect): the lease lost its only rig
    view = service.lease_view(divert.lease_id)
    assert view["state"] == "failed" and view["rigs"][0]["phase"] == "lost"
    assert new.notifications == [] and new.mode is RigMode.MINING
    assert service.controller.rig("rig-a").lease_id is None


# ---------------------------------------------------------------------------- the lease cycle


async def test_divert_serve_claim_result_return(
    service: LeaseService, queue: SqliteQueueEngine, autojump_clock: trio.testing.MockClock
) -> None:
    rig = FakeRig()
    await call(service, rig, registration())
    lease = await service.create_lease(dict(LEASE))
    # divert: no more work, and a notification carrying the lease and a token
    assert rig.mode is RigMode.DIVERTED and rig.modes == [(RigMode.DIVERTED, None)]
    divert = rig.last(wire.LeaseDivert)
    assert (divert.lease_id, divert.queue) == (lease["lease_id"], "q") and divert.token >= 1

    await trio.sleep(0.5)
    assert await call(service, rig, wire.LeaseServing(divert.token)) is True
    assert service.lease_view(lease["lease_id"])["state"] == "serving"
    assert service.stats()["divert_latency_s"] == pytest.approx({"n": 1, "p50": 0.5, "p99": 0.5, "max": 0.5})

    # a claim that finds nothing waits on its own task: handle returns at once, unanswered
    waiting = await send(service, rig, wire.JobClaim.METHOD, wire.JobClaim(divert.token, 1, 30.0, 5.0).to_params())
    assert waiting not in rig.replies and waiting not in rig.errors
    await trio.sleep(1.0)
    assert waiting not in rig.replies
    # the rig's other requests go on meanwhile
    with pytest.raises(Refused, match="no claimed job"):
        await call(service, rig, wire.JobHeartbeat("nope"))
    enqueued_at = trio.current_time()
    job_id = await service.enqueue("q", {"kind": "embeddings", "input": "hi"})
    await trio.sleep(CLAIM_POLL_S)
    answered_at, result = rig.replies[waiting]
    assert answered_at == enqueued_at  # woken by the enqueue, not by the next poll
    (granted,) = wire.ClaimReply.from_result(result).jobs
    assert granted == wire.GrantedJob(job_id, {"kind": "embeddings", "input": "hi"}, 1)
    assert service.rigs()[0]["jobs_in_flight"] == 1

    assert await call(service, rig, wire.JobHeartbeat(job_id)) is True
    assert await call(service, rig, wire.JobResult(job_id, {"data": [1, 2]})) is True
    assert (await service.job(job_id))["status"] == "done"
    assert service.lease_view(lease["lease_id"])["usage"]["jobs_done"] == 1

    # return: a notification with a new token; the acknowledgement brings work back, quickly
    await service.cancel_lease(lease["lease_id"])
    back = rig.last(wire.LeaseReturn)
    assert back.lease_id == lease["lease_id"] and back.token > divert.token
    assert rig.mode is RigMode.DIVERTED  # no work until the agent says it is back
    await trio.sleep(0.25)
    assert await call(service, rig, wire.LeaseReturned(back.token)) is True
    assert_mining_quickly(rig)
    assert service.lease_view(lease["lease_id"])["state"] == "cancelled"
    assert service.stats()["return_latency_s"] is None  # closed by a share, not by the ack

    await trio.sleep(0.25)
    service.on_accepted(_conn(rig), trio.current_time())
    service.on_accepted(_conn(rig), trio.current_time() + 9)  # later shares measure nothing
    assert service.stats()["return_latency_s"] == pytest.approx({"n": 1, "p50": 0.5, "p99": 0.5, "max": 0.5})


async def test_stale_tokens_are_refused_by_the_controller(service: LeaseService) -> None:
    rig = FakeRig()
    await call(service, rig, registration())
    lease = await service.create_lease(dict(LEASE))
    divert = rig.last(wire.LeaseDivert)
    with pytest.raises(Refused, match="draining"):  # not serving yet
        await call(service, rig, wire.JobClaim(divert.token))
    with pytest.raises(Refused, match="stale"):
        await call(service, rig, wire.LeaseServing(divert.token + 1))
    await call(service, rig, wire.LeaseServing(divert.token))
    with pytest.raises(Refused, match="stale"):
        await call(service, rig, wire.JobClaim(divert.token + 1))
    assert await call(service, rig, wire.JobClaim(divert.token)) == []
    await service.cancel_lease(lease["lease_id"])
    with pytest.raises(Refused, match="stale"):  # sent back: the divert token no longer claims
        await call(service, rig, wire.JobClaim(divert.token))
    with pytest.raises(Refused, match="stale"):
        await call(service, rig, wire.LeaseReturned(divert.token))


async def test_waiting_claim_times_out_empty(service: LeaseService, autojump_clock: trio.testing.MockClock) -> None:
    rig, divert = await serving_rig(service)
    start = trio.current_time()
    waiting = await send(service, rig, wire.JobClaim.METHOD, [divert.token, 1, 30.0, 2.0])
    await trio.sleep(3.0)
    answered_at, result = rig.replies[waiting]
    assert result == [] and answered_at == pytest.approx(start + 2.0)


async def test_waiting_claim_ends_when_the_rig_is_sent_back(
    service: LeaseService, autojump_clock: trio.testing.MockClock
) -> None:
    rig, divert = await serving_rig(service)
    waiting = await send(service, rig, wire.JobClaim.METHOD, [divert.token, 1, 30.0, 10.0])
    await trio.sleep(1.0)
    await service.cancel_lease(divert.lease_id)
    sent_back = trio.current_time()
    await service.enqueue("q", {"n": 1})  # too late for this lease
    await trio.sleep(1.0)
    answered_at, result = rig.replies[waiting]
    assert result == [] and answered_at - sent_back <= CLAIM_POLL_S


async def test_release_gives_the_job_back(service: LeaseService, queue: SqliteQueueEngine) -> None:
    rig, divert = await serving_rig(service)
    job_id = await service.enqueue("q", {"n": 1})
    (granted,) = wire.ClaimReply.from_result(await call(service, rig, wire.JobClaim(divert.token))).jobs
    assert await call(service, rig, wire.JobRelease(granted.job_id)) is True
    (again,) = await queue.claim("q", "someone-else", 30.0)
    assert again.job_id == job_id and again.deliveries == 2


async def test_disconnect_requeues_claims(service: LeaseService, queue: SqliteQueueEngine) -> None:
    rig, divert = await serving_rig(service)
    job_id = await service.enqueue("q", {"n": 1})
    await call(service, rig, wire.JobClaim(divert.token))
    assert await queue.claim("q", "someone-else", 30.0) == []  # held by the rig
    await service.on_closed(_conn(rig))
    (again,) = await queue.claim("q", "someone-else", 30.0)
    assert again.job_id == job_id
    assert not service.controller.rig("rig-a").connected and "rig-a" not in service.links
    assert service.lease_view(divert.lease_id)["rigs"][0]["phase"] == "lost"


async def test_unacknowledged_return_times_out_into_mining(
    service: LeaseService, autojump_clock: trio.testing.MockClock
) -> None:
    rig, divert = await serving_rig(service)
    await service.cancel_lease(divert.lease_id)
    assert rig.mode is RigMode.DIVERTED
    await trio.sleep(6.0)  # return timeout is 5 s: the rig is let go and sent work anyway
    assert_mining_quickly(rig)
    assert service.lease_view(divert.lease_id)["rigs"][0]["phase"] == "lost"


async def test_stats_window_is_bounded(queue: SqliteQueueEngine, nursery: trio.Nursery) -> None:
    service = LeaseService(queue, stats_window=2)
    await nursery.start(service.run)
    rig = FakeRig()
    await call(service, rig, registration())
    for _ in range(3):
        await service.create_lease(dict(LEASE))
        divert = rig.last(wire.LeaseDivert)
        await call(service, rig, wire.LeaseServing(divert.token))
        await service.cancel_lease(divert.lease_id)
        await call(service, rig, wire.LeaseReturned(rig.last(wire.LeaseReturn).token))
        service.on_accepted(_conn(rig), trio.current_time())
    stats = service.stats()
    assert stats["divert_latency_s"]["n"] == 2 and stats["return_latency_s"]["n"] == 2
    assert len(service.divert_latencies) == len(service.return_latencies) == 2
