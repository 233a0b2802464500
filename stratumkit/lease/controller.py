"""The lease controller: a sans-I/O state machine that diverts rigs to inference and back.

It does no I/O and reads no clock. Every entry point that depends on time takes ``now``
(seconds on a monotonic clock) and returns a list of :mod:`.actions` that the trio layer
carries out in order; :meth:`LeaseController.next_deadline` tells that layer when to call
:meth:`LeaseController.tick` next.

Lease states
------------

The happy path is REQUESTED -> DRAINING -> SERVING -> RETURNING -> DONE::

    state       event                                           next state
    ----------  ----------------------------------------------  -------------------------
    REQUESTED   rigs drafted (by create, or later backfill)     DRAINING
    REQUESTED   tick at ends_at (a pending lease: its fill_by)  EXPIRED
    REQUESTED   cancel                                          CANCELLED
    DRAINING    rig_serving from its first rig                  SERVING
    DRAINING    tick at ends_at                                 RETURNING -> EXPIRED
    DRAINING    cancel                                          RETURNING -> CANCELLED
    DRAINING    last active rig gone, no replacement            RETURNING -> FAILED
    SERVING     tick at ends_at                                 RETURNING -> DONE
    SERVING     cancel                                          RETURNING -> CANCELLED
    SERVING     last active rig gone, no replacement            RETURNING -> FAILED
    RETURNING   last bound rig returned, lost or timed out      the recorded outcome
    DONE, FAILED, EXPIRED, CANCELLED                            terminal

"RETURNING -> X" means the lease enters RETURNING with ``outcome`` X, sends ReturnRig to every
rig still serving or draining, and becomes X when no rig is bound to it any more. If no rig is
bound at that moment (every rig disconnected), it becomes X at once: that is how DRAINING ->
FAILED / EXPIRED and SERVING -> FAILED / DONE happen. SERVING means "has served": a lease
whose serving rig died stays SERVING while its replacement drains. Any event not in the table
raises InvalidTransition (``record_job`` still counts late results on a finished lease).

Rig phases within a lease (an Assignment)::

    DRAINING  --rig_serving-->  SERVING
    DRAINING, SERVING  --lease ends / drain timeout-->  RETURNING  --rig_returned-->  RETURNED
    DRAINING, SERVING  --rig_returned (the agent gave up)-->  RETURNED
    any bound phase  --disconnect / not resumed / return timeout-->  LOST

Rules
-----

1. One lease per rig. Only idle rigs (connected, bound to nothing) are drafted, and a rig is
   idle again only after its stint ends (RETURNED or LOST).
2. Fencing. Every command sent to a rig (DivertRig, ReturnRig) carries a fresh token from a
   counter that only grows over the controller's lifetime (``next_token`` seeds it; snapshots
   carry it). An acknowledgement must quote the rig's current token, else StaleToken. A
   repeated serving acknowledgement is a no-op; a repeated return acknowledgement is stale,
   since a returned rig holds no token. A job claim is fenced the same way: ``serving_lease``
   names the lease only to a connected rig serving it under the token it quotes.
3. Selection. Among idle matching rigs, ``create`` and replacements take first the rigs that
   lose the least hashing per GPU handed over (hashrate / GPU count, ascending), then the least
   efficient miners (hashes per joule, ascending), then by rig id so the choice is
   deterministic. ``create`` raises NoEligibleRigs, changing nothing, when fewer than
   ``selector.required`` rigs are idle; it takes up to ``selector.count``. Given ``wait_s``, it
   grants a pending lease instead: REQUESTED until ``fill_by`` (now + wait_s), drafted as a
   whole (at least ``required`` rigs at once) when enough rigs are idle, its time starting then.
4. Replacement and top-up. When a rig leaves a live lease early (disconnect, drain timeout,
   agent gave up, not resumed), RigReleased is emitted and an idle rig is drafted in its
   place if one matches. If none does, the lease goes on with fewer rigs; it fails (see the
   table) only when no rig is left serving or draining. Whenever a rig becomes idle, live
   leases that are short of rigs draft it, higher priority first, then older first (pending
   leases among them, each only once enough rigs for it are idle). A rig is
   never re-drafted into a lease it timed out of or walked away from. RequeueInFlight goes
   out whenever a stint ends without a clean return acknowledgement.
5. Drain timeout. A rig that does not acknowledge serving within ``drain_timeout_s`` of its
   DivertRig is sent back (ReturnRig) and replaced as in rule 4.
6. Return timeout. A rig that does not acknowledge its return within ``return_timeout_s`` is
   let go (LOST, RequeueInFlight) and becomes idle; the I/O layer has sent it work anyway.
7. Time. ``now`` never goes backwards: a value below one already seen counts as that one.
   Deadlines fire only in ``tick``; until then, acknowledgements and ``cancel`` still apply to
   a lease past its end, ``extend`` refuses it, and if its last rig leaves it ends as ``tick``
   would have ended it (not FAILED).
8. Restore. ``restore`` rebuilds leases and rigs from a snapshot with every rig disconnected
   (the pool restarted, so every connection is gone). A rig bound to a lease keeps its stint
   for ``reconnect_grace_s``: if it registers again quoting its token (``resume_token``) it
   resumes and its current command is sent again; otherwise it is released (NOT_RESUMED), its
   stint ending, in the record and the accounting, at the restore.
   A live disconnect ends the stint at once (rule 4), so only a restored or suspended rig can
   resume: ``rig_suspended`` (the rig's front end vanished, or the rig registered again on
   another front end of a shared lease plane) disconnects the rig as a restore would, keeping its
   stint and token for ``reconnect_grace_s``.
9. Back to mining. After a clean return the I/O layer reports the rig's first accepted share
   with ``rig_mining``; it is written on the stint (``mining_at``) and closes the stint's
   mining latency. A rig drafted or disconnected before that share records none.
10. Unhealthy rigs. ``rig_failed`` (the I/O layer saw the rig's backend fail job after job)
    marks the rig unhealthy; a rig serving or draining a lease is sent back (ReturnRig) and
    replaced as in rule 4, and its jobs are requeued when its stint ends. An unhealthy rig is
    never drafted; registering again (a restarted agent) makes it healthy.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from . import snapshot as codec
from .accounting import LeaseUsage, RigUsage, rig_usage, usage
from .actions import (
    Action,
    DivertRig,
    LeaseExtended,
    LeaseStateChanged,
    RequeueInFlight,
    ReturnRig,
    RigReleased,
)
from .errors import (
    BadSnapshot,
    BadValue,
    DuplicateLease,
    DuplicateRig,
    InvalidTransition,
    NoEligibleRigs,
    StaleToken,
    UnknownLease,
    UnknownRig,
)
from .model import (
    MAX_LEASE_S,
    Assignment,
    Lease,
    LeaseSpec,
    LeaseState,
    ReleaseReason,
    Rig,
    RigCapabilities,
    RigPhase,
    Selector,
)

__all__ = ["TRANSITIONS", "LeaseController"]

S = LeaseState

#: Every lease transition the controller may make; the docstring table says on which event.
TRANSITIONS: Mapping[LeaseState, frozenset[LeaseState]] = {
    S.REQUESTED: frozenset({S.DRAINING, S.EXPIRED, S.CANCELLED}),
    S.DRAINING: frozenset({S.SERVING, S.RETURNING, S.FAILED, S.EXPIRED}),
    S.SERVING: frozenset({S.RETURNING, S.FAILED, S.DONE}),
    S.RETURNING: frozenset({S.DONE, S.FAILED, S.EXPIRED, S.CANCELLED}),
    S.DONE: frozenset(),
    S.FAILED: frozenset(),
    S.EXPIRED: frozenset(),
    S.CANCELLED: frozenset(),
}

# Leaving for one of these reasons bars the rig from being drafted into that lease again.
_NO_REDRAFT = frozenset({ReleaseReason.DRAIN_TIMEOUT, ReleaseReason.AGENT_RETURNED, ReleaseReason.BACKEND_FAILED})


def _selection_key(rig: Rig) -> tuple[float, float, str]:
    caps = rig.caps
    per_gpu = caps.hashrate / caps.gpu_count
    efficiency = caps.hashrate / caps.power_w if caps.power_w > 0 else math.inf
    return (per_gpu, efficiency, rig.rig_id)


def _positive(name: str, value: object) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise BadValue(f"{name} must be a number, not {type(value).__name__}")
    number = float(value)
    if not math.isfinite(number) or number <= 0:
        raise BadValue(f"{name} must be positive and finite, got {number}")
    return number


class LeaseController:
    """Owns the rig registry and every lease; see the module docstring for the rules."""

    def __init__(
        self,
        *,
        drain_timeout_s: float = 120.0,
        return_timeout_s: float = 60.0,
        reconnect_grace_s: float = 120.0,
        next_token: int = 1,
        lease_id_prefix: str = "lease-",
    ) -> None:
        self.drain_timeout_s = _positive("drain_timeout_s", drain_timeout_s)
        self.return_timeout_s = _positive("return_timeout_s", return_timeout_s)
        self.reconnect_grace_s = _positive("reconnect_grace_s", reconnect_grace_s)
        if not isinstance(next_token, int) or isinstance(next_token, bool) or next_token < 1:
            raise BadValue(f"next_token must be an int >= 1, got {next_token!r}")
        if not isinstance(lease_id_prefix, str):
            raise BadValue("lease_id_prefix must be a string")
        self.lease_id_prefix = lease_id_prefix
        self._next_token = next_token
        self._next_lease_no = 1
        self._now = -math.inf
        self._rigs: dict[str, Rig] = {}
        self._leases: dict[str, Lease] = {}
        # rig id -> lease it returned from cleanly, until its first accepted share (rule 9);
        # not persisted: after a restore every connection, and so every such wait, is gone
        self._awaiting_share: dict[str, str] = {}

    # ------------------------------------------------------------------ queries

    @property
    def next_token(self) -> int:
        """The token the next command will carry (persist it to seed a new controller)."""
        return self._next_token

    def rig(self, rig_id: str) -> Rig:
        try:
            return self._rigs[rig_id]
        except KeyError:
            raise UnknownRig(f"no rig {rig_id!r}") from None

    def rigs(self) -> list[Rig]:
        """Every registered rig, in registration order."""
        return list(self._rigs.values())

    def get(self, lease_id: str) -> Lease:
        try:
            return self._leases[lease_id]
        except KeyError:
            raise UnknownLease(f"no lease {lease_id!r}") from None

    def leases(self, states: Iterable[LeaseState] | None = None) -> list[Lease]:
        """Leases in creation order, optionally only those in ``states``."""
        wanted = None if states is None else frozenset(states)
        return [lease for lease in self._leases.values() if wanted is None or lease.state in wanted]

    def usage(self, lease_id: str, now: float) -> LeaseUsage:
        """The lease's accounting so far (open intervals end at ``now``)."""
        return usage(self.get(lease_id), now)

    def next_deadline(self) -> float | None:
        """The earliest time at which :meth:`tick` has something to do, or None."""
        deadlines: list[float] = []
        for lease in self._leases.values():
            if lease.state.is_terminal:
                continue
            if lease.state.is_live:
                deadlines.append(lease.ends_at)
            for a in lease.rigs:
                if a.phase is RigPhase.DRAINING:
                    deadlines.append(a.drain_deadline)
                elif a.phase is RigPhase.RETURNING and a.return_deadline is not None:
                    deadlines.append(a.return_deadline)
        deadlines.extend(r.resume_by for r in self._rigs.values() if r.resume_by is not None)
        return min(deadlines, default=None)

    # ------------------------------------------------------------------ rigs

    def register_rig(
        self,
        rig_id: str,
        worker: str,
        caps: RigCapabilities,
        now: float,
        *,
        resume_token: int | None = None,
    ) -> list[Action]:
        """A rig agent connected and declared its capabilities.

        Also the way back for a known rig after a disconnect (new capabilities replace the old).
        A rig restored from a snapshot and still bound to a lease resumes its stint when
        ``resume_token`` equals its token; it is then sent its current command again.
        Raises DuplicateRig if the rig is still connected: the I/O layer closes the old
        connection (and reports it with :meth:`rig_disconnected`) before registering the new.
        """
        now = self._clock(now)
        fresh = Rig(rig_id=rig_id, worker=worker, caps=caps, connected=True)  # validates
        actions: list[Action] = []
        old = self._rigs.get(rig_id)
        if old is not None and old.connected:
            raise DuplicateRig(f"rig {rig_id!r} is already connected")
        if old is not None and old.lease_id is not None:
            if resume_token is not None and resume_token == old.token:
                rig = replace(old, worker=worker, caps=caps, connected=True, resume_by=None)
                self._rigs[rig_id] = rig
                return self._resend(rig)
            # Connect the rig before ending its old stint, so the lease may draft it straight
            # back under a fresh token instead of failing for want of a rig.
            self._rigs[rig_id] = replace(fresh, lease_id=old.lease_id, token=old.token)
            lost_at = self._restored_at(old, now)
            self._leave(old.lease_id, rig_id, RigPhase.LOST, ReleaseReason.NOT_RESUMED, now, actions, lost_at)
        else:
            self._rigs[rig_id] = fresh
        self._backfill(now, actions)
        return actions

    def rig_failed(self, rig_id: str, now: float) -> list[Action]:
        """The rig's inference backend is failing: mark it unhealthy and take it off its lease
        (rule 10). A no-op for a rig already unhealthy and not serving."""
        now = self._clock(now)
        rig = self.rig(rig_id)
        self._rigs[rig_id] = replace(rig, healthy=False)
        actions: list[Action] = []
        if rig.lease_id is None:
            return actions
        i, stint = self._stint(rig.lease_id, rig_id)
        if stint.active:
            actions.append(RigReleased(rig_id, rig.lease_id, ReleaseReason.BACKEND_FAILED))
            self._send_back(rig.lease_id, i, stint, ReleaseReason.BACKEND_FAILED, now, actions)
            self._after_departure(rig.lease_id, now, actions)
        return actions

    def rig_disconnected(self, rig_id: str, now: float) -> list[Action]:
        """The rig's connection closed. A no-op for a rig already disconnected."""
        now = self._clock(now)
        rig = self.rig(rig_id)
        actions: list[Action] = []
        if not rig.connected:
            return actions
        self._rigs[rig_id] = replace(rig, connected=False)
        self._awaiting_share.pop(rig_id, None)
        if rig.lease_id is not None:
            self._leave(rig.lease_id, rig_id, RigPhase.LOST, ReleaseReason.DISCONNECTED, now, actions)
        return actions

    def rig_suspended(self, rig_id: str, now: float) -> list[Action]:
        """The rig's connection is gone with the front end that held it, not closed by the rig:
        it is disconnected but keeps its stint and token for ``reconnect_grace_s`` (rule 8), as
        after a restore. A rig bound to no lease is simply disconnected."""
        now = self._clock(now)
        rig = self.rig(rig_id)
        if not rig.connected:
            return []
        if rig.lease_id is None:
            return self.rig_disconnected(rig_id, now)
        self._rigs[rig_id] = replace(rig, connected=False, resume_by=now + self.reconnect_grace_s)
        self._awaiting_share.pop(rig_id, None)
        return []

    def forget_rig(self, rig_id: str) -> None:
        """Drop a disconnected, unbound rig from the registry (lease records keep its stints)."""
        rig = self.rig(rig_id)
        if rig.connected or rig.lease_id is not None:
            raise InvalidTransition(f"rig {rig_id!r} is connected or bound to a lease")
        del self._rigs[rig_id]
        self._awaiting_share.pop(rig_id, None)

    # ------------------------------------------------------------------ leases

    def create(
        self, spec: LeaseSpec, now: float, *, lease_id: str | None = None, wait_s: float | None = None
    ) -> tuple[Lease, list[Action]]:
        """Grant a lease and divert its rigs; see rule 3 for which rigs.

        ``lease_id`` defaults to ``lease_id_prefix`` plus a counter. Raises NoEligibleRigs
        (and changes nothing) if fewer than ``spec.selector.required`` rigs are available,
        unless ``wait_s`` is given: then the lease waits for them (rule 3).
        """
        now = self._clock(now)
        if not isinstance(spec, LeaseSpec):
            raise BadValue("spec must be a LeaseSpec")
        if wait_s is not None:
            wait_s = _positive("wait_s", wait_s)
            if wait_s > MAX_LEASE_S:
                raise BadValue(f"wait_s may be at most {MAX_LEASE_S:g} s")
        generated = lease_id is None
        if lease_id is None:
            while f"{self.lease_id_prefix}{self._next_lease_no}" in self._leases:
                self._next_lease_no += 1
            lease_id = f"{self.lease_id_prefix}{self._next_lease_no}"
        elif not isinstance(lease_id, str) or not lease_id:
            raise BadValue("lease_id must be a non-empty string")
        elif lease_id in self._leases:
            raise DuplicateLease(f"lease {lease_id!r} exists already")
        selector = spec.selector
        candidates = self._eligible(selector, frozenset())
        pending = wait_s is not None and len(candidates) < max(1, selector.required)
        if len(candidates) < selector.required and not pending:
            raise NoEligibleRigs(
                f"lease needs {selector.required} idle rig(s) matching {_describe(selector)}, "
                f"{len(candidates)} available",
                required=selector.required,
                available=len(candidates),
            )
        if generated:
            self._next_lease_no += 1
        fill_by = now + wait_s if pending and wait_s is not None else None
        lease = Lease(
            lease_id=lease_id,
            spec=spec,
            state=LeaseState.REQUESTED,
            created_at=now,
            ends_at=now + spec.duration_s if fill_by is None else fill_by,
            fill_by=fill_by,
        )
        self._leases[lease_id] = lease
        actions: list[Action] = [LeaseStateChanged(lease_id, None, LeaseState.REQUESTED)]
        if fill_by is None:
            self._draft(lease_id, candidates[: selector.count], now, actions)
        return self._leases[lease_id], actions

    def extend(self, lease_id: str, extra_s: float, now: float) -> list[Action]:
        """Push the lease's end back by ``extra_s`` seconds (live leases before their end)."""
        now = self._clock(now)
        extra = _positive("extra_s", extra_s)
        lease = self.get(lease_id)
        if not lease.state.is_live:
            raise InvalidTransition(f"lease {lease_id!r} is {lease.state.value}; cannot extend")
        if now >= lease.ends_at:
            raise InvalidTransition(f"lease {lease_id!r} has reached its end; cannot extend")
        ends_at = lease.ends_at + extra
        if ends_at - now > MAX_LEASE_S:
            raise BadValue(f"a lease may not run longer than {MAX_LEASE_S:g} s from now")
        self._leases[lease_id] = replace(lease, ends_at=ends_at)
        return [LeaseExtended(lease_id, ends_at)]

    def cancel(self, lease_id: str, now: float, *, curtailed: bool = False) -> list[Action]:
        """End a live lease now: its rigs are sent back, then it becomes CANCELLED.

        ``curtailed``: an operator's curtailment overrode the lease; its stints end with reason
        CURTAILED (each a forced restart for the SLA) instead of LEASE_ENDED."""
        now = self._clock(now)
        lease = self.get(lease_id)
        if not lease.state.is_live:
            raise InvalidTransition(f"lease {lease_id!r} is {lease.state.value}; cannot cancel")
        reason = ReleaseReason.CURTAILED if curtailed else ReleaseReason.LEASE_ENDED
        note = "curtailed by the operator" if curtailed else None
        actions: list[Action] = []
        if lease.state is LeaseState.REQUESTED:
            self._set_state(lease_id, LeaseState.CANCELLED, now, actions, note)
        else:
            self._begin_return(lease_id, LeaseState.CANCELLED, now, actions, note, reason=reason)
        return actions

    def forget(self, lease_id: str) -> None:
        """Drop a finished lease and its record (after billing has read its usage)."""
        lease = self.get(lease_id)
        if not lease.state.is_terminal:
            raise InvalidTransition(f"lease {lease_id!r} is {lease.state.value}; not finished")
        del self._leases[lease_id]
        for rig_id in [r for r, held in self._awaiting_share.items() if held == lease_id]:
            del self._awaiting_share[rig_id]

    def record_job(self, lease_id: str, rig_id: str, jobs: int = 1) -> None:
        """Count ``jobs`` finished by ``rig_id`` for the lease (late results count too)."""
        if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1:
            raise BadValue(f"jobs must be an int >= 1, got {jobs!r}")
        lease = self.get(lease_id)
        for i in range(len(lease.rigs) - 1, -1, -1):
            a = lease.rigs[i]
            if a.rig_id == rig_id:
                self._put_stint(lease_id, i, replace(a, jobs=a.jobs + jobs))
                return
        raise UnknownRig(f"rig {rig_id!r} never took part in lease {lease_id!r}")

    # ------------------------------------------------------------------ acknowledgements

    def serving_lease(self, rig_id: str, token: int) -> Lease:
        """The lease the rig serves under ``token``: the fence on a job claim (rule 2).

        Raises StaleToken if ``token`` is not the rig's current token, InvalidTransition if the
        rig is not connected or its stint is not serving (draining, or already sent back).
        """
        rig = self._acked(rig_id, token)
        assert rig.lease_id is not None
        _, stint = self._stint(rig.lease_id, rig_id)
        if stint.phase is not RigPhase.SERVING:
            raise InvalidTransition(f"rig {rig_id!r} is {stint.phase.value} in lease {rig.lease_id!r}; not serving")
        return self._leases[rig.lease_id]

    def rig_mining(self, rig_id: str, now: float) -> RigUsage | None:
        """The pool accepted a share from the rig: after a clean return, the first one closes the
        switch back (rule 9) and the stint's usage, with its mining latency, is returned; any other
        share returns None. Cheap enough to call on every share."""
        lease_id = self._awaiting_share.pop(rig_id, None)
        if lease_id is None or lease_id not in self._leases:
            return None
        now = self._clock(now)
        lease = self._leases[lease_id]
        for i in range(len(lease.rigs) - 1, -1, -1):
            stint = lease.rigs[i]
            if stint.rig_id == rig_id:
                if stint.phase is not RigPhase.RETURNED or stint.mining_at is not None:
                    return None
                stint = replace(stint, mining_at=now)
                self._put_stint(lease_id, i, stint)
                return rig_usage(stint, now)
        return None

    def rig_serving(self, rig_id: str, token: int, now: float) -> list[Action]:
        """The agent serves the lease's queue (acknowledging DivertRig ``token``)."""
        now = self._clock(now)
        rig = self._acked(rig_id, token)
        assert rig.lease_id is not None
        lease_id = rig.lease_id
        i, stint = self._stint(lease_id, rig_id)
        if stint.phase is RigPhase.SERVING:
            return []
        if stint.phase is not RigPhase.DRAINING:
            raise InvalidTransition(
                f"rig {rig_id!r} is {stint.phase.value} in lease {lease_id!r}; cannot start serving"
            )
        self._put_stint(lease_id, i, replace(stint, phase=RigPhase.SERVING, serving_at=now))
        actions: list[Action] = []
        if self._leases[lease_id].state is LeaseState.DRAINING:
            self._set_state(lease_id, LeaseState.SERVING, now, actions)
        return actions

    def rig_returned(self, rig_id: str, token: int, now: float) -> list[Action]:
        """The agent mines again (acknowledging ReturnRig ``token``).

        Quoting the DivertRig token instead means the agent gave up on the lease by itself (its
        inference backend failed, say): the rig leaves the lease early and is replaced.
        """
        now = self._clock(now)
        rig = self._acked(rig_id, token)
        assert rig.lease_id is not None
        lease_id = rig.lease_id
        _, stint = self._stint(lease_id, rig_id)
        actions: list[Action] = []
        reason = ReleaseReason.AGENT_RETURNED if stint.active else ReleaseReason.LEASE_ENDED
        self._leave(lease_id, rig_id, RigPhase.RETURNED, reason, now, actions)
        if stint.return_sent_at is not None:
            self._awaiting_share[rig_id] = lease_id
        self._backfill(now, actions)
        return actions

    # ------------------------------------------------------------------ time

    def tick(self, now: float) -> list[Action]:
        """Fire every deadline at or before ``now``: lease ends, drain, return and resume
        timeouts. Afterwards :meth:`next_deadline` is None or later than ``now``."""
        now = self._clock(now)
        actions: list[Action] = []
        for lease_id in list(self._leases):
            lease = self._leases[lease_id]
            if lease.state.is_live and now >= lease.ends_at:
                self._end(lease_id, now, actions)
        for lease_id in list(self._leases):
            # Handling one stint can change others (a failed lease sends its rigs back), so
            # re-read each stint; stints are only appended or replaced, never removed.
            if self._leases[lease_id].state.is_terminal:
                continue
            i = 0
            while i < len(self._leases[lease_id].rigs):
                a = self._leases[lease_id].rigs[i]
                if a.phase is RigPhase.DRAINING and now >= a.drain_deadline:
                    self._drain_timed_out(lease_id, a.rig_id, now, actions)
                elif a.phase is RigPhase.RETURNING and a.return_deadline is not None and now >= a.return_deadline:
                    reason = ReleaseReason.RETURN_TIMEOUT
                    self._leave(lease_id, a.rig_id, RigPhase.LOST, reason, now, actions)
                i += 1
        for rig_id in list(self._rigs):
            rig = self._rigs[rig_id]
            if rig.resume_by is not None and now >= rig.resume_by:
                self._rigs[rig_id] = replace(rig, resume_by=None)
                if rig.lease_id is not None:
                    reason = ReleaseReason.NOT_RESUMED
                    lost_at = self._restored_at(rig, now)
                    self._leave(rig.lease_id, rig_id, RigPhase.LOST, reason, now, actions, lost_at)
        self._backfill(now, actions)
        return actions

    # ------------------------------------------------------------------ persistence

    def snapshot(self, now: float) -> dict[str, Any]:
        """Everything needed to rebuild the controller, as plain msgpack-able data."""
        now = self._clock(now)
        return {
            "version": codec.SNAPSHOT_VERSION,
            "taken_at": now,
            "next_token": self._next_token,
            "next_lease_no": self._next_lease_no,
            "rigs": [codec.rig_to_dict(r) for r in self._rigs.values()],
            "leases": [codec.lease_to_dict(lease) for lease in self._leases.values()],
        }

    @classmethod
    def restore(
        cls,
        data: Mapping[str, Any],
        now: float,
        *,
        downtime_s: float = 0.0,
        drain_timeout_s: float = 120.0,
        return_timeout_s: float = 60.0,
        reconnect_grace_s: float = 120.0,
        lease_id_prefix: str = "lease-",
    ) -> LeaseController:
        """Rebuild a controller from :meth:`snapshot` in a new process whose clock reads ``now``.

        Every stored time is shifted so that the snapshot's moment falls ``downtime_s`` before
        ``now`` (the I/O layer measures the outage on the wall clock; 0 pauses lease clocks for
        the outage). Every rig comes back disconnected; see rule 8. Call :meth:`tick` next:
        deadlines that fell during the outage fire then.
        """
        if not isinstance(data, Mapping):
            raise BadSnapshot(f"snapshot must be a mapping, got {type(data).__name__}")
        if data.get("version") != codec.SNAPSHOT_VERSION:
            raise BadSnapshot(f"unknown snapshot version {data.get('version')!r}")
        if not isinstance(downtime_s, int | float) or not math.isfinite(downtime_s) or downtime_s < 0:
            raise BadValue(f"downtime_s must be finite and >= 0, got {downtime_s!r}")
        taken_at = data.get("taken_at")
        next_token = data.get("next_token")
        next_lease_no = data.get("next_lease_no")
        if not isinstance(taken_at, int | float) or not math.isfinite(taken_at):
            raise BadSnapshot("snapshot.taken_at must be a finite number")
        if not isinstance(next_token, int) or not isinstance(next_lease_no, int):
            raise BadSnapshot("snapshot counters must be ints")
        raw_rigs, raw_leases = data.get("rigs"), data.get("leases")
        if not isinstance(raw_rigs, list | tuple) or not isinstance(raw_leases, list | tuple):
            raise BadSnapshot("snapshot.rigs and snapshot.leases must be lists")
        try:
            controller = cls(
                drain_timeout_s=drain_timeout_s,
                return_timeout_s=return_timeout_s,
                reconnect_grace_s=reconnect_grace_s,
                next_token=next_token,
                lease_id_prefix=lease_id_prefix,
            )
        except BadValue as exc:
            raise BadSnapshot(f"snapshot: {exc}") from exc
        now = controller._clock(now)
        shift = (now - downtime_s) - float(taken_at)
        controller._next_lease_no = next_lease_no
        for raw in raw_leases:
            lease = codec.lease_from_dict(raw, shift)
            if lease.lease_id in controller._leases:
                raise BadSnapshot(f"lease {lease.lease_id!r} appears twice")
            controller._leases[lease.lease_id] = lease
        for raw in raw_rigs:
            rig = codec.rig_from_dict(raw, shift)
            if rig.rig_id in controller._rigs:
                raise BadSnapshot(f"rig {rig.rig_id!r} appears twice")
            resume_by = None if rig.lease_id is None else now + controller.reconnect_grace_s
            controller._rigs[rig.rig_id] = replace(rig, connected=False, resume_by=resume_by)
        controller._check_bindings()
        return controller

    # ------------------------------------------------------------------ internals

    def _clock(self, now: float) -> float:
        if not isinstance(now, int | float) or isinstance(now, bool) or not math.isfinite(now):
            raise BadValue(f"now must be a finite number, got {now!r}")
        if now > self._now:
            self._now = float(now)
        return self._now

    def _issue_token(self) -> int:
        token = self._next_token
        self._next_token += 1
        return token

    def _acked(self, rig_id: str, token: int) -> Rig:
        if not isinstance(token, int) or isinstance(token, bool):
            raise BadValue(f"token must be an int, got {token!r}")
        rig = self.rig(rig_id)
        if rig.token is None or token != rig.token:
            raise StaleToken(rig_id, token, rig.token)
        if not rig.connected:
            raise InvalidTransition(f"rig {rig_id!r} is not connected")
        return rig

    def _stint(self, lease_id: str, rig_id: str) -> tuple[int, Assignment]:
        """The bound stint of ``rig_id`` in the lease (there is exactly one, by rule 1)."""
        for i, a in enumerate(self._leases[lease_id].rigs):
            if a.rig_id == rig_id and a.holding:
                return i, a
        raise AssertionError(f"rig {rig_id!r} is bound to {lease_id!r} but holds no stint in it")

    def _put_stint(self, lease_id: str, index: int, stint: Assignment) -> None:
        lease = self._leases[lease_id]
        rigs = (*lease.rigs[:index], stint, *lease.rigs[index + 1 :])
        self._leases[lease_id] = replace(lease, rigs=rigs)

    def _set_state(
        self,
        lease_id: str,
        new: LeaseState,
        now: float,
        actions: list[Action],
        note: str | None = None,
    ) -> None:
        lease = self._leases[lease_id]
        if new not in TRANSITIONS[lease.state]:
            raise AssertionError(f"lease {lease_id!r}: {lease.state} -> {new} is not allowed")
        changes: dict[str, Any] = {"state": new}
        if new is LeaseState.SERVING:
            changes["serving_since"] = now
        if new.is_terminal:
            changes["ended_at"] = now
            changes["outcome"] = new
        if note is not None:
            changes["note"] = note
        self._leases[lease_id] = replace(lease, **changes)
        actions.append(LeaseStateChanged(lease_id, lease.state, new))

    def _eligible(self, selector: Selector, exclude: frozenset[str]) -> list[Rig]:
        rigs = [
            rig
            for rig in self._rigs.values()
            if rig.idle and rig.rig_id not in exclude and selector.matches(rig.caps, rig.rig_id)
        ]
        rigs.sort(key=_selection_key)
        return rigs

    def _draft(self, lease_id: str, rigs: list[Rig], now: float, actions: list[Action]) -> None:
        if not rigs:
            return
        if self._leases[lease_id].state is LeaseState.REQUESTED:
            waited = self._leases[lease_id]
            if waited.fill_by is not None:  # a pending lease's time starts when it gets its rigs
                self._leases[lease_id] = replace(waited, ends_at=now + waited.spec.duration_s)
            self._set_state(lease_id, LeaseState.DRAINING, now, actions)
        lease = self._leases[lease_id]
        stints = list(lease.rigs)
        for rig in rigs:
            token = self._issue_token()
            stints.append(
                Assignment(
                    rig_id=rig.rig_id,
                    gpus=rig.caps.gpu_count,
                    hashrate=rig.caps.hashrate,
                    token=token,
                    phase=RigPhase.DRAINING,
                    diverted_at=now,
                    drain_deadline=now + self.drain_timeout_s,
                )
            )
            self._rigs[rig.rig_id] = replace(rig, lease_id=lease_id, token=token)
            self._awaiting_share.pop(rig.rig_id, None)
            actions.append(DivertRig(rig.rig_id, lease_id, token, lease.spec.queue, lease.ends_at))
        self._leases[lease_id] = replace(lease, rigs=tuple(stints))

    def _fill(self, lease_id: str, now: float, actions: list[Action]) -> None:
        """Draft idle rigs into a live lease that is short of its count (rule 4)."""
        lease = self._leases[lease_id]
        if not lease.state.is_live or now >= lease.ends_at or lease.short_by == 0:
            return
        barred = frozenset(a.rig_id for a in lease.rigs if a.reason in _NO_REDRAFT)
        picks = self._eligible(lease.spec.selector, barred)[: lease.short_by]
        if lease.state is LeaseState.REQUESTED and lease.fill_by is not None:
            if len(picks) < max(1, lease.spec.selector.required):
                return  # a pending lease is drafted whole, or waits on
        self._draft(lease_id, picks, now, actions)

    def _backfill(self, now: float, actions: list[Action]) -> None:
        if not any(rig.idle for rig in self._rigs.values()):
            return
        order = sorted(self._leases.values(), key=lambda lease: -lease.spec.priority)
        for lease in order:
            self._fill(lease.lease_id, now, actions)

    def _end(self, lease_id: str, now: float, actions: list[Action]) -> None:
        """The lease reached ``ends_at``."""
        state = self._leases[lease_id].state
        if state is LeaseState.REQUESTED:
            self._set_state(lease_id, LeaseState.EXPIRED, now, actions, "no rig was found in time")
        elif state is LeaseState.DRAINING:
            self._begin_return(lease_id, LeaseState.EXPIRED, now, actions, "ended before serving")
        elif state is LeaseState.SERVING:
            self._begin_return(lease_id, LeaseState.DONE, now, actions)

    def _begin_return(
        self,
        lease_id: str,
        outcome: LeaseState,
        now: float,
        actions: list[Action],
        note: str | None = None,
        *,
        reason: ReleaseReason = ReleaseReason.LEASE_ENDED,
    ) -> None:
        lease = self._leases[lease_id]
        if not lease.holding:
            self._set_state(lease_id, outcome, now, actions, note)
            return
        self._set_state(lease_id, LeaseState.RETURNING, now, actions, note)
        self._leases[lease_id] = replace(self._leases[lease_id], outcome=outcome)
        for i, a in enumerate(lease.rigs):
            if a.active:
                self._send_back(lease_id, i, a, reason, now, actions)

    def _send_back(
        self,
        lease_id: str,
        index: int,
        stint: Assignment,
        reason: ReleaseReason,
        now: float,
        actions: list[Action],
    ) -> None:
        token = self._issue_token()
        self._put_stint(
            lease_id,
            index,
            replace(
                stint,
                phase=RigPhase.RETURNING,
                token=token,
                return_sent_at=now,
                return_deadline=now + self.return_timeout_s,
                reason=reason,
            ),
        )
        self._rigs[stint.rig_id] = replace(self._rigs[stint.rig_id], token=token)
        actions.append(ReturnRig(stint.rig_id, lease_id, token))

    def _drain_timed_out(self, lease_id: str, rig_id: str, now: float, actions: list[Action]) -> None:
        i, stint = self._stint(lease_id, rig_id)
        actions.append(RigReleased(rig_id, lease_id, ReleaseReason.DRAIN_TIMEOUT))
        self._send_back(lease_id, i, stint, ReleaseReason.DRAIN_TIMEOUT, now, actions)
        self._after_departure(lease_id, now, actions)

    def _leave(
        self,
        lease_id: str,
        rig_id: str,
        phase: RigPhase,
        reason: ReleaseReason,
        now: float,
        actions: list[Action],
        ended_at: float | None = None,
    ) -> None:
        """End the rig's stint (RETURNED or LOST) and unbind the rig; the stint's record ends at
        ``ended_at`` (default ``now``)."""
        lease = self._leases[lease_id]
        i, stint = self._stint(lease_id, rig_id)
        early = stint.active
        self._put_stint(
            lease_id,
            i,
            replace(stint, phase=phase, ended_at=now if ended_at is None else ended_at, reason=stint.reason or reason),
        )
        rig = self._rigs[rig_id]
        self._rigs[rig_id] = replace(rig, lease_id=None, token=None, resume_by=None)
        if not (phase is RigPhase.RETURNED and reason is ReleaseReason.LEASE_ENDED):
            actions.append(RequeueInFlight(rig_id, lease_id, lease.spec.queue))
        if early:
            actions.append(RigReleased(rig_id, lease_id, reason))
        self._after_departure(lease_id, now, actions)

    def _after_departure(self, lease_id: str, now: float, actions: list[Action]) -> None:
        """A rig stopped serving or left: replace it, fail the lease, or finish the return."""
        lease = self._leases[lease_id]
        if lease.state in (LeaseState.DRAINING, LeaseState.SERVING):
            if now >= lease.ends_at:
                # Due but not yet ticked: end it as tick would, rather than call it failed.
                if not lease.active:
                    self._end(lease_id, now, actions)
                return
            self._fill(lease_id, now, actions)
            if not self._leases[lease_id].active:
                self._begin_return(lease_id, LeaseState.FAILED, now, actions, "no rig left serving or draining")
        elif lease.state is LeaseState.RETURNING and not lease.holding:
            assert lease.outcome is not None
            self._set_state(lease_id, lease.outcome, now, actions)

    def _restored_at(self, rig: Rig, now: float) -> float:
        """When a restored rig was last known to hold its stint: the restore (its resume window's
        start). A rig that never resumed is not billed for the window it did not come back in."""
        if rig.resume_by is None:
            return now
        return min(now, rig.resume_by - self.reconnect_grace_s)

    def _resend(self, rig: Rig) -> list[Action]:
        """Send a resumed rig its current command again (same token: agents treat it as a no-op
        if they already had it)."""
        assert rig.lease_id is not None and rig.token is not None
        lease = self._leases[rig.lease_id]
        _, stint = self._stint(rig.lease_id, rig.rig_id)
        if stint.phase is RigPhase.RETURNING:
            return [ReturnRig(rig.rig_id, rig.lease_id, rig.token)]
        return [DivertRig(rig.rig_id, rig.lease_id, rig.token, lease.spec.queue, lease.ends_at)]

    def _check_bindings(self) -> None:
        """Refuse restored state that breaks rule 1 or the token binding."""
        bound: dict[str, tuple[str, int]] = {}
        for lease in self._leases.values():
            for a in lease.holding:
                if a.rig_id in bound:
                    raise BadSnapshot(f"rig {a.rig_id!r} is bound to two stints")
                bound[a.rig_id] = (lease.lease_id, a.token)
            if lease.state is LeaseState.RETURNING and (lease.outcome is None or not lease.holding):
                raise BadSnapshot(f"lease {lease.lease_id!r}: returning needs an outcome and rigs")
            if lease.state in (LeaseState.DRAINING, LeaseState.SERVING) and not lease.active:
                raise BadSnapshot(f"lease {lease.lease_id!r} is {lease.state.value} with no rig")
            if lease.state is LeaseState.REQUESTED and lease.rigs:
                raise BadSnapshot(f"lease {lease.lease_id!r} is requested but has rigs")
            if not lease.state.is_live and lease.active:
                raise BadSnapshot(f"lease {lease.lease_id!r} is {lease.state.value} with active rigs")
            if lease.state.is_terminal and lease.holding:
                raise BadSnapshot(f"lease {lease.lease_id!r} is finished but holds rigs")
        for rig in self._rigs.values():
            expected = bound.pop(rig.rig_id, None)
            actual = None if rig.lease_id is None or rig.token is None else (rig.lease_id, rig.token)
            if expected != actual:
                raise BadSnapshot(f"rig {rig.rig_id!r} disagrees with its lease record")
        if bound:
            raise BadSnapshot(f"stints name unknown rigs: {sorted(bound)}")
        tokens = [a.token for lease in self._leases.values() for a in lease.rigs]
        if tokens and max(tokens) >= self._next_token:
            raise BadSnapshot("next_token is not above every token issued")


def _describe(selector: Selector) -> str:
    parts = []
    if selector.gpu_model is not None:
        parts.append(f"gpu_model={selector.gpu_model!r}")
    if selector.min_vram_mb:
        parts.append(f"min_vram_mb={selector.min_vram_mb}")
    if selector.model is not None:
        parts.append(f"model={selector.model!r}")
    if selector.rigs:
        parts.append(f"rigs={list(selector.rigs)!r}")
    return "{" + ", ".join(parts) + "}" if parts else "any GPU"
