"""Usage of a lease, computed from its record: what it served and what it cost the pool.

A pure function of a :class:`~stratumkit.lease.model.Lease` and ``now``; nothing is stored
beyond the lease record itself (which the controller persists), so a report can be rebuilt at
any time, after a restore too. Per rig stint:

- away from mining: from DivertRig until the stint ended (returned or lost), or ``now``;
- serving: from the rig's serving acknowledgement until ReturnRig was sent or the stint ended
  (whichever came first), or ``now``;
- GPU-seconds: serving seconds x the rig's GPU count (the whole rig is diverted);
- hashing foregone: the rig's hashrate x seconds away, in hashes;
- drain latency: DivertRig -> serving acknowledgement; return latency: ReturnRig -> returned
  acknowledgement (only for rigs that acknowledged); mining latency: ReturnRig -> the first
  share the pool accepted after it (``LeaseController.rig_mining``), the whole switch back.

GPU count and hashrate are those the rig declared when it was drafted.

SLA (:func:`sla`, only for a lease whose spec carries an ``availability`` target):

- the window runs from the lease's start (its request; a pending lease's drafting) until it
  stopped wanting rigs (its end, a cancellation, a curtailment that overrode it, a failure:
  the first return sent at its end, else its terminal time) or ``now``, at most its ``ends_at``;
- owed rig-seconds: the selector's count x the window; served: every stint's serving time
  within it (drain time is not served); lost = owed - served;
- credited: the rig-seconds served short of ``target`` x owed (pro rata: nothing while the
  served fraction meets the target), plus ``restart_credit_s`` per forced restart: a stint that
  ended before the lease did (the rig was lost, returned on its own, failed, timed out
  draining, was not resumed after a pool restart, or was curtailed by an operator override),
  each of which makes the lease's work move to a replacement or stop. A lease ended by a
  curtailment is billed only for what it served and credited a restart per rig it held;
- GPU-seconds credited: credited rig-seconds x the lease's mean GPUs per stint; their worth in
  USD is the caller's (it knows the GPU-hour price).
"""

from __future__ import annotations

from dataclasses import dataclass

from .model import Assignment, Lease, LeaseState, ReleaseReason, RigPhase

__all__ = ["RESTART_CREDIT_S", "LeaseUsage", "RigUsage", "SlaUsage", "rig_usage", "sla", "usage"]

#: Rig-seconds credited per forced restart by default (NiceHash pays 1 s of GPU mining per restart).
RESTART_CREDIT_S = 1.0


@dataclass(frozen=True, slots=True)
class RigUsage:
    """One rig stint's share of a lease."""

    rig_id: str
    gpus: int
    phase: RigPhase
    reason: ReleaseReason | None
    away_s: float
    serving_s: float
    gpu_seconds: float
    hashes_foregone: float
    jobs: int
    drain_latency_s: float | None
    return_latency_s: float | None
    mining_latency_s: float | None


@dataclass(frozen=True, slots=True)
class LeaseUsage:
    """A lease's usage report; totals are sums over :attr:`rigs`."""

    lease_id: str
    state: LeaseState
    rigs: tuple[RigUsage, ...]
    gpu_seconds: float
    jobs_done: int
    hashes_foregone: float
    drain_latencies_s: tuple[float, ...]
    return_latencies_s: tuple[float, ...]
    mining_latencies_s: tuple[float, ...]
    rigs_left_early: int

    @property
    def gpu_hours(self) -> float:
        return self.gpu_seconds / 3600.0


def _span(start: float, end: float | None, now: float) -> float:
    stop = now if end is None else end
    return max(0.0, stop - start)


def rig_usage(stint: Assignment, now: float) -> RigUsage:
    away = _span(stint.diverted_at, stint.ended_at, now)
    serving = 0.0
    if stint.serving_at is not None:
        ends = [t for t in (stint.return_sent_at, stint.ended_at) if t is not None]
        serving = _span(stint.serving_at, min(ends) if ends else None, now)
    drain_latency = None
    if stint.serving_at is not None:
        drain_latency = stint.serving_at - stint.diverted_at
    return_latency = None
    if stint.phase is RigPhase.RETURNED and stint.return_sent_at is not None and stint.ended_at is not None:
        return_latency = stint.ended_at - stint.return_sent_at
    mining_latency = None
    if stint.mining_at is not None and stint.return_sent_at is not None:
        mining_latency = stint.mining_at - stint.return_sent_at
    return RigUsage(
        rig_id=stint.rig_id,
        gpus=stint.gpus,
        phase=stint.phase,
        reason=stint.reason,
        away_s=away,
        serving_s=serving,
        gpu_seconds=serving * stint.gpus,
        hashes_foregone=away * stint.hashrate,
        jobs=stint.jobs,
        drain_latency_s=drain_latency,
        return_latency_s=return_latency,
        mining_latency_s=mining_latency,
    )


