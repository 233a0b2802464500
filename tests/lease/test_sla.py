"""SLA credits: rig-seconds served short of a lease's availability target, plus a compensation per
forced restart; exact numbers from hand-built lease histories."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest

from stratumkit.lease import DivertRig, LeaseController, LeaseSpec, LeaseState, ReleaseReason, ReturnRig, Selector
from stratumkit.lease.accounting import RESTART_CREDIT_S, sla
from stratumkit.lease.errors import BadLeaseSpec, RequestError
from stratumkit.lease.model import RigCapabilities, RigPhase
from stratumkit.lease.service import lease_to_dict, parse_lease_spec, sla_to_dict

Caps = Callable[..., RigCapabilities]


def sla_spec(count: int, duration_s: float, availability: float | None) -> LeaseSpec:
    return LeaseSpec(Selector(count), "q", duration_s, availability=availability)


def tokens(actions: Sequence[object]) -> dict[str, int]:
    return {a.rig_id: a.token for a in actions if isinstance(a, DivertRig)}


def two_rig_lease(caps: Caps, availability: float) -> tuple[LeaseController, str]:
    """Created at 0 for 100 s; a (2 GPUs) serves from 5, b (1 GPU) from 10; both back after 100."""
    c = LeaseController()
    c.register_rig("a", "w", caps(2), 0.0)
    c.register_rig("b", "w", caps(1), 0.0)
    lease, actions = c.create(sla_spec(2, 100.0, availability), now=0.0)
    t = tokens(actions)
    c.rig_serving("a", t["a"], 5.0)
    c.rig_serving("b", t["b"], 10.0)
    returns = {r.rig_id: r.token for r in c.tick(100.0) if isinstance(r, ReturnRig)}
    c.rig_returned("a", returns["a"], 103.0)
    c.rig_returned("b", returns["b"], 104.0)
    return c, lease.lease_id


def test_no_target_no_sla(caps: Caps) -> None:
    c = LeaseController()
    c.register_rig("a", "w", caps(1), 0.0)
    lease, _ = c.create(sla_spec(1, 100.0, None), now=0.0)
    assert sla(lease, 50.0) is None


def test_drain_time_is_lost_and_credited_only_below_the_target(caps: Caps) -> None:
    c, lease_id = two_rig_lease(caps, 0.99)
    lease = c.get(lease_id)
    s = sla(lease, 1_000.0)
    assert s is not None and s == sla(lease, 5_000.0)  # finished: the window closed at its end (100)
    # owed 2 rigs x 100 s; served (100 - 5) + (100 - 10); the returns after 100 are not owed
    assert (s.owed_rig_s, s.served_rig_s, s.lost_rig_s) == (200.0, 185.0, 15.0)
    assert s.availability == 0.925
    assert s.shortfall_rig_s == pytest.approx(0.99 * 200 - 185)  # 13
    assert s.restarts == 0
    assert s.credited_rig_s == pytest.approx(13.0)
    assert s.credited_gpu_s == pytest.approx(13.0 * 1.5)  # mean GPUs per stint: (2 + 1) / 2
    assert s.credit_usd(0.36) == pytest.approx(19.5 * 0.36 / 3600)  # 0.00195 USD

    c2, lid2 = two_rig_lease(caps, 0.9)
    s2 = sla(c2.get(lid2), 1_000.0)
    assert s2 is not None and s2.shortfall_rig_s == 0.0 and s2.credited_rig_s == 0.0  # 185 >= 0.9 x 200


def test_a_replaced_rig_is_a_restart_and_its_gap_is_lost(caps: Caps) -> None:
    c = LeaseController()
    c.register_rig("a", "w", caps(1, hashrate=1e8), 0.0)  # drafted first (least hashing per GPU)
    c.register_rig("b", "w", caps(1, hashrate=1e9), 0.0)
    lease, actions = c.create(sla_spec(1, 100.0, 0.95), now=0.0)
    c.rig_serving("a", tokens(actions)["a"], 2.0)
    replaced = c.rig_disconnected("a", 30.0)  # b is drafted in a's place at 30
    c.rig_serving("b", tokens(replaced)["b"], 40.0)
    running = sla(c.get(lease.lease_id), 70.0, restart_credit_s=10.0)
    assert running is not None
    assert (running.owed_rig_s, running.served_rig_s, running.restarts) == (70.0, 28.0 + 30.0, 1)
    assert running.shortfall_rig_s == pytest.approx(0.95 * 70 - 58)  # 8.5
    assert running.credited_rig_s == pytest.approx(8.5 + 10.0)

    returns = [r for r in c.tick(100.0) if isinstance(r, ReturnRig)]
    c.rig_returned("b", returns[0].token, 101.0)
    s = sla(c.get(lease.lease_id), 200.0, restart_credit_s=10.0)
    assert s is not None and c.get(lease.lease_id).state is LeaseState.DONE
    assert (s.owed_rig_s, s.served_rig_s, s.lost_rig_s) == (100.0, 88.0, 12.0)
    assert s.shortfall_rig_s == pytest.approx(95.0 - 88.0)
    assert s.restarts == 1 and s.credited_rig_s == pytest.approx(7.0 + 10.0)
    assert s.credited_gpu_s == pytest.approx(17.0)


def test_a_curtailment_that_overrides_the_lease_ends_its_window_and_restarts_its_rigs(caps: Caps) -> None:
    c = LeaseController()
    c.register_rig("a", "w", caps(4), 0.0)
    lease, actions = c.create(sla_spec(1, 100.0, 0.99), now=0.0)
    c.rig_serving("a", tokens(actions)["a"], 5.0)
    back = [r for r in c.cancel(lease.lease_id, 50.0, curtailed=True) if isinstance(r, ReturnRig)]
    c.rig_returned("a", back[0].token, 52.0)
    done = c.get(lease.lease_id)
    assert (done.state, done.note) == (LeaseState.CANCELLED, "curtailed by the operator")
    (stint,) = done.rigs
    assert (stint.phase, stint.reason) == (RigPhase.RETURNED, ReleaseReason.CURTAILED)
    s = sla(done, 500.0)
    assert s is not None
    # billed for what it served (to 50); the curtailment is one forced restart at the default 1 s
    assert (s.owed_rig_s, s.served_rig_s, s.restarts, s.restart_credit_s) == (50.0, 45.0, 1, RESTART_CREDIT_S)
    assert s.shortfall_rig_s == pytest.approx(49.5 - 45.0)
    assert s.credited_rig_s == pytest.approx(4.5 + 1.0)
    assert s.credited_gpu_s == pytest.approx(4 * 5.5)
    assert c.usage(lease.lease_id, 500.0).gpu_seconds == 4 * 45.0


def test_an_integrators_cancellation_is_no_restart(caps: Caps) -> None:
    c = LeaseController()
    c.register_rig("a", "w", caps(1), 0.0)
    lease, actions = c.create(sla_spec(1, 100.0, 0.5), now=0.0)
    c.rig_serving("a", tokens(actions)["a"], 1.0)
    back = [r for r in c.cancel(lease.lease_id, 20.0) if isinstance(r, ReturnRig)]
    c.rig_returned("a", back[0].token, 21.0)
    s = sla(c.get(lease.lease_id), 99.0)
    assert s is not None and (s.owed_rig_s, s.served_rig_s, s.restarts, s.credited_rig_s) == (20.0, 19.0, 0, 0.0)


def test_a_pending_lease_owes_nothing_until_drafted(caps: Caps) -> None:
    c = LeaseController()
    lease, _ = c.create(sla_spec(1, 100.0, 0.99), now=0.0, wait_s=60.0)
    s = sla(c.get(lease.lease_id), 30.0)
    assert s is not None and (s.owed_rig_s, s.availability, s.credited_rig_s) == (0.0, 1.0, 0.0)
    drafted = c.register_rig("a", "w", caps(1), 40.0)
    c.rig_serving("a", tokens(drafted)["a"], 42.0)
    s = sla(c.get(lease.lease_id), 60.0)
    assert s is not None and (s.owed_rig_s, s.served_rig_s) == (20.0, 18.0)


@pytest.mark.parametrize("bad", [0, 0.0, -0.1, 1.01, float("nan"), True, "0.99"])
def test_a_bad_target_is_refused(bad: object) -> None:
    with pytest.raises(BadLeaseSpec, match="availability"):
        LeaseSpec(Selector(1), "q", 10.0, availability=bad)  # type: ignore[arg-type]
    with pytest.raises(RequestError, match="availability"):
        parse_lease_spec({"count": 1, "queue": "q", "duration_s": 10, "availability": bad})


def test_the_lease_view_shows_the_sla_and_its_worth_when_a_price_is_known(caps: Caps) -> None:
    assert parse_lease_spec({"count": 1, "queue": "q", "duration_s": 10, "availability": 1}).availability == 1.0
    c, lease_id = two_rig_lease(caps, 0.99)
    lease = c.get(lease_id)
    s = sla(lease, 500.0)
    assert s is not None
    view = lease_to_dict(lease, c.usage(lease_id, 500.0), s, 0.36)
    assert view["sla"] == sla_to_dict(s, 0.36)
    assert view["sla"]["target"] == 0.99 and view["sla"]["availability"] == 0.925
    assert view["sla"]["lost_rig_s"] == 15.0 and view["sla"]["restarts"] == 0
    assert view["sla"]["credited_rig_s"] == pytest.approx(13.0)
    assert view["sla"]["credit_usd"] == pytest.approx(0.00195)
    assert sla_to_dict(s, None)["credit_usd"] is None
    assert "sla" not in lease_to_dict(lease, c.usage(lease_id, 500.0))
