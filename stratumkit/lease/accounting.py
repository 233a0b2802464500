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
"""

from __future__ import annotations

from dataclasses import dataclass

from .model import Assignment, Lease, LeaseState, ReleaseReason, RigPhase

__all__ = ["LeaseUsage", "RigUsage", "rig_usage", "usage"]


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
