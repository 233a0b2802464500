"""Per-lease accounting: GPU-seconds, jobs, hashing foregone, switch latencies."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from stratumkit.lease import (
    DivertRig,
    LeaseController,
    LeaseSpec,
    LeaseState,
    ReleaseReason,
    ReturnRig,
    RigCapabilities,
    RigPhase,
)
from stratumkit.lease.accounting import usage

Caps = Callable[..., RigCapabilities]
Spec = Callable[..., LeaseSpec]

H_A, H_B = 2e9, 5e8  # hashrates: rig "a" has 2 GPUs, rig "b" one


def run_lease(caps: Caps, spec: Spec) -> tuple[LeaseController, str]:
    """Created at 0 for 100 s; a serves at 5, b at 10; both back at 103 and 104."""
    c = LeaseController()
    c.register_rig("a", "w", caps(2, hashrate=H_A), 0.0)
    c.register_rig("b", "w", caps(1, hashrate=H_B), 0.0)
    lease, actions = c.create(spec(2, 100.0), now=0.0)
    tokens = {d.rig_id: d.token for d in actions if isinstance(d, DivertRig)}
    c.rig_serving("a", tokens["a"], 5.0)
    c.rig_serving("b", tokens["b"], 10.0)
    c.record_job(lease.lease_id, "a", jobs=3)
    c.record_job(lease.lease_id, "b", jobs=2)
    returns = {r.rig_id: r.token for r in c.tick(100.0) if isinstance(r, ReturnRig)}
    c.rig_returned("a", returns["a"], 103.0)
    c.rig_returned("b", returns["b"], 104.0)
    return c, lease.lease_id


def test_finished_lease(caps: Caps, spec: Spec) -> None:
    c, lease_id = run_lease(caps, spec)
    u = c.usage(lease_id, now=1_000.0)  # finished: later reads give the same numbers
    assert u == c.usage(lease_id, now=5_000.0)
    assert u.state is LeaseState.DONE
    assert u.gpu_seconds == pytest.approx(2 * (100 - 5) + 1 * (100 - 10))
    assert u.gpu_hours == pytest.approx(u.gpu_seconds / 3600)
    assert u.jobs_done == 5
    assert u.hashes_foregone == pytest.approx(H_A * 103 + H_B * 104)
    assert sorted(u.drain_latencies_s) == pytest.approx([5.0, 10.0])
    assert sorted(u.return_latencies_s) == pytest.approx([3.0, 4.0])
    assert u.rigs_left_early == 0
    a = next(r for r in u.rigs if r.rig_id == "a")
    assert (a.gpus, a.serving_s, a.away_s, a.jobs) == (2, 95.0, 103.0, 3)


def test_running_lease_counts_up_to_now(caps: Caps, spec: Spec) -> None:
    c = LeaseController()
    c.register_rig("a", "w", caps(2, hashrate=H_A), 0.0)
    lease, actions = c.create(spec(1, 100.0), now=0.0)
    early = c.usage(lease.lease_id, now=3.0)
    assert early.gpu_seconds == 0.0 and early.drain_latencies_s == ()
    assert early.hashes_foregone == pytest.approx(H_A * 3)
    (d,) = [a for a in actions if isinstance(a, DivertRig)]
    c.rig_serving("a", d.token, 4.0)
    assert c.usage(lease.lease_id, now=50.0).gpu_seconds == pytest.approx(2 * 46)
    assert c.usage(lease.lease_id, now=60.0).gpu_seconds == pytest.approx(2 * 56)


def test_lost_rig_stops_counting_when_it_leaves(caps: Caps, spec: Spec) -> None:
    c = LeaseController()
    c.register_rig("a", "w", caps(1, hashrate=H_A), 0.0)
    lease, actions = c.create(spec(1, 100.0, min_count=1), now=0.0)
    (d,) = [a for a in actions if isinstance(a, DivertRig)]
    c.rig_serving("a", d.token, 2.0)
    c.rig_disconnected("a", 30.0)
    u = c.usage(lease.lease_id, now=90.0)
    assert u.state is LeaseState.FAILED
    (r,) = u.rigs
    assert (r.phase, r.reason) == (RigPhase.LOST, ReleaseReason.DISCONNECTED)
    assert r.serving_s == 28.0 and r.away_s == 30.0
    assert u.hashes_foregone == pytest.approx(H_A * 30)
    assert u.return_latencies_s == ()
    assert u.rigs_left_early == 1


def test_usage_is_a_function_of_the_record(caps: Caps, spec: Spec) -> None:
    c, lease_id = run_lease(caps, spec)
    lease = c.get(lease_id)
    assert usage(lease, 200.0) == c.usage(lease_id, 200.0)
    # a rig re-registering with other capabilities does not rewrite past stints
    c.rig_disconnected("a", 200.0)
    c.register_rig("a", "w", caps(8, hashrate=1e12), 201.0)
    assert c.usage(lease_id, 300.0).gpu_seconds == usage(lease, 300.0).gpu_seconds
