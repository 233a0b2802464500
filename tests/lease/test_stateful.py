"""Random sequences of rig, lease, acknowledgement, time and restart events.

Whatever the order, the controller must keep every rig in at most one lease, keep rig and lease
records in agreement, fence stale tokens, end every lease on time, and leave no idle rig unused
while a live lease that would take it is short.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import msgpack
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from stratumkit.lease import (
    GPU,
    TRANSITIONS,
    Action,
    DivertRig,
    DuplicateRig,
    InvalidTransition,
    Lease,
    LeaseController,
    LeaseSpec,
    LeaseState,
    LeaseStateChanged,
    NoEligibleRigs,
    ReleaseReason,
    ReturnRig,
    RigCapabilities,
    RigPhase,
    Selector,
    StaleToken,
    UnknownRig,
)

RIG_IDS = ("r0", "r1", "r2", "r3", "r4", "r5")
CAPS = (
    RigCapabilities((GPU("RTX 4090", 24576),), ("llama",), 1.2e9, 450.0),
    RigCapabilities((GPU("RTX 3090", 24576), GPU("RTX 3090", 24576)), ("llama", "mistral"), 2e9, 700.0),
    RigCapabilities((GPU("A100", 81920),), ("mistral",), 9e8, 400.0),
)
BARRED = frozenset({ReleaseReason.DRAIN_TIMEOUT, ReleaseReason.AGENT_RETURNED})
DRAIN_S, RETURN_S, GRACE_S = 20.0, 15.0, 25.0

selectors = st.builds(
    Selector,
    count=st.integers(1, 3),
    gpu_model=st.sampled_from([None, None, "RTX 3090", "A100"]),
    min_vram_mb=st.sampled_from([0, 0, 30000]),
    model=st.sampled_from([None, None, "llama", "mistral"]),
    min_count=st.sampled_from([None, 0, 1]),
).filter(lambda s: s.min_count is None or s.min_count <= s.count)


class LeaseMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.c = LeaseController(drain_timeout_s=DRAIN_S, return_timeout_s=RETURN_S, reconnect_grace_s=GRACE_S)
        self.now = 0.0
        self.max_token = 0

    # ----------------------------------------------------------------- helpers

    def absorb(self, actions: Sequence[Action], resent: int | None = None) -> None:
        """Check the actions of one call: legal transitions, fresh tokens, rigs told last."""
        last_command: dict[str, int] = {}
        for action in actions:
            if isinstance(action, LeaseStateChanged):
                if action.old is None:
                    assert action.new is LeaseState.REQUESTED
                else:
                    assert action.new in TRANSITIONS[action.old]
            if isinstance(action, DivertRig | ReturnRig):
                if resent is not None:
                    assert action.token == resent
                else:
                    assert action.token > self.max_token
                    self.max_token = action.token
                last_command[action.rig_id] = action.token
        for rig_id, token in last_command.items():
            rig = self.c.rig(rig_id)
            if rig.lease_id is not None:
                assert rig.token == token

    def pick_lease(self, index: int) -> Lease | None:
        leases = self.c.leases()
        return leases[index % len(leases)] if leases else None

    def rig_or_none(self, rig_id: str) -> object:
        try:
            return self.c.rig(rig_id)
        except UnknownRig:
            return None

    # ----------------------------------------------------------------- rules

    @initialize(kinds=st.lists(st.integers(0, len(CAPS) - 1), min_size=2, max_size=len(RIG_IDS)))
    def fleet(self, kinds: list[int]) -> None:
        for rig_id, kind in zip(RIG_IDS, kinds, strict=False):
            assert self.c.register_rig(rig_id, "w", CAPS[kind], self.now) == []

    @rule(dt=st.one_of(st.floats(0.0, 4.0), st.floats(0.0, 30.0)))
    def advance(self, dt: float) -> None:
        self.now += dt
        self.absorb(self.c.tick(self.now))
        for lease in self.c.leases():
            assert not (lease.state.is_live and lease.ends_at <= self.now), lease
        deadline = self.c.next_deadline()
        assert deadline is None or deadline > self.now

    @rule(rig_id=st.sampled_from(RIG_IDS), kind=st.integers(0, len(CAPS) - 1), resume=st.booleans())
    def register(self, rig_id: str, kind: int, resume: bool) -> None:
        try:
            old = self.c.rig(rig_id)
        except UnknownRig:
            old = None
        token = old.token if old is not None and resume else None
        if old is not None and old.connected:
            with pytest.raises(DuplicateRig):
                self.c.register_rig(rig_id, "w", CAPS[kind], self.now, resume_token=token)
            return
        actions = self.c.register_rig(rig_id, "w", CAPS[kind], self.now, resume_token=token)
        if old is not None and old.lease_id is not None and token is not None:
            assert len(actions) == 1
            self.absorb(actions, resent=token)
            assert self.c.rig(rig_id).lease_id == old.lease_id
        else:
            self.absorb(actions)
        assert self.c.rig(rig_id).connected

    @rule(rig_id=st.sampled_from(RIG_IDS))
    def disconnect(self, rig_id: str) -> None:
        if self.rig_or_none(rig_id) is None:
            with pytest.raises(UnknownRig):
                self.c.rig_disconnected(rig_id, self.now)
            return
        self.absorb(self.c.rig_disconnected(rig_id, self.now))
        assert not self.c.rig(rig_id).connected
        assert self.c.rig(rig_id).lease_id is None or self.c.rig(rig_id).resume_by is not None

    @rule(selector=selectors, duration=st.floats(1.0, 120.0), priority=st.integers(0, 2))
    def create(self, selector: Selector, duration: float, priority: int) -> None:
        spec = LeaseSpec(selector, "q", duration, priority=priority)
        eligible = sum(1 for r in self.c.rigs() if r.idle and selector.matches(r.caps))
        try:
            _lease, actions = self.c.create(spec, self.now)
        except NoEligibleRigs:
            assert eligible < selector.required
            return
        assert eligible >= selector.required
        diverted = [a for a in actions if isinstance(a, DivertRig)]
        assert len(diverted) == min(selector.count, eligible)
        assert all(selector.matches(self.c.rig(d.rig_id).caps) for d in diverted)
        self.absorb(actions)

    @rule(index=st.integers(0, 20))
    def cancel(self, index: int) -> None:
        lease = self.pick_lease(index)
        if lease is None:
            return
        if lease.state.is_live:
            self.absorb(self.c.cancel(lease.lease_id, self.now))
            assert self.c.get(lease.lease_id).state in (LeaseState.RETURNING, LeaseState.CANCELLED)
        else:
            with pytest.raises(InvalidTransition):
                self.c.cancel(lease.lease_id, self.now)

    @rule(index=st.integers(0, 20), extra=st.floats(1.0, 60.0))
    def extend(self, index: int, extra: float) -> None:
        lease = self.pick_lease(index)
        if lease is None:
            return
        if lease.state.is_live and self.now < lease.ends_at:
            self.absorb(self.c.extend(lease.lease_id, extra, self.now))
            assert self.c.get(lease.lease_id).ends_at == lease.ends_at + extra
        else:
            with pytest.raises(InvalidTransition):
                self.c.extend(lease.lease_id, extra, self.now)

    @rule(
        index=st.integers(0, 20),
        serving=st.booleans(),
        honest=st.sampled_from([True, True, False]),
        skew=st.integers(1, 5),
    )
    def acknowledge(self, index: int, serving: bool, honest: bool, skew: int) -> None:
        """An agent acknowledges serving or returning, with its token or a stale one.

        Bound rigs are picked first so that acknowledgements mostly meet a live command.
        """
        rigs = self.c.rigs()
        if not rigs:
            return
        bound = [r for r in rigs if r.token is not None]
        pool = bound if bound and index % 4 else rigs
        rig = pool[index % len(pool)]
        ack = self.c.rig_serving if serving else self.c.rig_returned
        if not honest or rig.token is None:
            stale = (rig.token or self.max_token) + skew * (1 if honest else -1)
            before = self.c.leases()
            with pytest.raises(StaleToken):
                ack(rig.rig_id, stale, self.now)
            assert self.c.leases() == before
            return
        try:
            self.absorb(ack(rig.rig_id, rig.token, self.now))
        except InvalidTransition:
            # serving acked while returning, or an ack from a rig that is not connected
            assert serving or not rig.connected
            return
        if not serving:  # the stint is over; a redraft would carry a fresh token
            assert self.c.rig(rig.rig_id).token != rig.token

    @rule(index=st.integers(0, 20))
    def agent_follows_orders(self, index: int) -> None:
        """A well-behaved agent: acknowledges whatever it was last told."""
        bound = [r for r in self.c.rigs() if r.token is not None and r.connected]
        if not bound:
            return
        rig = bound[index % len(bound)]
        assert rig.lease_id is not None and rig.token is not None
        stint = self.c.get(rig.lease_id).stint(rig.rig_id)
        assert stint is not None and stint.token == rig.token
        if stint.phase is RigPhase.DRAINING:
            self.absorb(self.c.rig_serving(rig.rig_id, rig.token, self.now))
            after = self.c.get(rig.lease_id)
            assert after.state is LeaseState.SERVING
        elif stint.phase is RigPhase.RETURNING:
            self.absorb(self.c.rig_returned(rig.rig_id, rig.token, self.now))
            assert self.c.get(rig.lease_id).stint(rig.rig_id).phase is RigPhase.RETURNED  # type: ignore[union-attr]
        else:
            assert stint.phase is RigPhase.SERVING
            assert self.c.rig_serving(rig.rig_id, rig.token, self.now) == []

    @rule(index=st.integers(0, 20), which=st.integers(0, 5))
    def record_job(self, index: int, which: int) -> None:
        lease = self.pick_lease(index)
        if lease is None or not lease.rigs:
            return
        stint = lease.rigs[which % len(lease.rigs)]
        before = self.c.usage(lease.lease_id, self.now).jobs_done
        self.c.record_job(lease.lease_id, stint.rig_id)
        assert self.c.usage(lease.lease_id, self.now).jobs_done == before + 1

    @precondition(lambda self: self.c.leases())
    @rule(downtime=st.sampled_from([0.0, 0.0, 5.0, 40.0]))
    def restart(self, downtime: float) -> None:
        data = msgpack.unpackb(msgpack.packb(self.c.snapshot(self.now)))
        restored = LeaseController.restore(
            data,
            self.now,
            downtime_s=downtime,
            drain_timeout_s=DRAIN_S,
            return_timeout_s=RETURN_S,
            reconnect_grace_s=GRACE_S,
        )
        before, after = self.c.leases(), restored.leases()
        if downtime == 0.0:
            assert after == before
        else:
            assert [(b.lease_id, b.state, b.rigs and b.rigs[0].token) for b in before] == [
                (a.lease_id, a.state, a.rigs and a.rigs[0].token) for a in after
            ]
            for b, a in zip(before, after, strict=True):
                assert a.ends_at - a.created_at == pytest.approx(b.ends_at - b.created_at)
        assert restored.next_token == self.c.next_token
        assert not any(r.connected for r in restored.rigs())
        self.c = restored

    # ----------------------------------------------------------------- invariants

    @invariant()
    def one_lease_per_rig_and_records_agree(self) -> None:
        bound: dict[str, list[tuple[str, int]]] = defaultdict(list)
        for lease in self.c.leases():
            for stint in lease.holding:
                bound[stint.rig_id].append((lease.lease_id, stint.token))
        for rig_id, stints in bound.items():
            assert len(stints) == 1, (rig_id, stints)
        for rig in self.c.rigs():
            held = bound.get(rig.rig_id)
            assert (rig.lease_id, rig.token) == (held[0] if held else (None, None))
            if rig.lease_id is not None and not rig.connected:
                assert rig.resume_by is not None
            if rig.token is not None:
                assert rig.token <= self.max_token

    @invariant()
    def lease_states_match_their_rigs(self) -> None:
        for lease in self.c.leases():
            assert len(lease.active) <= lease.spec.selector.count
            state = lease.state
            if state is LeaseState.REQUESTED:
                assert lease.rigs == ()
            elif state is LeaseState.DRAINING:
                assert lease.active and lease.serving_since is None
                assert all(a.serving_at is None for a in lease.rigs)
            elif state is LeaseState.SERVING:
                assert lease.active and lease.serving_since is not None
            elif state is LeaseState.RETURNING:
                assert lease.holding and not lease.active
                assert lease.outcome is not None and lease.outcome.is_terminal
            else:
                assert not lease.holding and lease.ended_at is not None
                assert lease.outcome is state

    @invariant()
    def no_idle_rig_left_out(self) -> None:
        idle = [r for r in self.c.rigs() if r.idle]
        for lease in self.c.leases():
            if not lease.state.is_live or lease.short_by == 0 or self.now >= lease.ends_at:
                continue
            barred = {a.rig_id for a in lease.rigs if a.reason in BARRED}
            takers = [r.rig_id for r in idle if r.rig_id not in barred and lease.spec.selector.matches(r.caps)]
            assert not takers, (lease.lease_id, takers)


LeaseMachine.TestCase.settings = settings(max_examples=80, stateful_step_count=40, deadline=None, derandomize=False)
TestLeaseMachine = LeaseMachine.TestCase
