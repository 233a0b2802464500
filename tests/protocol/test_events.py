from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from stratumkit.protocol import (
    FULL_VERSION_MASK,
    Authorize,
    AuthorizeResult,
    BadRequest,
    Configure,
    ConfigureResult,
    ErrorCode,
    ErrorReply,
    ExtensionNotification,
    ExtensionRequest,
    GetVersion,
    LocalProtocolError,
    Notify,
    ProtocolError,
    ProtocolViolation,
    Reconnect,
    RemoteProtocolError,
    Response,
    SetDifficulty,
    SetExtranonce,
    SetVersionMask,
    ShowMessage,
    Submit,
    SubmitResult,
    Subscribe,
    SubscribeResult,
    SuggestDifficulty,
    SuggestTarget,
)

from .helpers import CKPOOL_JOB

HASH = "00" * 32


def notify(**changes: Any) -> Notify:
    fields: dict[str, Any] = {
        "job_id": "1",
        "prevhash": HASH,
        "coinb1": "01",
        "coinb2": "02",
        "merkle_branch": [HASH],
        "version": "20000000",
        "nbits": "1d00ffff",
        "ntime": "5e9a2b7c",
        "clean_jobs": False,
    }
    fields.update(changes)
    return Notify(**fields)


@pytest.mark.parametrize(
    "build",
    [
        lambda: Subscribe(1.5),  # type: ignore[arg-type]
        lambda: Subscribe(True),
        lambda: Subscribe(1, user_agent=None),  # type: ignore[arg-type]
        lambda: Authorize(1, 7),  # type: ignore[arg-type]
        lambda: Configure(1, "version-rolling"),  # type: ignore[arg-type]
        lambda: Configure(1, ("",)),
        lambda: Configure(1, ("version-rolling",), {"version-rolling.mask": "xyz"}),
        lambda: Configure(1, ("version-rolling",), {"version-rolling.mask": "1ffffffff"}),
        lambda: Configure(1, ("version-rolling",), {"version-rolling.min-bit-count": 33}),
        lambda: Configure(1, ("minimum-difficulty",), {"minimum-difficulty.value": -1}),
        lambda: SuggestDifficulty(1, 0),
        lambda: SuggestDifficulty(1, float("nan")),
        lambda: SuggestTarget(1, 0),
        lambda: SuggestTarget(1, 2**256),
        lambda: SuggestTarget(1, -1),
        lambda: SuggestTarget(1, True),
        lambda: SuggestTarget(1, "ffff"),  # type: ignore[arg-type]
        lambda: SuggestTarget(1.0, 1),  # type: ignore[arg-type]
        lambda: Submit(1, "w", "j", "00", "00", 5),  # type: ignore[arg-type]
        lambda: ExtensionRequest(1, ""),
        lambda: BadRequest(1, None, 99, "x"),  # type: ignore[arg-type]
        lambda: SubscribeResult(1, "0g", 4),
        lambda: SubscribeResult(1, "abc", 4),
        lambda: SubscribeResult(1, "00", 0),
        lambda: SubscribeResult(1, "00", 4, (("mining.notify",),)),  # type: ignore[arg-type]
        lambda: AuthorizeResult(1, 1),  # type: ignore[arg-type]
        lambda: ConfigureResult(1, {"version-rolling": True}),  # a mask is then required
        lambda: SubmitResult(1, None),  # type: ignore[arg-type]
        lambda: SetDifficulty(-2),
        lambda: SetExtranonce("00", 33),
        lambda: SetVersionMask(1 << 32),
        lambda: Reconnect(port=0),
        lambda: Reconnect(wait=-1),
        lambda: Reconnect(wait=float("inf")),
        lambda: ShowMessage(None),  # type: ignore[arg-type]
        lambda: GetVersion([]),  # type: ignore[arg-type]
        lambda: ExtensionNotification(5),  # type: ignore[arg-type]
        lambda: ErrorReply(1, "m", "20", "x"),  # type: ignore[arg-type]
        lambda: ProtocolViolation(b"x"),  # type: ignore[arg-type]
        lambda: notify(job_id=""),
        lambda: notify(prevhash="00" * 31),
        lambda: notify(coinb1="0"),
        lambda: notify(merkle_branch=["00" * 31]),
        lambda: notify(merkle_branch="00" * 32),
        lambda: notify(version="2000000"),
        lambda: notify(clean_jobs=1),
    ],
)
def test_invalid_fields_are_local_errors(build: Any) -> None:
    with pytest.raises(LocalProtocolError):
        build()


