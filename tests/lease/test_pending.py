"""Pending leases: a lease that cannot be filled now waits (up to its wait) in REQUESTED, and is
filled as rigs free up, highest priority first, whole or not at all."""

from __future__ import annotations

from collections.abc import Callable

import msgpack
import pytest
import trio

from stratumkit.lease import BadValue, DivertRig, LeaseController, LeaseSpec, LeaseState, NoEligibleRigs, ReturnRig
from stratumkit.lease import RigCapabilities as Caps
from stratumkit.lease.errors import RequestError
from stratumkit.lease.service import LeaseService
from tests.lease.test_controller import changes, controller, only
from tests.lease.test_service import LEASE, FakeRig, call, registration

MakeCaps = Callable[..., Caps]
Spec = Callable[..., LeaseSpec]
S = LeaseState


def test_a_pending_lease_waits_then_starts_its_time_when_filled(caps: MakeCaps, spec: Spec) -> None:
    c = controller(caps)
    with pytest.raises(NoEligibleRigs):  # without a wait: refused, as before
        c.create(spec(1, 100.0), 0.0)
    lease, actions = c.create(spec(1, 100.0), 0.0, wait_s=30.0)
    assert lease.state is S.REQUESTED and lease.fill_by == 30.0 and lease.ends_at == 30.0
    assert changes(actions) == [(None, S.REQUESTED)] and only(actions, DivertRig) == []
    drafted = c.register_rig("a", "acct.a", caps(), 12.0)
    assert [d.rig_id for d in only(drafted, DivertRig)] == ["a"]
    started = c.get(lease.lease_id)
    assert started.state is S.DRAINING and started.ends_at == 112.0  # 100 s from the draft, not the request
    assert c.next_deadline() == 112.0


def test_an_unfilled_pending_lease_expires_at_its_deadline(caps: MakeCaps, spec: Spec) -> None:
    c = controller(caps)
    lease, _ = c.create(spec(1, 100.0), 0.0, wait_s=30.0)
    assert c.next_deadline() == 30.0
    assert changes(c.tick(30.0)) == [(S.REQUESTED, S.EXPIRED)]
    assert c.get(lease.lease_id).note == "no rig was found in time"
    assert c.register_rig("a", "acct.a", caps(), 31.0) == []  # too late: the rig stays idle


def test_a_pending_lease_is_filled_whole(caps: MakeCaps, spec: Spec) -> None:
    c = controller(caps, "a")
    busy, _ = c.create(spec(1, 100.0), 0.0)  # holds rig a
    lease, _ = c.create(spec(2, 50.0), 1.0, wait_s=60.0)  # needs two rigs at once
    assert c.register_rig("b", "acct.b", caps(), 2.0) == []  # one idle rig is not enough
    assert c.get(lease.lease_id).state is S.REQUESTED
    (back,) = only(c.cancel(busy.lease_id, 3.0), ReturnRig)
    actions = c.rig_returned("a", back.token, 4.0)  # rig a is free: now two are idle
    assert sorted(d.rig_id for d in only(actions, DivertRig)) == ["a", "b"]
    assert c.get(lease.lease_id).state is S.DRAINING


def test_freed_rigs_go_to_the_highest_priority_first(caps: MakeCaps, spec: Spec) -> None:
    c = controller(caps)
    low, _ = c.create(spec(1, 100.0, priority=1), 0.0, wait_s=60.0)
    high, _ = c.create(spec(1, 100.0, priority=5), 1.0, wait_s=60.0)
    older_high, _ = c.create(spec(1, 100.0, priority=5), 0.5, wait_s=60.0)
    first = c.register_rig("a", "acct.a", caps(), 2.0)
    second = c.register_rig("b", "acct.b", caps(), 3.0)
    # equal priority: the older first (creation order)
    assert [d.lease_id for d in only(first, DivertRig)] == [high.lease_id]
    assert [d.lease_id for d in only(second, DivertRig)] == [older_high.lease_id]
    assert c.get(low.lease_id).state is S.REQUESTED


def test_pending_survives_a_snapshot(caps: MakeCaps, spec: Spec) -> None:
    c = controller(caps)
    lease, _ = c.create(spec(1, 100.0), 0.0, wait_s=30.0)
    r = LeaseController.restore(msgpack.unpackb(msgpack.packb(c.snapshot(10.0))), 10.0)
    assert r.get(lease.lease_id) == c.get(lease.lease_id) and r.next_deadline() == 30.0


def test_a_bad_wait_is_refused(caps: MakeCaps, spec: Spec) -> None:
    c = controller(caps)
    for wait in (0.0, -1.0, float("inf")):
        with pytest.raises(BadValue):
            c.create(spec(1, 10.0), 0.0, wait_s=wait)
    assert c.leases() == []


async def test_the_api_side_of_a_pending_lease(service: LeaseService, nursery: trio.Nursery) -> None:
    with pytest.raises(RequestError, match="idle rig"):
        await service.create_lease(dict(LEASE))
    with pytest.raises(RequestError, match="wait_s must be"):
        await service.create_lease({**LEASE, "wait_s": "soon"})
    view = await service.create_lease({**LEASE, "wait_s": 30})
    assert view["state"] == "requested" and view["pending"] is True and 0 < view["remaining_s"] <= 30
    await call(service, FakeRig(), registration())
    view = service.lease_view(view["lease_id"])
    assert view["state"] == "draining" and view["pending"] is False
