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
