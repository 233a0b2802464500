"""Snapshot and restore: a pool restart keeps its leases."""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import msgpack
import pytest

from stratumkit.lease import (
    Action,
    BadSnapshot,
    BadValue,
    DivertRig,
    LeaseController,
    LeaseSpec,
    LeaseState,
    LeaseStateChanged,
    ReleaseReason,
    RequeueInFlight,
    ReturnRig,
    RigCapabilities,
    RigReleased,
    Selector,
    StaleToken,
)

Caps = Callable[..., RigCapabilities]
Spec = Callable[..., LeaseSpec]
A = TypeVar("A")
S = LeaseState


def only(actions: Sequence[Action], kind: type[A]) -> list[A]:
    return [a for a in actions if isinstance(a, kind)]


def through_msgpack(data: dict[str, Any]) -> dict[str, Any]:
    out = msgpack.unpackb(msgpack.packb(data))
    assert isinstance(out, dict)
    return out


def busy_controller(caps: Caps, spec: Spec) -> tuple[LeaseController, dict[str, int]]:
    """Leases in every non-terminal state and a finished one, with jobs recorded."""
    c = LeaseController(drain_timeout_s=30.0, next_token=7)
    for rig_id in ("a", "b", "c", "d", "e"):
        c.register_rig(rig_id, f"acct.{rig_id}", caps(), 0.0)
    tokens: dict[str, int] = {}
    serving, actions = c.create(spec(2, 100.0, queue="chat", priority=3), now=1.0)
    for d in only(actions, DivertRig):
        tokens[d.rig_id] = d.token
        c.rig_serving(d.rig_id, d.token, 2.0)
        c.record_job(serving.lease_id, d.rig_id, jobs=3)
    _draining, actions = c.create(spec(1, 50.0, queue="embed"), now=3.0)
    tokens.update({d.rig_id: d.token for d in only(actions, DivertRig)})
    returning, actions = c.create(spec(1, 50.0), now=3.0)
    for r in only(c.cancel(returning.lease_id, 4.0), ReturnRig):
        tokens[r.rig_id] = r.token
    _done, actions = c.create(spec(1, 5.0), now=4.0)
    (d,) = only(actions, DivertRig)
    c.rig_serving(d.rig_id, d.token, 4.5)
    (r,) = only(c.tick(9.0), ReturnRig)
    c.rig_returned(r.rig_id, r.token, 9.5)
    c.create(spec(1, 500.0, min_count=0, gpu_model="H100"), now=10.0)  # waits in REQUESTED
    states = {lease.state for lease in c.leases()}
    assert states == {S.SERVING, S.DRAINING, S.RETURNING, S.DONE, S.REQUESTED}
    return c, tokens


