"""The power layer on a shared lease plane, in memory: the leader's power service over the
leader's lease service curtails and restores a rig connected to another front end (through that
front end's relay), and its answers come back to a follower's API calls as the leader's.

The relays, host and lease service are the real ones (joined in memory as in test_relay_host);
the rig is the lease tests' recording fake; the leader's own stratum port has no connections.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import pytest
import trio
import trio.testing

from stratumkit.lease.errors import RequestError, Unavailable
from stratumkit.plane.host import serve_call
from stratumkit.power.service import NOT_REACHED, PowerService
from stratumkit.power.settings import power_settings
from stratumkit.protocol import rig as wire
from stratumkit.queue.sqlite import SqliteQueueEngine
from stratumkit.session.ports import RigMode
from tests.lease.test_service import FakeRig, registration
from tests.plane.test_relay_host import Streams, call, plane_service, queue

__all__ = ["queue"]


def leader_pool() -> Any:
    """The leader's own pool, with no connections of its own (its rigs come through the plane)."""
    return SimpleNamespace(sessions=[], config=SimpleNamespace(share_interval=2.0))


def curtail_sent(rig: FakeRig) -> list[bool]:
    return [params[0] for method, params in rig.notifications if method == wire.RigCurtail.METHOD]


async def test_the_leaders_power_service_curtails_and_restores_a_rig_of_another_front_end(
    queue: SqliteQueueEngine, nursery: trio.Nursery
) -> None:
    streams = Streams()
    relay = streams.relay("fe-2")
    service = plane_service(queue, None)
    await streams.lead(nursery, service, epoch=1)
    rig = FakeRig()
    assert await call(relay, rig, registration("rig-b")) == {"rig_id": "rig-b"}
    power = PowerService(power_settings({}), cast(Any, leader_pool()), service, on_plane=True)
    await nursery.start(power.run)

    (unit,) = power.units()
    assert unit.unit_id == "rig-b" and unit.rig and unit.power_w == 300.0 and unit.mode == "mining"

    # as a follower's POST /v1/curtail reaches the leader
    answer = await serve_call(service, "power", ["POST", "/v1/curtail", {"rigs": ["rig-b"]}], power=power)
    await trio.testing.wait_all_tasks_blocked()
    assert answer["curtailed"] == ["rig-b"] and answer["shed_kw"] == 0.3
    assert answer["not_reached"] == NOT_REACHED
    assert rig.mode is RigMode.CURTAILED and curtail_sent(rig) == [True]
    assert power.units()[0].mode == "curtailed"
    policy = await serve_call(service, "power", ["GET", "/v1/policy", None], power=power)
    assert policy["units"][0]["reason"] == "operator curtailment"

    released = await serve_call(service, "power", ["POST", "/v1/curtail/release", None], power=power)
    await trio.testing.wait_all_tasks_blocked()
    assert released == {"released": ["rig-b"]}
    assert rig.modes[-1][0] is RigMode.MINING and curtail_sent(rig) == [True, False]
    assert rig.modes[-1][1] is not None  # fresh difficulty: its first share comes at once


class LocalConn(FakeRig):
    """A connection of the leader's own stratum port (what the power service reads of it)."""

    closed = False

    @property
    def session(self) -> Any:
        return SimpleNamespace(worker=self.worker, rig_id=self.rig_id, difficulty=1.0)


async def test_the_leaders_own_rig_is_one_unit_and_its_plain_miners_are_units(
    queue: SqliteQueueEngine, nursery: trio.Nursery
) -> None:
    streams = Streams()
    own = streams.relay("fe-1")  # the leader's own relay: its rigs reach its host in memory too
    service = plane_service(queue, None)
    await streams.lead(nursery, service, epoch=1)
    rig, plain = LocalConn(worker="rig-l.w"), LocalConn(worker="plain.w", peer="192.0.2.9:5000")
    await call(own, rig, registration("rig-l"))
    pool = leader_pool()
    pool.sessions = [rig, plain]
    power = PowerService(power_settings({}), cast(Any, pool), service, on_plane=True)
    units = {u.unit_id: u for u in power.units()}
    assert sorted(units) == ["plain.w@192.0.2.9:5000", "rig-l"]
    assert units["rig-l"].rig and not units["plain.w@192.0.2.9:5000"].rig
    answer = await power.curtail({"all": True})
    await trio.testing.wait_all_tasks_blocked()
    assert answer["curtailed"] == ["rig-l"] and answer["not_curtailable"] == ["plain.w@192.0.2.9:5000"]
    assert rig.mode is RigMode.CURTAILED and curtail_sent(rig) == [True]
    assert plain.mode is RigMode.CURTAILED and curtail_sent(plain) == []  # sent no work