def test_suggest_target_spans_every_256_bit_target() -> None:
    assert SuggestTarget(None, 1).target == 1
    assert SuggestTarget("t", 2**256 - 1).target == 2**256 - 1


def test_error_kinds() -> None:
    assert issubclass(LocalProtocolError, ProtocolError)
    assert issubclass(RemoteProtocolError, ProtocolError)
    with pytest.raises(TypeError):
        ProtocolError("abstract")
    assert RemoteProtocolError("x").events == ()


def test_events_are_frozen() -> None:
    event = Submit(4, "w", "j", "00000000", "5e9a2b7c", "12345678")
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.nonce = "0"  # type: ignore[misc]


def test_password_stays_out_of_repr() -> None:
    event = Authorize(2, "tb1qworker", "hunter2")
    assert "hunter2" not in repr(event)
    assert event.password == "hunter2"


def test_configure_properties_follow_bip310() -> None:
    event = Configure(
        1,
        ["minimum-difficulty", "version-rolling", "subscribe-extranonce", "info"],  # type: ignore[arg-type]
        {
            "minimum-difficulty.value": 2048,
            "version-rolling.mask": "1fffe000",
            "version-rolling.min-bit-count": 2,
            "info.hw-version": "x",
        },
    )
    assert event.extensions == (
        "minimum-difficulty",
        "version-rolling",
        "subscribe-extranonce",
        "info",
    )
    assert event.version_rolling_mask == 0x1FFFE000
    assert event.version_rolling_min_bit_count == 2
    assert event.minimum_difficulty == 2048.0
    assert event.subscribe_extranonce is True
    assert event.params["info.hw-version"] == "x"
    with pytest.raises(TypeError):
        event.params["x"] = 1  # type: ignore[index]


def test_configure_defaults() -> None:
    # BIP310: no mask means every bit; a short %x mask is read as hex.
    assert Configure(1, ("version-rolling",)).version_rolling_mask == FULL_VERSION_MASK
    assert Configure(1, ("version-rolling",), {"version-rolling.mask": "3000"}).version_rolling_mask == 0x3000
    plain = Configure(1, ("minimum-difficulty",), {"minimum-difficulty.value": 0})
    assert plain.version_rolling_mask is None
    assert plain.minimum_difficulty == 0.0
    assert plain.subscribe_extranonce is False


def test_subscribe_result_session_id_is_the_notify_subscription() -> None:
    event = SubscribeResult(1, "08000002", 4, (("mining.set_difficulty", "b4b6"), ("mining.notify", "ae68")))
    assert event.session_id == "ae68"
    assert SubscribeResult(1, "08000002", 4).session_id is None


def test_configure_result_properties() -> None:
    event = ConfigureResult(
        1, {"version-rolling": True, "version-rolling.mask": "18000000", "minimum-difficulty": True}
    )
    assert event.version_rolling and event.version_rolling_mask == 0x18000000
    assert event.minimum_difficulty is True
    refused = ConfigureResult(1, {"version-rolling": False})
    assert not refused.version_rolling and refused.version_rolling_mask is None


def test_numbers_are_normalised() -> None:
    assert SetDifficulty(1024).difficulty == 1024.0
    assert type(SetDifficulty(1024).difficulty) is float
    code: Any = 21  # the constructor also takes a plain int
    assert BadRequest(1, None, code, "x").code is ErrorCode.JOB_NOT_FOUND


def test_notify_wire_line_is_cached_and_exact() -> None:
    line = CKPOOL_JOB.wire
    assert line is CKPOOL_JOB.wire
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    message = json.loads(line)
    assert message["id"] is None and message["method"] == "mining.notify"
    assert message["params"] == [
        CKPOOL_JOB.job_id,
        CKPOOL_JOB.prevhash,
        CKPOOL_JOB.coinb1,
        CKPOOL_JOB.coinb2,
        [],
        "20000000",
        "1701e2a0",
        "6927b489",
        True,
    ]
    # A job id that needs escaping is escaped, and branches are kept in order.
    odd = notify(job_id='j"1', merkle_branch=["11" * 32, "22" * 32])
    assert json.loads(odd.wire)["params"][0] == 'j"1'
    assert json.loads(odd.wire)["params"][4] == ["11" * 32, "22" * 32]
    assert odd.merkle_branch == ("11" * 32, "22" * 32)


def test_generic_events_hold_what_they_are_given() -> None:
    assert Response(3, "client.get_version", "cpuminer/2.5.1").result == "cpuminer/2.5.1"
    assert ExtensionRequest("a", "stratumkit.lease.register", {"gpus": 2}).params == {"gpus": 2}
    assert ExtensionNotification("mining.ping").id is None