class TestRoundTrip:
    def test_msgpack_round_trip_keeps_leases(self, caps: Caps, spec: Spec) -> None:
        c, _ = busy_controller(caps, spec)
        data = through_msgpack(c.snapshot(20.0))
        r = LeaseController.restore(data, now=20.0, drain_timeout_s=30.0)
        assert r.leases() == c.leases()
        assert r.next_token == c.next_token
        for before, after in zip(c.rigs(), r.rigs(), strict=True):
            assert (after.rig_id, after.worker, after.caps) == (
                before.rig_id,
                before.worker,
                before.caps,
            )
            assert (after.lease_id, after.token) == (before.lease_id, before.token)
            assert not after.connected
            assert after.resume_by == (None if after.lease_id is None else 20.0 + r.reconnect_grace_s)
        # a second snapshot of the restored controller restores to the same leases again
        again = LeaseController.restore(through_msgpack(r.snapshot(20.0)), now=20.0)
        assert again.leases() == c.leases()
        # generated lease ids keep counting
        lease, _ = r.create(spec(1, min_count=0), now=21.0)
        assert lease.lease_id not in {old.lease_id for old in c.leases()}

    def test_an_sla_target_and_a_curtailed_stint_are_kept(self, caps: Caps) -> None:
        c = LeaseController()
        c.register_rig("a", "w", caps(), 0.0)
        lease, actions = c.create(LeaseSpec(Selector(1), "q", 100.0, availability=0.99), now=0.0)
        (d,) = only(actions, DivertRig)
        c.rig_serving("a", d.token, 1.0)
        c.cancel(lease.lease_id, 10.0, curtailed=True)
        r = LeaseController.restore(through_msgpack(c.snapshot(11.0)), now=11.0)
        assert r.leases() == c.leases()
        (restored,) = r.leases()
        assert restored.spec.availability == 0.99 and restored.rigs[0].reason is ReleaseReason.CURTAILED

    def test_a_record_from_before_sla_targets_has_none(self, caps: Caps, spec: Spec) -> None:
        c, _ = busy_controller(caps, spec)
        data = through_msgpack(c.snapshot(20.0))
        for lease in data["leases"]:
            del lease["spec"]["availability"]
        r = LeaseController.restore(data, now=20.0)
        assert r.leases() == c.leases() and all(lease.spec.availability is None for lease in r.leases())

    def test_times_are_shifted_onto_the_new_clock(self, caps: Caps, spec: Spec) -> None:
        c, _ = busy_controller(caps, spec)
        data = through_msgpack(c.snapshot(20.0))
        r = LeaseController.restore(data, now=5_000.0, downtime_s=8.0)
        shift = 5_000.0 - 8.0 - 20.0
        for old, new in zip(c.leases(), r.leases(), strict=True):
            assert new.created_at == old.created_at + shift
            assert new.ends_at == old.ends_at + shift
            for a, b in zip(old.rigs, new.rigs, strict=True):
                assert b.diverted_at == a.diverted_at + shift
                assert b.drain_deadline == a.drain_deadline + shift
        # usage does not change with the clock it is read on
        for old in c.leases():
            u1, u2 = c.usage(old.lease_id, 20.0), r.usage(old.lease_id, 20.0 + shift)
            assert u2.gpu_seconds == pytest.approx(u1.gpu_seconds)
            assert u2.jobs_done == u1.jobs_done

    def test_downtime_can_make_a_lease_due(self, caps: Caps, spec: Spec) -> None:
        c = LeaseController()
        c.register_rig("a", "w", caps(), 0.0)
        _lease, actions = c.create(spec(1, 100.0), now=0.0)
        c.rig_serving("a", only(actions, DivertRig)[0].token, 1.0)
        r = LeaseController.restore(c.snapshot(90.0), now=0.0, downtime_s=15.0)
        assert r.next_deadline() == pytest.approx(-5.0)
        fired = r.tick(0.0)
        assert [(a.old, a.new) for a in only(fired, LeaseStateChanged)] == [(S.SERVING, S.RETURNING)]

    def test_the_first_share_after_a_return_is_kept(self, caps: Caps, spec: Spec) -> None:
        c = LeaseController()
        c.register_rig("a", "w", caps(), 0.0)
        lease, actions = c.create(spec(1, 10.0), now=0.0)
        c.rig_serving("a", only(actions, DivertRig)[0].token, 1.0)
        (back,) = only(c.tick(10.0), ReturnRig)
        c.rig_returned("a", back.token, 11.0)
        assert c.rig_mining("a", 12.0) is not None
        r = LeaseController.restore(through_msgpack(c.snapshot(20.0)), now=120.0)
        assert r.get(lease.lease_id).rigs[0].mining_at == 112.0
        assert r.usage(lease.lease_id, 120.0).mining_latencies_s == (2.0,)


