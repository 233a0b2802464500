"""The lease controller's state machine, driven with explicit times."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

import pytest

from stratumkit.lease import (
    TRANSITIONS,
    Action,
    BadValue,
    DivertRig,
    DuplicateLease,
    DuplicateRig,
    InvalidTransition,
    LeaseController,
    LeaseExtended,
    LeaseSpec,
    LeaseState,
    LeaseStateChanged,
    NoEligibleRigs,
    ReleaseReason,
    RequeueInFlight,
    ReturnRig,
    RigCapabilities,
    RigPhase,
    RigReleased,
    StaleToken,
    UnknownLease,
    UnknownRig,
)
from stratumkit.lease.model import MAX_LEASE_S

Caps = Callable[..., RigCapabilities]
Spec = Callable[..., LeaseSpec]
A = TypeVar("A")
S = LeaseState


def only(actions: Sequence[Action], kind: type[A]) -> list[A]:
    return [a for a in actions if isinstance(a, kind)]


def changes(actions: Sequence[Action]) -> list[tuple[LeaseState | None, LeaseState]]:
    return [(a.old, a.new) for a in only(actions, LeaseStateChanged)]


def divert_tokens(actions: Sequence[Action]) -> dict[str, int]:
    return {a.rig_id: a.token for a in only(actions, DivertRig)}


def controller(caps: Caps, *rig_ids: str, now: float = 0.0, **kw: float) -> LeaseController:
    c = LeaseController(**kw)  # type: ignore[arg-type]
    for rig_id in rig_ids:
        assert c.register_rig(rig_id, f"acct.{rig_id}", caps(), now) == []
    return c


class TestHappyPath:
    def test_create_diverts_then_serving_ack(self, caps: Caps, spec: Spec) -> None:
        c = controller(caps, "a", "b")
        lease, actions = c.create(spec(2, 100.0, queue="infer"), now=10.0)
        assert lease.state is S.DRAINING
        assert lease.created_at == 10.0 and lease.ends_at == 110.0
        assert changes(actions) == [(None, S.REQUESTED), (S.REQUESTED, S.DRAINING)]
        diverts = only(actions, DivertRig)
        assert {d.rig_id for d in diverts} == {"a", "b"}
        assert all(d.queue == "infer" and d.ends_at == 110.0 for d in diverts)
        assert all(d.lease_id == lease.lease_id for d in diverts)
        assert len({d.token for d in diverts}) == 2
        for d in diverts:
            rig = c.rig(d.rig_id)
            assert (rig.lease_id, rig.token, rig.idle) == (lease.lease_id, d.token, False)

        first, second = diverts
        assert changes(c.rig_serving(first.rig_id, first.token, 12.0)) == [(S.DRAINING, S.SERVING)]
        assert c.rig_serving(second.rig_id, second.token, 13.0) == []
        lease = c.get(lease.lease_id)
        assert lease.state is S.SERVING
        assert lease.serving_since == 12.0
        assert {a.phase for a in lease.rigs} == {RigPhase.SERVING}
        # a repeated ack with the current token changes nothing
        assert c.rig_serving(first.rig_id, first.token, 14.0) == []
        assert c.get(lease.lease_id).rigs == lease.rigs

    def test_tick_ends_the_lease_and_returns_rigs(self, caps: Caps, spec: Spec) -> None:
        c = controller(caps, "a", "b")
        lease, actions = c.create(spec(2, 100.0), now=0.0)
        tokens = divert_tokens(actions)
        for rig_id, token in tokens.items():
            c.rig_serving(rig_id, token, 1.0)
        assert c.next_deadline() == 100.0
        assert c.tick(99.999) == []

        ended = c.tick(100.0)
        assert changes(ended) == [(S.SERVING, S.RETURNING)]
        returns = only(ended, ReturnRig)
        assert {r.rig_id for r in returns} == {"a", "b"}
        assert min(r.token for r in returns) > max(tokens.values())
        assert c.get(lease.lease_id).outcome is S.DONE
        assert c.get(lease.lease_id).state is S.RETURNING
        assert c.next_deadline() == 100.0 + c.return_timeout_s

        r1, r2 = returns
        assert c.rig_returned(r1.rig_id, r1.token, 102.0) == []
        assert changes(c.rig_returned(r2.rig_id, r2.token, 103.0)) == [(S.RETURNING, S.DONE)]
        lease = c.get(lease.lease_id)
        assert lease.state is S.DONE and lease.ended_at == 103.0
        assert {a.phase for a in lease.rigs} == {RigPhase.RETURNED}
        assert all(c.rig(r).idle and c.rig(r).token is None for r in ("a", "b"))
        assert c.next_deadline() is None

    def test_clean_return_requeues_nothing(self, caps: Caps, spec: Spec) -> None:
        c = controller(caps, "a")
        _, actions = c.create(spec(1, 10.0), now=0.0)
        (d,) = only(actions, DivertRig)
        c.rig_serving("a", d.token, 1.0)
        (r,) = only(c.tick(10.0), ReturnRig)
        assert only(c.rig_returned("a", r.token, 11.0), RequeueInFlight) == []

    def test_queries(self, caps: Caps, spec: Spec) -> None:
        c = controller(caps, "a", "b")
        l1, _ = c.create(spec(1), now=0.0)
        _l2, _ = c.create(spec(1), now=0.0, lease_id="custom")
        assert [lease.lease_id for lease in c.leases()] == [l1.lease_id, "custom"]
        assert c.leases([S.SERVING]) == []
        assert [r.rig_id for r in c.rigs()] == ["a", "b"]
        with pytest.raises(UnknownLease):
            c.get("nope")
        with pytest.raises(UnknownRig):
            c.rig("nope")
        with pytest.raises(DuplicateLease):
            c.create(spec(1, min_count=0), now=0.0, lease_id="custom")


class TestExtend:
    def test_extend_moves_the_end(self, caps: Caps, spec: Spec) -> None:
        c = controller(caps, "a")
        lease, actions = c.create(spec(1, 100.0), now=0.0)
        c.rig_serving("a", divert_tokens(actions)["a"], 1.0)
        assert c.extend(lease.lease_id, 50.0, 60.0) == [LeaseExtended(lease.lease_id, 150.0)]
        assert c.get(lease.lease_id).ends_at == 150.0
        assert c.next_deadline() == 150.0
        assert c.tick(100.0) == []
        assert c.get(lease.lease_id).state is S.SERVING
        assert changes(c.tick(150.0)) == [(S.SERVING, S.RETURNING)]

    def test_extend_refused_at_or_after_the_end(self, caps: Caps, spec: Spec) -> None:
        c = controller(caps, "a")
        lease, _ = c.create(spec(1, 100.0), now=0.0)
        with pytest.raises(InvalidTransition, match="reached its end"):
            c.extend(lease.lease_id, 10.0, 100.0)
        c.tick(100.0)
        with pytest.raises(InvalidTransition, match="returning"):
            c.extend(lease.lease_id, 10.0, 101.0)

    def test_extend_is_bounded_from_now(self, caps: Caps, spec: Spec) -> None:
        c = controller(caps, "a")
        lease, _ = c.create(spec(1, 100.0), now=0.0)
        with pytest.raises(BadValue, match="longer than"):
            c.extend(lease.lease_id, MAX_LEASE_S, 1.0)
        assert c.get(lease.lease_id).ends_at == 100.0
        c.extend(lease.lease_id, MAX_LEASE_S - 100.0, 1.0)  # exactly a year from the start

    @pytest.mark.parametrize("extra", [0.0, -1.0, float("inf"), float("nan")])
    def test_extend_needs_a_positive_amount(self, caps: Caps, spec: Spec, extra: float) -> None:
        c = controller(caps, "a")
        lease, _ = c.create(spec(1, 100.0), now=0.0)
        with pytest.raises(BadValue):
            c.extend(lease.lease_id, extra, 1.0)
        assert c.get(lease.lease_id).ends_at == 100.0


class TestCancel:
    def test_cancel_mid_drain(self, caps: Caps, spec: Spec) -> None:
        c = controller(caps, "a")
        lease, actions = c.create(spec(1), now=0.0)
        divert = divert_tokens(actions)["a"]
        cancelled = c.cancel(lease.lease_id, 2.0)
        assert changes(cancelled) == [(S.DRAINING, S.RETURNING)]
        (ret,) = only(cancelled, ReturnRig)
        assert ret.token > divert
        # the agent's late "serving" for the divert is fenced off
        with pytest.raises(StaleToken):
            c.rig_serving("a", divert, 3.0)
        assert changes(c.rig_returned("a", ret.token, 4.0)) == [(S.RETURNING, S.CANCELLED)]
        assert c.get(lease.lease_id).serving_since is None
        assert c.rig("a").idle

    def test_cancel_mid_serve(self, caps: Caps, spec: Spec) -> None:
        c = controller(caps, "a", "b")
        lease, actions = c.create(spec(2), now=0.0)
        for rig_id, token in divert_tokens(actions).items():
            c.rig_serving(rig_id, token, 1.0)
        cancelled = c.cancel(lease.lease_id, 5.0)
        assert changes(cancelled) == [(S.SERVING, S.RETURNING)]
        assert c.get(lease.lease_id).outcome is S.CANCELLED
        for ret in only(cancelled, ReturnRig):
            c.rig_returned(ret.rig_id, ret.token, 6.0)
        assert c.get(lease.lease_id).state is S.CANCELLED
        with pytest.raises(InvalidTransition):
            c.cancel(lease.lease_id, 7.0)

    def test_cancel_while_returning_is_refused(self, caps: Caps, spec: Spec) -> None:
        c = controller(caps, "a")
        lease, _ = c.create(spec(1), now=0.0)
        c.cancel(lease.lease_id, 1.0)
        with pytest.raises(InvalidTransition):
            c.cancel(lease.lease_id, 2.0)

    def test_cancel_a_waiting_lease(self, spec: Spec) -> None:
        c = LeaseController()
        lease, actions = c.create(spec(1, min_count=0), now=0.0)
        assert lease.state is S.REQUESTED and changes(actions) == [(None, S.REQUESTED)]
        assert changes(c.cancel(lease.lease_id, 1.0)) == [(S.REQUESTED, S.CANCELLED)]


class TestTokens:
    def test_stale_token_is_refused_and_changes_nothing(self, caps: Caps, spec: Spec) -> None:
        c = controller(caps, "a")
        lease, actions = c.create(spec(1), now=0.0)
        token = divert_tokens(actions)["a"]
        before = c.get(lease.lease_id)
        for wrong in (token - 1, token + 1, 0):
            with pytest.raises(StaleToken) as info:
                c.rig_serving("a", wrong, 1.0)
            assert (info.value.token, info.value.current) == (wrong, token)
        assert c.get(lease.lease_id) == before

    def test_a_token_from_a_previous_lease_is_refused(self, caps: Caps, spec: Spec) -> None:
        c = controller(caps, "a")
        _l1, actions = c.create(spec(1, 10.0), now=0.0)
        old = divert_tokens(actions)["a"]
        c.rig_serving("a", old, 1.0)
        (ret,) = only(c.tick(10.0), ReturnRig)
        c.rig_returned("a", ret.token, 11.0)
        with pytest.raises(StaleToken):  # idle rig: holds no token
            c.rig_returned("a", ret.token, 11.5)
        _, actions = c.create(spec(1, 10.0), now=12.0)
        new = divert_tokens(actions)["a"]
        assert new > ret.token > old
        with pytest.raises(StaleToken):
            c.rig_serving("a", old, 13.0)
        with pytest.raises(StaleToken):
            c.rig_returned("a", ret.token, 13.0)

    def test_serving_ack_with_the_return_token_is_invalid(self, caps: Caps, spec: Spec) -> None:
        c = controller(caps, "a")
        lease, _ = c.create(spec(1), now=0.0)
        (ret,) = only(c.cancel(lease.lease_id, 1.0), ReturnRig)
        with pytest.raises(InvalidTransition, match="returning"):
            c.rig_serving("a", ret.token, 2.0)

    def test_counter_is_seeded_and_only_grows(self, caps: Caps, spec: Spec) -> None:
        c = controller(caps, "a", "b", next_token=500)
        lease, actions = c.create(spec(2), now=0.0)
        assert sorted(divert_tokens(actions).values()) == [500, 501]
        assert c.next_token == 502
        assert {r.token for r in only(c.cancel(lease.lease_id, 1.0), ReturnRig)} == {502, 503}

    def test_bad_seed(self) -> None:
        for bad in (0, -3, True):
            with pytest.raises(BadValue):
                LeaseController(next_token=bad)


class TestClaimFence:
    def test_serving_lease_names_the_lease_only_while_serving(self, caps: Caps, spec: Spec) -> None:
        c = controller(caps, "a")
        lease, actions = c.create(spec(1, 100.0), now=0.0)
        token = divert_tokens(actions)["a"]
        with pytest.raises(InvalidTransition, match="draining"):
            c.serving_lease("a", token)
        c.rig_serving("a", token, 1.0)
        assert c.serving_lease("a", token).lease_id == lease.lease_id
        with pytest.raises(StaleToken):
            c.serving_lease("a", token + 1)
        (back,) = only(c.tick(100.0), ReturnRig)
        with pytest.raises(StaleToken):  # sent back: the divert token claims nothing
            c.serving_lease("a", token)
        with pytest.raises(InvalidTransition, match="returning"):
            c.serving_lease("a", back.token)
        with pytest.raises(UnknownRig):
            c.serving_lease("b", token)

    def test_a_disconnected_rig_claims_nothing(self, caps: Caps, spec: Spec) -> None:
        c = controller(caps, "a", "b")
        _, actions = c.create(spec(1, 100.0), now=0.0)
        (rig_id, token), *_ = divert_tokens(actions).items()
        c.rig_serving(rig_id, token, 1.0)
        c.rig_disconnected(rig_id, 2.0)
        with pytest.raises(StaleToken):  # its stint ended: the token went with it
            c.serving_lease(rig_id, token)


class TestBackToMining:
    def test_first_share_after_a_clean_return_is_recorded_once(self, caps: Caps, spec: Spec) -> None:
        c = controller(caps, "a")
        lease, actions = c.create(spec(1, 100.0), now=0.0)
        c.rig_serving("a", divert_tokens(actions)["a"], 1.0)
        assert c.rig_mining("a", 50.0) is None  # serving: a share means nothing here
        (back,) = only(c.tick(100.0), ReturnRig)
        assert c.rig_mining("a", 100.5) is None  # not acknowledged yet
        c.rig_returned("a", back.token, 101.0)
        first = c.rig_mining("a", 102.5)
        assert first is not None and first.mining_latency_s == pytest.approx(2.5)
        assert first.return_latency_s == pytest.approx(1.0)
        assert c.rig_mining("a", 103.0) is None
        assert c.get(lease.lease_id).rigs[0].mining_at == 102.5
        assert c.usage(lease.lease_id, 200.0).mining_latencies_s == (2.5,)

    def test_no_share_is_awaited_after_giving_up_or_a_redraft(self, caps: Caps, spec: Spec) -> None:
        c = controller(caps, "a")
        _, actions = c.create(spec(1, 100.0), now=0.0)
        token = divert_tokens(actions)["a"]
        c.rig_serving("a", token, 1.0)
        c.rig_returned("a", token, 5.0)  # the agent gave up: no return was sent, nothing to time
        assert c.rig_mining("a", 6.0) is None
        _, actions = c.create(spec(1, 100.0), now=10.0)
        token = divert_tokens(actions)["a"]
        c.rig_serving("a", token, 11.0)
        (back,) = only(c.tick(110.0), ReturnRig)
        c.rig_returned("a", back.token, 111.0)
        c.create(spec(1, 100.0), now=112.0)  # drafted again before its first share
        assert c.rig_mining("a", 113.0) is None


class TestOneLeasePerRig:
    def test_a_bound_rig_is_never_drafted_again(self, caps: Caps, spec: Spec) -> None:
        c = controller(caps, "a", "b")
        _l1, a1 = c.create(spec(1), now=0.0)
        _l2, a2 = c.create(spec(1), now=0.0)
        assert set(divert_tokens(a1)) | set(divert_tokens(a2)) == {"a", "b"}
        with pytest.raises(NoEligibleRigs) as info:
            c.create(spec(1), now=0.0)
        assert (info.value.required, info.value.available) == (1, 0)

    def test_refusal_changes_nothing(self, caps: Caps, spec: Spec) -> None:
        c = controller(caps, "a")
        token = c.next_token
        with pytest.raises(NoEligibleRigs, match="2 idle"):
            c.create(spec(2), now=0.0)
        assert c.leases() == [] and c.next_token == token and c.rig("a").idle

    def test_a_returning_rig_is_not_idle(self, caps: Caps, spec: Spec) -> None:
        c = controller(caps, "a")
        lease, _ = c.create(spec(1), now=0.0)
        c.cancel(lease.lease_id, 1.0)
        with pytest.raises(NoEligibleRigs):
            c.create(spec(1), now=2.0)

    def test_disconnected_rigs_are_not_drafted(self, caps: Caps, spec: Spec) -> None:
        c = controller(caps, "a")
        c.rig_disconnected("a", 0.0)
        with pytest.raises(NoEligibleRigs):
            c.create(spec(1), now=1.0)


class TestSelection:
    def test_selector_filters_rigs(self, caps: Caps, spec: Spec) -> None:
        c = LeaseController()
        c.register_rig("small", "w", caps(vram_mb=8192), 0.0)
        c.register_rig("a100", "w", caps(gpu_model="A100", vram_mb=81920), 0.0)
        c.register_rig("mistral", "w", caps(serves=("mistral-7b",)), 0.0)
        _, actions = c.create(spec(1, gpu_model="a100"), now=0.0)
        assert set(divert_tokens(actions)) == {"a100"}
        _, actions = c.create(spec(1, min_vram_mb=16384), now=0.0)
        assert set(divert_tokens(actions)) == {"mistral"}
        with pytest.raises(NoEligibleRigs):
            c.create(spec(1, model="mistral-7b"), now=0.0)
        _, actions = c.create(spec(1, model="llama-3-8b"), now=0.0)
        assert set(divert_tokens(actions)) == {"small"}

    def test_least_hashing_lost_per_gpu_first(self, caps: Caps, spec: Spec) -> None:
        c = LeaseController()
        c.register_rig("fast", "w", caps(1, hashrate=4e9), 0.0)  # 4 GH/s per GPU
        c.register_rig("wide", "w", caps(4, hashrate=8e9), 0.0)  # 2 GH/s per GPU
        c.register_rig("slow", "w", caps(1, hashrate=3e9), 0.0)  # 3 GH/s per GPU
        _, actions = c.create(spec(2), now=0.0)
        assert [d.rig_id for d in only(actions, DivertRig)] == ["wide", "slow"]

    def test_ties_go_to_the_less_efficient_miner_then_the_id(self, caps: Caps, spec: Spec) -> None:
        c = LeaseController()
        c.register_rig("c", "w", caps(hashrate=1e9, power_w=200.0), 0.0)
        c.register_rig("b", "w", caps(hashrate=1e9, power_w=400.0), 0.0)  # fewer H/J
        c.register_rig("a", "w", caps(hashrate=1e9, power_w=200.0), 0.0)
        _, actions = c.create(spec(3), now=0.0)
        assert [d.rig_id for d in only(actions, DivertRig)] == ["b", "a", "c"]

    def test_partial_grant_is_topped_up_later(self, caps: Caps, spec: Spec) -> None:
        c = controller(caps, "a", "b")
        lease, actions = c.create(spec(3, min_count=2), now=0.0)
        assert len(only(actions, DivertRig)) == 2 and c.get(lease.lease_id).short_by == 1
        drafted = c.register_rig("c", "w", caps(), 5.0)
        assert [(d.rig_id, d.lease_id) for d in only(drafted, DivertRig)] == [("c", lease.lease_id)]
        assert c.get(lease.lease_id).short_by == 0
        # a full lease drafts nobody
        assert c.register_rig("d", "w", caps(), 6.0) == []
        assert c.rig("d").idle

    def test_waiting_lease_drafts_when_a_rig_appears(self, caps: Caps, spec: Spec) -> None:
        c = LeaseController()
        _lease, _ = c.create(spec(1, 100.0, min_count=0), now=0.0)
        assert c.next_deadline() == 100.0
        actions = c.register_rig("a", "w", caps(), 10.0)
        assert changes(actions) == [(S.REQUESTED, S.DRAINING)]
        assert only(actions, DivertRig)[0].ends_at == 100.0

    def test_waiting_lease_expires(self, spec: Spec) -> None:
        c = LeaseController()
        lease, _ = c.create(spec(1, 100.0, min_count=0), now=0.0)
        assert changes(c.tick(100.0)) == [(S.REQUESTED, S.EXPIRED)]
        assert c.get(lease.lease_id).note

    def test_a_returning_rig_is_drafted_by_a_waiting_lease(self, caps: Caps, spec: Spec) -> None:
        c = controller(caps, "a")
        _, actions = c.create(spec(1, 10.0), now=0.0)
        c.rig_serving("a", divert_tokens(actions)["a"], 1.0)
        waiting, _ = c.create(spec(1, 100.0, min_count=0), now=2.0)
        (ret,) = only(c.tick(10.0), ReturnRig)
        back = c.rig_returned("a", ret.token, 11.0)
        assert changes(back) == [(S.RETURNING, S.DONE), (S.REQUESTED, S.DRAINING)]
        (divert,) = only(back, DivertRig)
        assert (divert.lease_id, divert.token) == (waiting.lease_id, ret.token + 1)

    def test_higher_priority_is_topped_up_first(self, caps: Caps, spec: Spec) -> None:
        c = LeaseController()
        low, _ = c.create(spec(1, min_count=0, priority=0), now=0.0)
        high, _ = c.create(spec(1, min_count=0, priority=5), now=1.0)
        older, _ = c.create(spec(1, min_count=0, priority=0), now=2.0)
        assert only(c.register_rig("a", "w", caps(), 3.0), DivertRig)[0].lease_id == high.lease_id
        assert only(c.register_rig("b", "w", caps(), 3.0), DivertRig)[0].lease_id == low.lease_id
        assert c.get(older.lease_id).state is S.REQUESTED


class TestDisconnect:
    def test_replacement_is_drafted(self, caps: Caps, spec: Spec) -> None:
        c = controller(caps, "a", "b")
        c.register_rig("spare", "w", caps(hashrate=9e9), 0.0)  # costliest: left idle at first
        lease, actions = c.create(spec(2, queue="infer"), now=0.0)
        assert set(divert_tokens(actions)) == {"a", "b"}
        for rig_id, token in divert_tokens(actions).items():
            c.rig_serving(rig_id, token, 1.0)

        lost = c.rig_disconnected("a", 20.0)
        assert lost[:2] == [
            RequeueInFlight("a", lease.lease_id, "infer"),
            RigReleased("a", lease.lease_id, ReleaseReason.DISCONNECTED),
        ]
        (divert,) = only(lost, DivertRig)
        assert divert.rig_id == "spare" and divert.lease_id == lease.lease_id
        assert changes(lost) == []
        lease = c.get(lease.lease_id)
        assert lease.state is S.SERVING and lease.short_by == 0
        assert lease.stint("a") is not None and lease.stint("a").phase is RigPhase.LOST  # type: ignore[union-attr]
        assert c.rig("a").lease_id is None and not c.rig("a").connected

    def test_no_replacement_goes_on_short_then_fails(self, caps: Caps, spec: Spec) -> None:
        c = controller(caps, "a", "b")
        lease, actions = c.create(spec(2), now=0.0)
        for rig_id, token in divert_tokens(actions).items():
            c.rig_serving(rig_id, token, 1.0)
        first = c.rig_disconnected("a", 10.0)
        assert changes(first) == [] and not only(first, DivertRig)
        lease = c.get(lease.lease_id)
        assert lease.state is S.SERVING and lease.short_by == 1

        last = c.rig_disconnected("b", 20.0)
        assert RequeueInFlight("b", lease.lease_id, "q") in last
        assert changes(last) == [(S.SERVING, S.FAILED)]  # nothing to bring back
        lease = c.get(lease.lease_id)
        assert lease.ended_at == 20.0 and lease.note and "no rig" in lease.note
        assert c.next_deadline() is None

    def test_disconnect_while_returning_finishes_the_return(self, caps: Caps, spec: Spec) -> None:
        c = controller(caps, "a")
        _lease, actions = c.create(spec(1, 10.0), now=0.0)
        c.rig_serving("a", divert_tokens(actions)["a"], 1.0)
        c.tick(10.0)
        lost = c.rig_disconnected("a", 11.0)
        assert only(lost, RequeueInFlight) and not only(lost, RigReleased)
        assert changes(lost) == [(S.RETURNING, S.DONE)]

    def test_lease_due_but_not_ticked_ends_normally(self, caps: Caps, spec: Spec) -> None:
        c = controller(caps, "a", "spare")
        c.rig_disconnected("spare", 0.0)
        _lease, actions = c.create(spec(1, 10.0), now=0.0)
        c.rig_serving("a", divert_tokens(actions)["a"], 1.0)
        assert changes(c.rig_disconnected("a", 12.0)) == [(S.SERVING, S.DONE)]

    def test_reconnect_and_duplicates(self, caps: Caps, spec: Spec) -> None:
        c = controller(caps, "a")
        with pytest.raises(DuplicateRig):
            c.register_rig("a", "w", caps(), 1.0)
        assert c.rig_disconnected("a", 1.0) == []
        assert c.rig_disconnected("a", 2.0) == []  # already gone: no-op
        c.register_rig("a", "w2", caps(2), 3.0)
        assert c.rig("a").connected and c.rig("a").caps.gpu_count == 2
        with pytest.raises(UnknownRig):
            c.rig_disconnected("ghost", 3.0)

    def test_forget_rig(self, caps: Caps, spec: Spec) -> None:
        c = controller(caps, "a")
        with pytest.raises(InvalidTransition):
            c.forget_rig("a")
        c.rig_disconnected("a", 1.0)
        c.forget_rig("a")
        with pytest.raises(UnknownRig):
            c.rig("a")


class TestTimeouts:
    def test_drain_timeout_with_a_replacement(self, caps: Caps, spec: Spec) -> None:
        c = controller(caps, "a", drain_timeout_s=30.0)
        lease, _actions = c.create(spec(1), now=0.0)
        c.register_rig("spare", "w", caps(), 1.0)
        assert c.next_deadline() == 30.0
        fired = c.tick(30.0)
        assert fired[0] == RigReleased("a", lease.lease_id, ReleaseReason.DRAIN_TIMEOUT)
        (ret,) = only(fired, ReturnRig)
        (divert,) = only(fired, DivertRig)
        assert (ret.rig_id, divert.rig_id) == ("a", "spare")
        assert c.get(lease.lease_id).state is S.DRAINING
        # the slow rig comes back to mining and is not drafted into the same lease again
        assert c.rig_returned("a", ret.token, 31.0) == []
        assert c.rig("a").idle

    def test_drain_timeout_without_replacement_fails(self, caps: Caps, spec: Spec) -> None:
        c = controller(caps, "a", drain_timeout_s=30.0)
        lease, _ = c.create(spec(1), now=0.0)
        fired = c.tick(30.0)
        assert changes(fired) == [(S.DRAINING, S.RETURNING)]
        lease = c.get(lease.lease_id)
        assert lease.outcome is S.FAILED
        (ret,) = only(fired, ReturnRig)
        assert changes(c.rig_returned("a", ret.token, 31.0)) == [(S.RETURNING, S.FAILED)]

    def test_late_replacement_keeps_a_serving_lease(self, caps: Caps, spec: Spec) -> None:
        c = controller(caps, "a", "b", drain_timeout_s=30.0)
        lease, actions = c.create(spec(2), now=0.0)
        tokens = divert_tokens(actions)
        c.rig_serving("a", tokens["a"], 5.0)
        fired = c.tick(30.0)  # b never answered
        assert RigReleased("b", lease.lease_id, ReleaseReason.DRAIN_TIMEOUT) in fired
        assert c.get(lease.lease_id).state is S.SERVING
        assert c.get(lease.lease_id).short_by == 1
        # once back to mining, b is idle but barred from the lease it failed to join
        (ret,) = only(fired, ReturnRig)
        assert c.rig_returned("b", ret.token, 31.0) == []
        assert c.rig("b").idle and c.get(lease.lease_id).short_by == 1
        # another lease may take it
        _other, actions = c.create(spec(1), now=32.0)
        assert set(divert_tokens(actions)) == {"b"}

    def test_return_timeout_lets_the_rig_go(self, caps: Caps, spec: Spec) -> None:
        c = controller(caps, "a", return_timeout_s=20.0)
        lease, actions = c.create(spec(1, 10.0), now=0.0)
        c.rig_serving("a", divert_tokens(actions)["a"], 1.0)
        c.tick(10.0)
        assert c.next_deadline() == 30.0
        fired = c.tick(30.0)
        assert RequeueInFlight("a", lease.lease_id, "q") in fired
        assert changes(fired) == [(S.RETURNING, S.DONE)]
        assert c.get(lease.lease_id).rigs[0].phase is RigPhase.LOST
        assert c.rig("a").idle

    def test_agent_giving_up_is_replaced(self, caps: Caps, spec: Spec) -> None:
        c = controller(caps, "a")
        lease, actions = c.create(spec(1), now=0.0)
        token = divert_tokens(actions)["a"]
        c.rig_serving("a", token, 1.0)
        c.register_rig("spare", "w", caps(), 2.0)
        quit_ = c.rig_returned("a", token, 5.0)
        assert RequeueInFlight("a", lease.lease_id, "q") in quit_
        assert RigReleased("a", lease.lease_id, ReleaseReason.AGENT_RETURNED) in quit_
        assert [d.rig_id for d in only(quit_, DivertRig)] == ["spare"]
        assert c.get(lease.lease_id).stint("a").phase is RigPhase.RETURNED  # type: ignore[union-attr]

    def test_tick_leaves_nothing_due(self, caps: Caps, spec: Spec) -> None:
        c = controller(caps, "a", "b", drain_timeout_s=5.0, return_timeout_s=5.0)
        c.create(spec(1, 3.0), now=0.0)
        c.create(spec(1, 50.0), now=0.0)
        for now in (3.0, 5.0, 8.0, 10.0, 50.0, 55.0):
            c.tick(now)
            deadline = c.next_deadline()
            assert deadline is None or deadline > now


class TestTimeAndArguments:
    def test_now_never_goes_backwards(self, caps: Caps, spec: Spec) -> None:
        c = controller(caps, "a")
        lease, actions = c.create(spec(1), now=100.0)
        c.rig_serving("a", divert_tokens(actions)["a"], 50.0)
        assert c.get(lease.lease_id).serving_since == 100.0

    @pytest.mark.parametrize("now", [float("nan"), float("inf"), "1", None])
    def test_now_must_be_a_finite_number(self, caps: Caps, now: object) -> None:
        c = LeaseController()
        with pytest.raises(BadValue):
            c.register_rig("a", "w", caps(), now)  # type: ignore[arg-type]
        with pytest.raises(BadValue):
            c.tick(now)  # type: ignore[arg-type]

    def test_bad_registration_changes_nothing(self) -> None:
        c = LeaseController()
        with pytest.raises(BadValue):
            c.register_rig("a", "w", {"gpus": []}, 0.0)  # type: ignore[arg-type]
        with pytest.raises(BadValue):
            c.register_rig("", "w", RigCapabilities.from_dict(_CAPS), 0.0)
        assert c.rigs() == []

    def test_record_job(self, caps: Caps, spec: Spec) -> None:
        c = controller(caps, "a", "b")
        lease, _ = c.create(spec(1), now=0.0)
        (stint,) = c.get(lease.lease_id).rigs
        c.record_job(lease.lease_id, stint.rig_id)
        c.record_job(lease.lease_id, stint.rig_id, jobs=4)
        assert c.get(lease.lease_id).rigs[0].jobs == 5
        other = "b" if stint.rig_id == "a" else "a"
        with pytest.raises(UnknownRig):
            c.record_job(lease.lease_id, other)
        with pytest.raises(UnknownLease):
            c.record_job("nope", stint.rig_id)
        with pytest.raises(BadValue):
            c.record_job(lease.lease_id, stint.rig_id, jobs=0)

    def test_forget_lease(self, caps: Caps, spec: Spec) -> None:
        c = controller(caps, "a")
        lease, _ = c.create(spec(1, min_count=0, gpu_model="none such"), now=0.0)
        with pytest.raises(InvalidTransition):
            c.forget(lease.lease_id)
        c.cancel(lease.lease_id, 1.0)
        c.forget(lease.lease_id)
        assert c.leases() == []

    def test_transition_table_is_closed(self) -> None:
        for state, targets in TRANSITIONS.items():
            assert state not in targets
            if state.is_terminal:
                assert not targets
        assert set(TRANSITIONS) == set(LeaseState)


_CAPS = {"gpus": [{"model": "RTX 4090", "vram_mb": 24576}], "hashrate": 1e9, "power_w": 300}
