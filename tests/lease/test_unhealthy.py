"""A rig whose backend keeps failing is marked unhealthy, taken off its lease and replaced from
the idle rigs; the causes are kept on the jobs."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from stratumkit.lease import (
    DivertRig,
    LeaseSpec,
    NoEligibleRigs,
    ReleaseReason,
    ReturnRig,
    RigCapabilities,
    RigReleased,
)
from stratumkit.lease.service import RIG_FAILURE_LIMIT, LeaseService
from stratumkit.protocol import rig as wire
from tests.lease.test_controller import controller, divert_tokens, only
from tests.lease.test_service import LEASE, FakeRig, call, registration

Caps = Callable[..., RigCapabilities]
Spec = Callable[..., LeaseSpec]


def test_a_failed_rig_is_sent_back_replaced_and_not_drafted_again(caps: Caps, spec: Spec) -> None:
    c = controller(caps, "a")
    lease, actions = c.create(spec(1, 100.0), 0.0)
    c.rig_serving("a", divert_tokens(actions)["a"], 1.0)
    c.register_rig("b", "acct.b", caps(hashrate=2e9), 1.5)  # idle, drafted later than a
    actions = c.rig_failed("a", 2.0)
    assert only(actions, RigReleased) == [RigReleased("a", lease.lease_id, ReleaseReason.BACKEND_FAILED)]
    (back,) = only(actions, ReturnRig)
    assert [d.rig_id for d in only(actions, DivertRig)] == ["b"]  # the replacement
    c.rig_returned("a", back.token, 3.0)
    assert not c.rig("a").healthy and c.rig("a").lease_id is None
    assert c.get(lease.lease_id).stint("a").reason is ReleaseReason.BACKEND_FAILED  # type: ignore[union-attr]
    with pytest.raises(NoEligibleRigs):  # an unhealthy rig is not drafted, not even by a new lease
        c.create(spec(1, 10.0), 4.0)
    c.rig_disconnected("a", 5.0)
    c.register_rig("a", "acct.a", caps(), 6.0)  # the agent came back: a fresh try
    assert c.rig("a").healthy
    c.create(spec(1, 10.0), 7.0)


async def test_the_service_pulls_a_failing_rig_and_keeps_the_causes(service: LeaseService) -> None:
    first = FakeRig()
    await call(service, first, registration())
    lease = await service.create_lease(dict(LEASE))
    divert = first.last(wire.LeaseDivert)
    await call(service, first, wire.LeaseServing(divert.token))
    spare = FakeRig(worker="rig-b.w")
    await call(service, spare, registration(rig_id="rig-b"))
    job_id = await service.enqueue("q", {"n": 1})
    for n in range(RIG_FAILURE_LIMIT):
        (job,) = wire.ClaimReply.from_result(await call(service, first, wire.JobClaim(divert.token))).jobs
        assert job.job_id == job_id and job.deliveries == n + 1
        assert spare.notifications == []  # not yet replaced
        await call(service, first, wire.JobRelease(job.job_id, f"CUDA out of memory ({n})"))
    assert first.last(wire.LeaseReturn).lease_id == lease["lease_id"]
    assert spare.last(wire.LeaseDivert).lease_id == lease["lease_id"]  # replaced from the idle rigs
    view = await service.job(job_id)
    assert view["status"] == "pending" and view["last_cause"] == f"CUDA out of memory ({RIG_FAILURE_LIMIT - 1})"
    healthy = {r["rig_id"]: r["healthy"] for r in service.rigs()}
    assert healthy == {"rig-a": False, "rig-b": True}


async def test_a_result_resets_the_count(service: LeaseService) -> None:
    rig = FakeRig()
    await call(service, rig, registration())
    await service.create_lease(dict(LEASE))
    divert = rig.last(wire.LeaseDivert)
    await call(service, rig, wire.LeaseServing(divert.token))
    for n in range(2 * RIG_FAILURE_LIMIT):
        await service.enqueue("q", {"n": n})
        (job,) = wire.ClaimReply.from_result(await call(service, rig, wire.JobClaim(divert.token))).jobs
        if n % RIG_FAILURE_LIMIT == RIG_FAILURE_LIMIT - 1:
            await call(service, rig, wire.JobResult(job.job_id, {"data": []}))
        else:
            await call(service, rig, wire.JobRelease(job.job_id))
    assert service.rigs()[0]["healthy"] is True and service.rigs()[0]["mode"] == "leased"
