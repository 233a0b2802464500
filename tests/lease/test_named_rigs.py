"""A lease naming its rigs (``rigs`` in the selector): only those are drafted, first and as
replacements; the name survives a snapshot and reaches the lease view."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import msgpack
import pytest

from stratumkit.lease import BadSelector, DivertRig, LeaseController, LeaseSpec, LeaseState, NoEligibleRigs, Selector
from stratumkit.lease.errors import RequestError
from stratumkit.lease.model import RigCapabilities
from stratumkit.lease.service import parse_lease_spec

Caps = Callable[..., RigCapabilities]


def drafted(actions: Sequence[object]) -> list[str]:
    return [a.rig_id for a in actions if isinstance(a, DivertRig)]


def fleet(caps: Caps) -> LeaseController:
    """a, b, c idle; by the selection rule (least hashing per GPU first) a is drafted first."""
    c = LeaseController()
    for rig_id, hashrate in (("a", 1e8), ("b", 2e8), ("c", 3e8)):
        c.register_rig(rig_id, f"{rig_id}.w", caps(1, hashrate=hashrate), 0.0)
    return c


@pytest.mark.parametrize(
    ("selector", "message"),
    [
        (lambda: Selector(1, rigs=("a", "a")), "names a rig twice"),
        (lambda: Selector(1, rigs=("",)), "rigs"),
        (lambda: Selector(1, rigs="a"), "rigs must be a sequence"),  # type: ignore[arg-type]
        (lambda: Selector(2, rigs=("a",)), r"count \(2\) cannot exceed the rigs named \(1\)"),
        (lambda: Selector(1, rigs=(3,)), "rigs"),  # type: ignore[arg-type]
    ],
)
def test_bad_names_are_refused(selector: Callable[[], Selector], message: str) -> None:
    with pytest.raises(BadSelector, match=message):
        selector()


def test_a_named_selector_matches_only_its_rigs(caps: Caps) -> None:
    sel = Selector(1, gpu_model="RTX 4090", rigs=["b"])  # type: ignore[arg-type]
    assert sel.rigs == ("b",)
    assert sel.matches(caps(1), "b") and not sel.matches(caps(1), "a") and not sel.matches(caps(1))
    assert not sel.matches(caps(1, gpu_model="A100"), "b")  # the other conditions still apply
    assert Selector(1).matches(caps(1)) and Selector(1).matches(caps(1), "any")


def test_the_named_rig_is_drafted_not_the_first_by_the_rule(caps: Caps) -> None:
    c = fleet(caps)
    lease, actions = c.create(LeaseSpec(Selector(1, rigs=("c",)), "q", 60.0), now=1.0)
    assert drafted(actions) == ["c"] and c.rig("c").lease_id == lease.lease_id
    assert c.rig("a").idle and c.rig("b").idle
    _, actions = c.create(LeaseSpec(Selector(2, rigs=("b", "a")), "q", 60.0), now=2.0)
    assert sorted(drafted(actions)) == ["a", "b"]


def test_a_named_rig_that_is_busy_or_unknown_is_no_grant(caps: Caps) -> None:
    c = fleet(caps)
    c.create(LeaseSpec(Selector(1, rigs=("b",)), "q", 60.0), now=1.0)
    with pytest.raises(NoEligibleRigs, match=r"rigs=\['b'\]"):
        c.create(LeaseSpec(Selector(1, rigs=("b",)), "q", 60.0), now=2.0)
    with pytest.raises(NoEligibleRigs):
        c.create(LeaseSpec(Selector(1, rigs=("zz",)), "q", 60.0), now=2.0)
    assert c.rig("a").idle and c.rig("c").idle


def test_a_pending_named_lease_waits_for_its_rig_and_replaces_only_from_its_names(caps: Caps) -> None:
    c = fleet(caps)
    lease, actions = c.create(LeaseSpec(Selector(1, rigs=("d", "e")), "q", 60.0), now=1.0, wait_s=30.0)
    assert drafted(actions) == [] and c.get(lease.lease_id).state is LeaseState.REQUESTED
    assert drafted(c.register_rig("d", "d.w", caps(1), 2.0)) == ["d"]
    (d,) = c.get(lease.lease_id).rigs
    c.rig_serving("d", d.token, 3.0)
    # d is lost: the idle a, b and c are not named, so nothing replaces it and the lease fails
    c.rig_disconnected("d", 10.0)
    assert c.get(lease.lease_id).state is LeaseState.FAILED and all(c.rig(r).idle for r in "abc")


def test_names_survive_a_snapshot_and_an_older_record_has_none(caps: Caps) -> None:
    c = fleet(caps)
    c.create(LeaseSpec(Selector(1, rigs=("c",)), "q", 60.0), now=1.0)
    data = msgpack.unpackb(msgpack.packb(c.snapshot(2.0)))
    restored = LeaseController.restore(data, now=2.0)
    assert restored.leases() == c.leases() and restored.leases()[0].spec.selector.rigs == ("c",)
    del data["leases"][0]["spec"]["selector"]["rigs"]
    assert LeaseController.restore(data, now=2.0).leases()[0].spec.selector.rigs == ()


def test_the_request_body_names_rigs() -> None:
    body = {"count": 1, "queue": "q", "duration_s": 10}
    assert parse_lease_spec(body | {"rigs": ["rig-a"]}).selector.rigs == ("rig-a",)
    assert parse_lease_spec(body | {"rigs": None}).selector.rigs == ()
    with pytest.raises(RequestError, match="rigs must be a sequence"):
        parse_lease_spec(body | {"rigs": "rig-a"})