class TestResume:
    def test_rig_resumes_with_its_token(self, caps: Caps, spec: Spec) -> None:
        c, tokens = busy_controller(caps, spec)
        r = LeaseController.restore(c.snapshot(20.0), now=0.0)
        serving = r.leases([S.SERVING])[0]
        rig_id = serving.rigs[0].rig_id
        resent = r.register_rig(rig_id, "w", caps(), 1.0, resume_token=tokens[rig_id])
        assert resent == [DivertRig(rig_id, serving.lease_id, tokens[rig_id], "chat", serving.ends_at)]
        assert r.rig(rig_id).connected and r.rig(rig_id).resume_by is None
        assert r.get(serving.lease_id) == serving

    def test_draining_rig_resumes_and_acks(self, caps: Caps, spec: Spec) -> None:
        c, tokens = busy_controller(caps, spec)
        r = LeaseController.restore(c.snapshot(20.0), now=0.0)
        draining = r.leases([S.DRAINING])[0]
        rig_id = draining.rigs[0].rig_id
        r.register_rig(rig_id, "w", caps(), 1.0, resume_token=tokens[rig_id])
        r.rig_serving(rig_id, tokens[rig_id], 2.0)
        assert r.get(draining.lease_id).state is S.SERVING

    def test_returning_rig_is_sent_back_again(self, caps: Caps, spec: Spec) -> None:
        c, tokens = busy_controller(caps, spec)
        r = LeaseController.restore(c.snapshot(20.0), now=0.0)
        returning = r.leases([S.RETURNING])[0]
        rig_id = returning.rigs[0].rig_id
        resent = r.register_rig(rig_id, "w", caps(), 1.0, resume_token=tokens[rig_id])
        assert resent == [ReturnRig(rig_id, returning.lease_id, tokens[rig_id])]
        r.rig_returned(rig_id, tokens[rig_id], 2.0)
        assert r.get(returning.lease_id).state is S.CANCELLED

    def test_wrong_or_missing_token_releases_the_stint(self, caps: Caps, spec: Spec) -> None:
        c, tokens = busy_controller(caps, spec)
        r = LeaseController.restore(c.snapshot(20.0), now=0.0)
        serving = r.leases([S.SERVING])[0]
        rig_id = serving.rigs[0].rig_id
        actions = r.register_rig(rig_id, "w", caps(), 1.0, resume_token=tokens[rig_id] - 1)
        assert RequeueInFlight(rig_id, serving.lease_id, "chat") in actions
        assert RigReleased(rig_id, serving.lease_id, ReleaseReason.NOT_RESUMED) in actions
        # the rig is idle again, so the now short lease drafts it back under a fresh token
        (divert,) = only(actions, DivertRig)
        assert (divert.rig_id, divert.lease_id) == (rig_id, serving.lease_id)
        assert divert.token >= c.next_token
        with pytest.raises(StaleToken):
            r.rig_serving(rig_id, tokens[rig_id], 2.0)

    def test_a_lone_rig_without_its_token_is_drafted_back(self, caps: Caps, spec: Spec) -> None:
        c = LeaseController()
        c.register_rig("a", "w", caps(), 0.0)
        lease, actions = c.create(spec(1, 100.0), now=0.0)
        (old,) = only(actions, DivertRig)
        c.rig_serving("a", old.token, 1.0)
        r = LeaseController.restore(c.snapshot(2.0), now=0.0)
        back = r.register_rig("a", "w", caps(), 1.0)  # the agent restarted and lost its token
        assert [type(a) for a in back] == [RequeueInFlight, RigReleased, DivertRig]
        (divert,) = only(back, DivertRig)
        assert divert.lease_id == lease.lease_id and divert.token > old.token
        assert r.get(lease.lease_id).state is S.SERVING
        assert [a.phase.value for a in r.get(lease.lease_id).rigs] == ["lost", "draining"]

    def test_rigs_that_do_not_come_back_are_released(self, caps: Caps, spec: Spec) -> None:
        c, _ = busy_controller(caps, spec)
        r = LeaseController.restore(c.snapshot(20.0), now=0.0, reconnect_grace_s=5.0)
        assert r.next_deadline() == 5.0  # the grace ends before any lease deadline
        fired = r.tick(5.0)
        by_lease = {lease.lease_id: lease.state for lease in r.leases()}
        assert set(by_lease.values()) == {S.FAILED, S.CANCELLED, S.DONE, S.REQUESTED}
        released = {a.rig_id for a in only(fired, RigReleased)}
        assert all(a.reason is ReleaseReason.NOT_RESUMED for a in only(fired, RigReleased))
        assert len(released) == 3  # two serving, one draining; the returning one is not early
        assert len(only(fired, RequeueInFlight)) == 4
        assert all(rig.lease_id is None for rig in r.rigs())


class TestBadSnapshots:
    def mutate(self, caps: Caps, spec: Spec, change: Callable[[dict[str, Any]], None]) -> None:
        c, _ = busy_controller(caps, spec)
        data = copy.deepcopy(through_msgpack(c.snapshot(20.0)))
        change(data)
        with pytest.raises(BadSnapshot):
            LeaseController.restore(data, now=0.0)

    @pytest.mark.parametrize(
        "change",
        [
            lambda d: d.update(version=99),
            lambda d: d.pop("version"),
            lambda d: d.update(taken_at="yesterday"),
            lambda d: d.update(next_token=1),  # below tokens already issued
            lambda d: d.update(rigs={}),
            lambda d: d["leases"][0].pop("spec"),
            lambda d: d["leases"][0].update(state="sleeping"),
            lambda d: d["leases"][0]["spec"]["selector"].update(count=0),
            lambda d: d["leases"][0]["spec"].update(duration_s=-1),
            lambda d: d["leases"][0]["spec"].update(availability=1.5),
            lambda d: d["leases"][0]["spec"].update(availability="0.99"),
            lambda d: d["leases"][0]["rigs"][0].update(token="7"),
            lambda d: d["leases"][0]["rigs"][0].update(phase="returned"),  # rig still bound
            lambda d: d["rigs"][0].update(token=None, lease_id=None),  # stint still bound
            lambda d: d["rigs"][0]["caps"].update(gpus=[]),
            lambda d: d["rigs"].append(d["rigs"][0]),
            lambda d: d["leases"].append(d["leases"][0]),
            lambda d: d["rigs"].pop(0),  # a stint names an unknown rig
        ],
    )
    def test_refused(self, caps: Caps, spec: Spec, change: Callable[[dict[str, Any]], None]) -> None:
        self.mutate(caps, spec, change)

    def test_not_a_mapping(self) -> None:
        with pytest.raises(BadSnapshot):
            LeaseController.restore([], now=0.0)  # type: ignore[arg-type]

    def test_negative_downtime(self) -> None:
        with pytest.raises(BadValue):
            LeaseController.restore(LeaseController().snapshot(0.0), now=0.0, downtime_s=-1.0)
