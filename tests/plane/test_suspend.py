"""The controller's suspension (rule 8): a rig whose front end vanished keeps its stint for the
resume grace, resumes it with its token, and is let go (NOT_RESUMED) if it does not come back."""

from __future__ import annotations

from stratumkit.lease import LeaseController, LeaseSpec, LeaseState, ReleaseReason, RigPhase, Selector
from stratumkit.lease.actions import DivertRig, RequeueInFlight
from tests.lease.conftest import make_caps


def serving(c: LeaseController) -> int:
    c.register_rig("a", "a.w", make_caps(), 0.0)
    _, actions = c.create(LeaseSpec(Selector(1), "q", 600.0), 1.0, lease_id="L")
    (divert,) = [a for a in actions if isinstance(a, DivertRig)]
    c.rig_serving("a", divert.token, 2.0)
    return divert.token


def test_a_suspended_rig_resumes_its_stint_with_its_token() -> None:
    c = LeaseController(reconnect_grace_s=30.0)
    token = serving(c)
    assert c.rig_suspended("a", 10.0) == []
    rig = c.rig("a")
    assert not rig.connected and rig.lease_id == "L" and rig.resume_by == 40.0
    assert c.get("L").state is LeaseState.SERVING and c.next_deadline() == 40.0
    actions = c.register_rig("a", "a.w", make_caps(), 12.0, resume_token=token)
    assert actions == [DivertRig("a", "L", token, "q", c.get("L").ends_at)]
    assert [s.phase for s in c.get("L").rigs] == [RigPhase.SERVING]
    assert c.rig("a").connected and c.rig("a").resume_by is None


def test_a_suspended_rig_that_does_not_come_back_is_let_go_at_its_suspension() -> None:
    c = LeaseController(reconnect_grace_s=30.0)
    serving(c)
    c.rig_suspended("a", 10.0)
    actions = c.tick(40.0)
    assert RequeueInFlight("a", "L", "q") in actions
    (stint,) = c.get("L").rigs
    assert stint.phase is RigPhase.LOST and stint.reason is ReleaseReason.NOT_RESUMED and stint.ended_at == 10.0
    assert c.get("L").state is LeaseState.FAILED


def test_suspending_an_unleased_rig_disconnects_it() -> None:
    c = LeaseController()
    c.register_rig("a", "a.w", make_caps(), 0.0)
    assert c.rig_suspended("a", 1.0) == [] and not c.rig("a").connected and c.rig("a").resume_by is None
