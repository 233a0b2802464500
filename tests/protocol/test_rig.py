"""The rig extension's messages: every one round-trips (also through JSON), and bad params are refused
with an error that names the field."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stratumkit.protocol import rig as wire

SETTINGS = settings(max_examples=60, deadline=None, database=None)

names = st.text(min_size=1, max_size=24).filter(lambda s: bool(s.strip()))
tokens = st.integers(1, wire.MAX_TOKEN)
json_scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**63) | st.floats(allow_nan=False) | st.text()
json_values = st.recursive(
    json_scalars.filter(lambda v: not isinstance(v, float) or abs(v) != float("inf")),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
objects = st.dictionaries(st.text(max_size=8), json_values, max_size=4)


def finite(low: float, high: float) -> st.SearchStrategy[float]:
    return st.floats(low, high, allow_nan=False, allow_infinity=False)


gpus = st.builds(wire.GpuInfo, names, st.integers(0, wire.MAX_VRAM_MB))
registers = st.builds(
    wire.RigRegister,
    gpus=st.lists(gpus, max_size=4).map(tuple),
    hashrate=finite(0, wire.MAX_HASHRATE),
    rig_id=st.none() | names,
    models=st.lists(names, max_size=3).map(tuple),
    power_w=finite(0, wire.MAX_POWER_W),
    resume_token=st.none() | tokens,
)
claims = st.builds(
    wire.JobClaim,
    tokens,
    st.integers(1, wire.MAX_CLAIM_JOBS),
    finite(0, wire.MAX_VISIBILITY_S).filter(lambda v: v > 0),
    finite(0, wire.MAX_CLAIM_WAIT_S),
)
requests = st.one_of(
    registers,
    st.builds(wire.LeaseServing, tokens),
    st.builds(wire.LeaseReturned, tokens),
    claims,
    st.builds(wire.JobHeartbeat, names),
    st.builds(wire.JobResult, names, objects),
    st.builds(wire.JobRelease, names),
)
notifications = st.one_of(
    st.builds(wire.LeaseDivert, names, tokens, names, finite(0, wire.MAX_UNIX_TIME)),
    st.builds(wire.LeaseReturn, names, tokens),
)
granted = st.builds(wire.GrantedJob, names, objects, st.integers(1, wire.MAX_DELIVERIES))
claim_replies = st.builds(wire.ClaimReply, st.lists(granted, max_size=4).map(tuple))


def through_json(value: Any) -> Any:
    return json.loads(json.dumps(value, allow_nan=False))


@SETTINGS
@given(requests | notifications)
def test_params_round_trip(msg: wire.RigRequest | wire.RigNotification) -> None:
    kind = type(msg)
    assert kind.from_params(msg.to_params()) == msg
    assert kind.from_params(through_json(msg.to_params())) == msg
    table: dict[str, Any] = {**wire.REQUESTS, **wire.NOTIFICATIONS}
    assert table[msg.METHOD] is kind


@SETTINGS
@given(claim_replies, st.builds(wire.RegisterReply, names))
def test_replies_round_trip(claimed: wire.ClaimReply, registered: wire.RegisterReply) -> None:
    assert wire.ClaimReply.from_result(through_json(claimed.to_result())) == claimed
    assert wire.RegisterReply.from_result(through_json(registered.to_result())) == registered


def test_nine_methods_each_spelled_once() -> None:
    methods = [*wire.REQUESTS, *wire.NOTIFICATIONS]
    assert len(methods) == len(set(methods)) == 9
    assert all(m.startswith("stratumkit.") for m in methods)
    assert wire.REQUESTS[wire.JobClaim.METHOD] is wire.JobClaim


def test_defaults_of_a_short_claim() -> None:
    assert wire.JobClaim.from_params([7]) == wire.JobClaim(7, 1, 30.0, 0.0)
    assert wire.JobClaim.from_params([7, 4]).to_params() == [7, 4, 30.0, 0.0]
    minimal = wire.RigRegister.from_params([{"gpus": [{"model": "RTX 4090", "vram_mb": 24576}], "hashrate": 5}])
    assert minimal.rig_id is None and minimal.models == () and minimal.power_w == 0.0 and minimal.hashrate == 5.0
    assert "rig_id" not in minimal.to_params()[0] and "resume_token" not in minimal.to_params()[0]


GPU = {"model": "RTX 4090", "vram_mb": 24576}
REG = {"gpus": [GPU], "hashrate": 1e9}
DIVERT = {"lease_id": "lease-1", "token": 3, "queue": "q", "ends_at": 1.7e9}


@pytest.mark.parametrize(
    ("kind", "params", "field"),
    [
        (wire.LeaseServing, [True], "token"),
        (wire.LeaseServing, [0], "token"),
        (wire.LeaseServing, [1.0], "token"),
        (wire.LeaseServing, [2**63], "token"),
        (wire.LeaseServing, [], "params"),
        (wire.LeaseServing, [1, 2], "params"),
        (wire.LeaseReturned, {"token": 1}, "params"),
        (wire.JobClaim, [1, 0], "max_jobs"),
        (wire.JobClaim, [1, 65], "max_jobs"),
        (wire.JobClaim, [1, True], "max_jobs"),
        (wire.JobClaim, [1, 1, float("nan")], "visibility_timeout"),
        (wire.JobClaim, [1, 1, 0], "visibility_timeout"),
        (wire.JobClaim, [1, 1, 1e9], "visibility_timeout"),
        (wire.JobClaim, [1, 1, 10**400], "visibility_timeout"),
        (wire.JobClaim, [1, 1, 30, -1], "wait_s"),
        (wire.JobClaim, [1, 1, 30, float("inf")], "wait_s"),
        (wire.JobClaim, [1, 1, 30, 31], "wait_s"),
        (wire.JobClaim, [1, 1, 30, False], "wait_s"),
        (wire.JobClaim, [1, 1, 30, 1, 1], "params"),
        (wire.JobHeartbeat, [""], "job_id"),
        (wire.JobHeartbeat, [7], "job_id"),
        (wire.JobRelease, ["x" * 201], "job_id"),
        (wire.JobResult, ["j"], "params"),
        (wire.JobResult, ["j", [1]], "result"),
        (wire.JobResult, ["j", {1: 2}], "result"),
        (wire.RigRegister, [], "params"),
        (wire.RigRegister, [[REG]], "params[0]"),
        (wire.RigRegister, [{"gpus": [GPU]}], "hashrate"),
        (wire.RigRegister, [{**REG, "colour": "red"}], "colour"),
        (wire.RigRegister, [{**REG, "hashrate": True}], "hashrate"),
        (wire.RigRegister, [{**REG, "hashrate": -1}], "hashrate"),
        (wire.RigRegister, [{**REG, "hashrate": 1e30}], "hashrate"),
        (wire.RigRegister, [{**REG, "power_w": float("nan")}], "power_w"),
        (wire.RigRegister, [{**REG, "gpus": [{"model": "x", "vram_mb": -1}]}], "gpus[].vram_mb"),
        (wire.RigRegister, [{**REG, "gpus": [{"model": "x", "vram_mb": True}]}], "gpus[].vram_mb"),
        (wire.RigRegister, [{**REG, "gpus": [{"model": " ", "vram_mb": 1}]}], "gpus[].model"),
        (wire.RigRegister, [{**REG, "gpus": [{"model": "x"}]}], "vram_mb"),
        (wire.RigRegister, [{**REG, "gpus": [GPU] * 65}], "gpus"),
        (wire.RigRegister, [{**REG, "gpus": "RTX"}], "gpus"),
        (wire.RigRegister, [{**REG, "rig_id": ""}], "rig_id"),
        (wire.RigRegister, [{**REG, "rig_id": "r" * 129}], "rig_id"),
        (wire.RigRegister, [{**REG, "models": [""]}], "models[]"),
        (wire.RigRegister, [{**REG, "resume_token": 0}], "resume_token"),
        (wire.LeaseDivert, [{k: v for k, v in DIVERT.items() if k != "ends_at"}], "ends_at"),
        (wire.LeaseDivert, [{**DIVERT, "ends_at": float("nan")}], "ends_at"),
        (wire.LeaseDivert, [{**DIVERT, "ends_at": -1}], "ends_at"),
        (wire.LeaseDivert, [{**DIVERT, "token": True}], "token"),
        (wire.LeaseDivert, [{**DIVERT, "queue": ""}], "queue"),
        (wire.LeaseReturn, [{"lease_id": "lease-1", "token": 3, "queue": "q"}], "queue"),
        (wire.LeaseReturn, [{"lease_id": "lease-1", "token": 3}, {}], "params"),
    ],
)
def test_bad_params_are_refused_naming_the_field(kind: Any, params: Any, field: str) -> None:
    with pytest.raises(wire.RigMessageError) as caught:
        kind.from_params(params)
    assert isinstance(caught.value, ValueError)
    message = str(caught.value)
    assert message.startswith(f"{kind.METHOD}: ") and field in message


@pytest.mark.parametrize(
    ("kind", "result", "field"),
    [
        (wire.RegisterReply, {"rig_id": 5}, "rig_id"),
        (wire.RegisterReply, {"rig_id": "a", "extra": 1}, "extra"),
        (wire.RegisterReply, ["a"], "result"),
        (wire.ClaimReply, {"job_id": "j"}, "result"),
        (wire.ClaimReply, [{"job_id": "j", "payload": {}, "deliveries": 0}], "deliveries"),
        (wire.ClaimReply, [{"job_id": "j", "payload": [], "deliveries": 1}], "payload"),
        (wire.ClaimReply, [{"job_id": "j", "payload": {}}], "deliveries"),
    ],
)
def test_bad_replies_are_refused(kind: Any, result: Any, field: str) -> None:
    with pytest.raises(wire.RigMessageError, match=field.replace("[", r"\[").replace("]", r"\]")):
        kind.from_result(result)


def test_constructors_check_too() -> None:
    """Our own code cannot build a message the other side would refuse."""
    with pytest.raises(wire.RigMessageError, match="max_jobs"):
        wire.JobClaim(1, max_jobs=100)
    with pytest.raises(wire.RigMessageError, match="gpus"):
        wire.RigRegister(gpus=[wire.GpuInfo("x", 1)], hashrate=1.0)  # type: ignore[arg-type]
    with pytest.raises(wire.RigMessageError, match="ends_at"):
        wire.LeaseDivert("lease-1", 1, "q", float("inf"))


@pytest.mark.parametrize("curtailed", [True, False])
def test_the_curtail_command_round_trips(curtailed: bool) -> None:
    command = wire.RigCurtail(curtailed)
    assert wire.RigCurtail.from_params(json.loads(json.dumps(command.to_params()))) == command


@pytest.mark.parametrize(("params", "message"), [(["yes"], "curtailed must be true or false"), ([1], "curtailed"),
                                                 ([], "stratumkit.rig.curtail")])  # fmt: skip
def test_a_bad_curtail_command_names_the_field(params: Any, message: str) -> None:
    with pytest.raises(wire.RigMessageError, match=message):
        wire.RigCurtail.from_params(params)
