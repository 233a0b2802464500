"""Rigs authenticate before they may register; a refused connection stays a plain miner."""

from __future__ import annotations

import pytest
import trio

from stratumkit.lease.rig_auth import RigAuth
from stratumkit.lease.service import LeaseService
from stratumkit.protocol import rig as wire
from stratumkit.queue.sqlite import SqliteQueueEngine
from tests.lease.test_service import FakeRig, Refused, call, registration

AUTH = RigAuth("fleet-secret", {"special": "its-own"})


@pytest.mark.parametrize(
    ("rig_id", "secret", "refusal"),
    [
        ("rig-a", "fleet-secret", None),
        ("special", "its-own", None),
        ("special", "fleet-secret", "wrong rig secret"),  # a rig with its own secret needs that one
        ("rig-a", "its-own", "wrong rig secret"),
        ("rig-a", None, "wants a rig secret"),
    ],
)
def test_secrets(rig_id: str, secret: str | None, refusal: str | None) -> None:
    found = AUTH.refusal(rig_id, secret)
    assert found == refusal if refusal is None else refusal in (found or "")


def test_own_secrets_only_admit_only_those_rigs() -> None:
    auth = RigAuth(None, {"special": "its-own"})
    assert auth.refusal("special", "its-own") is None
    assert "has no secret" in (auth.refusal("other", "its-own") or "")
    assert RigAuth().refusal("anyone", None) is None  # nothing configured: no check


def test_the_secret_is_never_shown() -> None:
    msg = wire.RigRegister(gpus=(wire.GpuInfo("A", 1),), hashrate=1.0, secret="hunter2")
    assert "hunter2" not in repr(msg)
    assert wire.RigRegister.from_params(msg.to_params()) == msg
    with pytest.raises(wire.RigMessageError) as refused:
        wire.RigRegister.from_params([{"gpus": [], "hashrate": 1.0, "secret": "x" * 300}])
    assert "xxx" not in str(refused.value)


async def test_a_rig_without_the_secret_stays_a_miner(queue: SqliteQueueEngine, nursery: trio.Nursery) -> None:
    service = LeaseService(queue, rig_auth=AUTH)
    await nursery.start(service.run)
    intruder = FakeRig(worker="x.w")
    with pytest.raises(Refused, match="rig registration refused: wrong rig secret"):
        await call(service, intruder, registration(rig_id="rig-x", hashrate=0.0, secret="guess"))
    assert intruder.rig_id is None and service.rigs() == [] and intruder.modes == []
    with pytest.raises(Refused, match="not a registered rig"):  # it cannot claim jobs either
        await call(service, intruder, wire.JobClaim(1))
    rig = FakeRig()
    assert await call(service, rig, registration(secret="fleet-secret")) == {"rig_id": "rig-a"}
    assert [r["rig_id"] for r in service.rigs()] == ["rig-a"]