def usage(lease: Lease, now: float) -> LeaseUsage:
    """The lease's usage as of ``now`` (only open intervals depend on it)."""
    rigs = tuple(rig_usage(stint, now) for stint in lease.rigs)
    return LeaseUsage(
        lease_id=lease.lease_id,
        state=lease.state,
        rigs=rigs,
        gpu_seconds=sum(r.gpu_seconds for r in rigs),
        jobs_done=sum(r.jobs for r in rigs),
        hashes_foregone=sum(r.hashes_foregone for r in rigs),
        drain_latencies_s=tuple(r.drain_latency_s for r in rigs if r.drain_latency_s is not None),
        return_latencies_s=tuple(r.return_latency_s for r in rigs if r.return_latency_s is not None),
        mining_latencies_s=tuple(r.mining_latency_s for r in rigs if r.mining_latency_s is not None),
        rigs_left_early=sum(1 for r in rigs if r.reason is not None and r.reason is not ReleaseReason.LEASE_ENDED),
    )


@dataclass(frozen=True, slots=True)
class SlaUsage:
    """A lease's availability against its SLA target, and what it is credited."""

    target: float
    owed_rig_s: float
    served_rig_s: float
    lost_rig_s: float
    shortfall_rig_s: float  # served short of target x owed
    restarts: int
    restart_credit_s: float  # per restart
    credited_rig_s: float
    credited_gpu_s: float

    @property
    def availability(self) -> float:
        """Served / owed (1.0 before any rig-second is owed)."""
        return 1.0 if self.owed_rig_s <= 0 else self.served_rig_s / self.owed_rig_s

    def credit_usd(self, gpu_usd_per_hour: float) -> float:
        return self.credited_gpu_s * gpu_usd_per_hour / 3600.0


def _window(lease: Lease, now: float) -> tuple[float, float]:
    if lease.fill_by is None:
        start = lease.created_at
    else:  # a pending lease's time starts when its rigs are drafted
        start = min((a.diverted_at for a in lease.rigs), default=now)
    ends = [now, lease.ends_at]
    if lease.ended_at is not None:
        ends.append(lease.ended_at)
    ends.extend(
        a.return_sent_at
        for a in lease.rigs
        if a.return_sent_at is not None and a.reason in (ReleaseReason.LEASE_ENDED, ReleaseReason.CURTAILED)
    )
    return start, max(start, min(ends))


def _served(stint: Assignment, start: float, end: float) -> float:
    if stint.serving_at is None:
        return 0.0
    stops = [t for t in (stint.return_sent_at, stint.ended_at) if t is not None]
    stop = min([end, *stops])
    return max(0.0, stop - max(stint.serving_at, start))


def _forced_restart(stint: Assignment) -> bool:
    return stint.reason is not None and stint.reason is not ReleaseReason.LEASE_ENDED


def sla(lease: Lease, now: float, restart_credit_s: float = RESTART_CREDIT_S) -> SlaUsage | None:
    """The lease's SLA as of ``now``, or None if its spec has no availability target."""
    target = lease.spec.availability
    if target is None:
        return None
    start, end = _window(lease, now)
    owed = lease.spec.selector.count * (end - start)
    served = min(owed, sum(_served(a, start, end) for a in lease.rigs))
    shortfall = max(0.0, target * owed - served)
    restarts = sum(1 for a in lease.rigs if _forced_restart(a))
    credited = shortfall + restarts * restart_credit_s
    gpus = sum(a.gpus for a in lease.rigs) / len(lease.rigs) if lease.rigs else 1.0
    return SlaUsage(
        target=target,
        owed_rig_s=owed,
        served_rig_s=served,
        lost_rig_s=owed - served,
        shortfall_rig_s=shortfall,
        restarts=restarts,
        restart_credit_s=restart_credit_s,
        credited_rig_s=credited,
        credited_gpu_s=credited * gpus,
    )
