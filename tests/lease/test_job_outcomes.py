"""How a job ends, as integrators read it: done (a result), failed (the backend's error, with its
cause), dead (too many deliveries, with the reason)."""

from __future__ import annotations

import pytest

from stratumkit.lease.service import LeaseService, failure_cause
from stratumkit.protocol import rig as wire
from stratumkit.queue.sqlite import SqliteQueueEngine
from tests.lease.test_service import call, serving_rig


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