async def test_a_follower_gets_the_leaders_refusals_and_no_power_layer_is_unavailable(
    queue: SqliteQueueEngine, nursery: trio.Nursery
) -> None:
    service = plane_service(queue, None)
    power = PowerService(power_settings({}), cast(Any, leader_pool()), service, on_plane=True)
    with pytest.raises(RequestError, match="exactly one target"):
        await serve_call(service, "power", ["POST", "/v1/curtail", {}], power=power)
    with pytest.raises(RequestError, match=r"-10\.\.10"):
        await serve_call(service, "power", ["POST", "/v1/prices", {"power_usd_per_kwh": 45}], power=power)
    with pytest.raises(Unavailable, match="not running"):
        await serve_call(service, "power", ["GET", "/v1/policy", None])


class MemoryKeeper:
    """The plane's kept curtailment, as the Redis key holds it."""

    def __init__(self) -> None:
        self.record: dict[str, Any] | None = None

    async def save(self, record: dict[str, Any] | None) -> None:
        self.record = record

    async def load(self) -> dict[str, Any] | None:
        return self.record


async def test_a_new_leader_holds_the_curtailment_the_old_one_made_until_it_is_released(
    queue: SqliteQueueEngine, nursery: trio.Nursery
) -> None:
    streams = Streams()
    relay = streams.relay("fe-2")
    keeper = MemoryKeeper()
    old = plane_service(queue, None)
    await streams.lead(nursery, old, epoch=1)
    rig, other = FakeRig(), FakeRig(worker="rig-c.w")
    await call(relay, rig, registration("rig-b"))
    await call(relay, other, registration("rig-c"))
    async with trio.open_nursery() as leading:  # the old leader's power service, while it leads
        old_power = PowerService(power_settings({}), cast(Any, leader_pool()), old, on_plane=True)
        old_power.keeper = keeper
        await leading.start(old_power.run)
        await old_power.curtail({"rigs": ["rig-b"], "duration_s": 3600})
        await trio.testing.wait_all_tasks_blocked()
        leading.cancel_scope.cancel()
    assert rig.mode is RigMode.CURTAILED and keeper.record is not None

    streams.host = None  # the old leader is gone; a new one takes the plane and the kept curtailment
    new = plane_service(queue, None)
    await streams.lead(nursery, new, epoch=2)
    power = PowerService(power_settings({}), cast(Any, leader_pool()), new, on_plane=True)
    power.keeper = keeper
    await nursery.start(power.run)
    assert set(power.controller.operator) == {"rig-b"}
    assert power.policy_view()["curtailment"]["result"]["curtailed"] == ["rig-b"]
    sent = len(rig.notifications)
    await power.step()
    await trio.testing.wait_all_tasks_blocked()
    assert rig.mode is RigMode.CURTAILED and rig.notifications[sent:] == []  # held, not switched again
    assert {u.unit_id: u.mode for u in power.units()} == {"rig-b": "curtailed", "rig-c": "mining"}

    assert (await power.release())["released"] == ["rig-b"]
    await trio.testing.wait_all_tasks_blocked()
    assert rig.modes[-1][0] is RigMode.MINING and curtail_sent(rig) == [True, False]
    assert keeper.record is None


class FollowerNode:
    """A plane node that does not lead: each forwarded call gets the leader's canned reply."""

    call_timeout_s = 5.0
    power = None
    service = None

    def __init__(self, reply: dict[str, Any]) -> None:
        self.reply = reply
        self.calls: list[tuple[str, list[Any], float | None]] = []

    async def forward(self, method: str, args: list[Any], *, timeout_s: float | None = None) -> dict[str, Any]:
        self.calls.append((method, args, timeout_s))
        return self.reply


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        ({"error": "request", "message": "give exactly one target"}, RequestError),
        ({"error": "unavailable", "message": "the power layer is not running"}, Unavailable),
        ({"error": "internal", "message": "KeyError"}, RuntimeError),
    ],
)
async def test_a_followers_power_routes_are_the_leaders_answers(reply: dict[str, Any], error: type[Exception]) -> None:
    from stratumkit.plane.api import PlanePower

    node = FollowerNode({"ok": {"released": []}})
    power = PlanePower(cast(Any, node), curtail_wait_s=11.0)
    assert await power.call("POST", "/v1/curtail/release", {}) == {"released": []}
    await power.call("POST", "/v1/curtail", {"all": True})
    assert node.calls == [
        ("power", ["POST", "/v1/curtail/release", {}], 5.0),
        ("power", ["POST", "/v1/curtail", {"all": True}], 16.0),  # the leader may wait for leases to end
    ]
    assert power.health() == {"runs_here": False, "note": "the power layer runs on the lease plane's leader"}
    assert power.metrics() == ""
    node.reply = reply
    with pytest.raises(error, match=reply["message"]):
        await power.call("GET", "/v1/policy", None)
