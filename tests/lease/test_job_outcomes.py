"""How a job ends, as integrators read it: done (a result), failed (the backend's error, with its
cause), dead (too many deliveries, with the reason)."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from stratumkit.lease.service import LeaseService, failure_cause
from stratumkit.protocol import rig as wire
from stratumkit.queue.sqlite import SqliteQueueEngine
from tests.lease.test_service import FakeRig, call, registration, serving_rig


async def test_a_backend_error_is_a_failed_job_with_its_cause(service: LeaseService) -> None:
    rig, divert = await serving_rig(service)
    ok = await service.enqueue("q", {"kind": "embeddings", "input": "a"})
    bad = await service.enqueue("q", {"kind": "embeddings", "input": "b"})
    claimed = wire.ClaimReply.from_result(await call(service, rig, wire.JobClaim(divert.token, 2))).jobs
    assert {job.job_id for job in claimed} == {ok, bad}
    await call(service, rig, wire.JobResult(ok, {"data": [{"embedding": [0.1]}]}))
    error = {"error": {"message": "model 'x' is not loaded", "type": "UnknownModelError"}}
    await call(service, rig, wire.JobResult(bad, error))
    done, failed = await service.job(ok), await service.job(bad)
    assert done["status"] == "done" and "cause" not in done
    assert failed["status"] == "failed" and failed["cause"] == "model 'x' is not loaded"
    assert failed["result"] == error  # the backend's answer is kept whole


async def test_too_many_deliveries_is_a_dead_job_with_the_reason(
    service: LeaseService, queue: SqliteQueueEngine
) -> None:
    job_id = await service.enqueue("q", {"n": 1})
    for _ in range(5):  # the default max_deliveries
        (claim,) = await queue.claim("q", "someone", 30.0)
        await queue.nack(claim)
    dead = await service.job(job_id)
    assert dead["status"] == "dead" and dead["reason"] == "max_deliveries" and dead["deliveries"] == 5


@pytest.mark.parametrize(
    ("result", "cause"),
    [
        ({"data": []}, None),
        ({"error": {"message": "boom"}}, "boom"),
        ({"error": {"type": "UpstreamError"}}, "UpstreamError"),
        ({"error": "plain text"}, "plain text"),
        ([1, 2], None),
    ],
)
def test_failure_cause(result: object, cause: str | None) -> None:
    assert failure_cause(result) == cause


async def test_a_job_held_when_the_lease_ends_is_back_at_once(
    service: LeaseService, queue: SqliteQueueEngine, autojump_clock: trio.testing.MockClock
) -> None:
    rig = FakeRig()
    await call(service, rig, registration())
    await service.create_lease({"count": 1, "queue": "q", "duration_s": 5})
    divert = rig.last(wire.LeaseDivert)
    await call(service, rig, wire.LeaseServing(divert.token))
    job_id = await service.enqueue("q", {"n": 1})
    await trio.sleep(4.9)
    (held,) = wire.ClaimReply.from_result(await call(service, rig, wire.JobClaim(divert.token, 1, 30.0))).jobs
    await trio.sleep(0.2)  # the lease ends; the rig is sent back holding the job
    back = rig.last(wire.LeaseReturn)
    assert await queue.claim("q", "other", 30.0) == []  # still the rig's until it says it is back
    await call(service, rig, wire.LeaseReturned(back.token))  # without releasing the job itself
    (again,) = await queue.claim("q", "other", 30.0)  # at once, not after the 30 s visibility timeout
    assert (again.job_id, again.deliveries) == (held.job_id, 2) == (job_id, 2)


async def test_a_job_held_by_a_rig_that_never_comes_back_returns_at_the_return_timeout(
    service: LeaseService, queue: SqliteQueueEngine, autojump_clock: trio.testing.MockClock
) -> None:
    rig = FakeRig()
    await call(service, rig, registration())
    await service.create_lease({"count": 1, "queue": "q", "duration_s": 5})
    divert = rig.last(wire.LeaseDivert)
    await call(service, rig, wire.LeaseServing(divert.token))
    job_id = await service.enqueue("q", {"n": 1})
    await call(service, rig, wire.JobClaim(divert.token, 1, 300.0))
    await trio.sleep(5.0 + 5.0 + 0.1)  # the lease's end, then the fixture's 5 s return timeout
    (again,) = await queue.claim("q", "other", 30.0)  # long before its 300 s visibility timeout
    assert again.job_id == job_id
