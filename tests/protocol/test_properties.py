"""Property tests: whatever arrives, receive_data returns events or raises RemoteProtocolError.

Anything else escaping (KeyError, TypeError, RecursionError, UnicodeError ...) is a bug.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stratumkit.protocol import (
    BadRequest,
    ClientConnection,
    ClientState,
    Event,
    LocalProtocolError,
    RemoteProtocolError,
    ServerConnection,
    ServerState,
)

from .helpers import EXTENSION

SETTINGS = settings(
    max_examples=100,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

METHODS = [
    "mining.subscribe",
    "mining.authorize",
    "mining.configure",
    "mining.submit",
    "mining.suggest_difficulty",
    "mining.extranonce.subscribe",
    "mining.notify",
    "mining.set_difficulty",
    "mining.set_extranonce",
    "mining.set_version_mask",
    "client.reconnect",
    "client.show_message",
    "client.get_version",
    EXTENSION,
]

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | st.sampled_from(["00000000", "ffffffff", "1fffe000", "00" * 32, "version-rolling", "x"])
)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=10) | st.dictionaries(st.text(max_size=30), children, max_size=6),
    max_leaves=25,
)
ids = st.none() | st.integers(min_value=0, max_value=8) | st.text(max_size=3) | json_values
messages = st.fixed_dictionaries(
    {},
    optional={
        "id": ids,
        "method": st.sampled_from(METHODS) | json_values,
        "params": json_values,
        "result": json_values,
        "error": json_values,
        "jsonrpc": st.just("2.0"),
    },
)

HASH = "00" * 32
# Well-formed params per method, mutated below so that the deep validation paths get reached.
VALID_PARAMS: dict[str, list[Any]] = {
    "mining.submit": ["w", "j", "00000000", "6927b489", "a3c0ffee", "00006000"],
    "mining.subscribe": ["agent/1", "session"],
    "mining.authorize": ["w", "x"],
    "mining.configure": [
        ["version-rolling", "minimum-difficulty", "subscribe-extranonce"],
        {
            "version-rolling.mask": "1fffe000",
            "version-rolling.min-bit-count": 2,
            "minimum-difficulty.value": 8,
        },
    ],
    "mining.suggest_difficulty": [8],
    "mining.notify": ["j", HASH, "01", "02", [HASH], "20000000", "1d00ffff", "5e9a2b7c", True],
    "mining.set_difficulty": [0.5],
    "mining.set_extranonce": ["0800", 4],
    "mining.set_version_mask": ["00006000"],
    "client.reconnect": ["pool.example", "3333", 1],
    "client.show_message": ["hi"],
}
VALID_RESULTS: list[Any] = [
    [[["mining.set_difficulty", "s"], ["mining.notify", "s"]], "08000002", 4],
    {"version-rolling": True, "version-rolling.mask": "1fffe000", "minimum-difficulty": True},
    True,
    False,
]


@st.composite
def mutated(draw: st.DrawFn, value: Any) -> Any:
    """``value`` itself, or with one element replaced, dropped or added (recursively)."""
    if isinstance(value, list) and value and draw(st.booleans()):
        index = draw(st.integers(min_value=0, max_value=len(value) - 1))
        action = draw(st.sampled_from(["replace", "drop", "add", "recurse"]))
        copy = list(value)
        if action == "replace":
            copy[index] = draw(json_values)
        elif action == "drop":
            del copy[index]
        elif action == "add":
            copy.insert(index, draw(json_values))
        else:
            copy[index] = draw(mutated(copy[index]))
        return copy
    if isinstance(value, dict) and value and draw(st.booleans()):
        key = draw(st.sampled_from(sorted(value)))
        changed = dict(value)
        changed[key] = draw(json_values)
        return changed
    return value


@st.composite
def near_valid(draw: st.DrawFn) -> dict[str, Any]:
    if draw(st.booleans()):
        method = draw(st.sampled_from(sorted(VALID_PARAMS)))
        return {"id": draw(ids), "method": method, "params": draw(mutated(VALID_PARAMS[method]))}
    result = draw(mutated(draw(st.sampled_from(VALID_RESULTS))))
    error = draw(st.sampled_from([None, None, [21, "Job not found", None]]) | json_values)
    return {"id": draw(st.integers(min_value=1, max_value=8)), "result": result, "error": error}


@st.composite
def streams(draw: st.DrawFn) -> list[bytes]:
    """A byte stream cut into chunks: JSON messages, arbitrary text and arbitrary bytes."""
    parts = draw(
        st.lists(
            st.one_of(
                messages.map(lambda message: json.dumps(message).encode()),
                near_valid().map(lambda message: json.dumps(message).encode()),
                near_valid().map(lambda message: json.dumps(message).encode()),
                json_values.map(lambda value: json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")),
                st.text(max_size=60).map(lambda text: text.encode("utf-8", "surrogatepass")),
                st.binary(max_size=60),
            ),
            max_size=8,
        )
    )
    terminators = draw(st.lists(st.sampled_from([b"\n", b"\r\n", b""]), min_size=len(parts), max_size=len(parts)))
    data = b"".join(part + end for part, end in zip(parts, terminators, strict=True))
    cuts = sorted(draw(st.lists(st.integers(min_value=0, max_value=len(data)), max_size=6)))
    chunks = [data[start:end] for start, end in zip([0, *cuts], [*cuts, len(data)], strict=True)]
    return [chunk for chunk in chunks if chunk]  # b"" would mean end of stream


def check_events(events: list[Event]) -> None:
    """Events are Event instances that pass their own validating constructor, so the parsers'
    trusted fast path never builds one the public constructor would refuse."""
    for event in events:
        assert isinstance(event, Event)
        assert dataclasses.replace(event) == event


def authorized_server() -> ServerConnection:
    server = ServerConnection(extension_methods={EXTENSION}, max_line_length=4096)
    server.receive_data(
        b'{"id":"s","method":"mining.subscribe","params":[]}\n{"id":"a","method":"mining.authorize","params":["w"]}\n'
    )
    server.respond_subscribe("s", "08000002", 4)
    server.respond("a", True)
    server.data_to_send()
    return server


def check_server_output(data: bytes) -> None:
    for text in data.decode("ascii").splitlines():
        message = json.loads(text)
        if "method" in message:  # something we sent ourselves (none in these tests)
            continue
        assert set(message) == {"id", "result", "error"}
        error = message["error"]
        assert error is None or (
            type(error) is list
            and len(error) == 3
            and type(error[0]) is int
            and type(error[1]) is str
            and error[2] is None
        )


def answer_all(server: ServerConnection, events: list[Event]) -> None:
    """Every request event can be answered (its id is echoable)."""
    for event in events:
        if isinstance(event, BadRequest) or not hasattr(event, "id"):
            continue
        try:
            server.respond_error(event.id, 20, "no")
        except LocalProtocolError:
            # Only a reply event (Response/ErrorReply) has nothing to answer.
            assert type(event).__name__ in {"Response", "ErrorReply"}


@SETTINGS
@given(chunks=streams(), authorized=st.booleans())
def test_server_input_yields_events_or_a_remote_error(chunks: list[bytes], authorized: bool) -> None:
    server = (
        authorized_server() if authorized else ServerConnection(extension_methods={EXTENSION}, max_line_length=4096)
    )
    server.send_get_version()  # so that some replies match
    server.data_to_send()
    for chunk in chunks:
        try:
            events = server.receive_data(chunk)
        except RemoteProtocolError as exc:
            assert server.state is ServerState.ERROR
            check_events(list(exc.events))
            check_server_output(server.data_to_send())
            return
        check_events(events)
        answer_all(server, events)
        check_server_output(server.data_to_send())


@SETTINGS
@given(message=messages | near_valid(), terminator=st.sampled_from([b"\n", b"\r\n"]))
def test_server_answers_or_reports_every_json_object(message: dict[str, Any], terminator: bytes) -> None:
    server = authorized_server()
    [event] = server.receive_data(json.dumps(message).encode() + terminator)
    check_events([event])
    output = server.data_to_send()
    if isinstance(event, BadRequest):
        [reply] = [json.loads(text) for text in output.decode().splitlines()]
        assert reply["error"][0] == int(event.code)
        assert reply["id"] == event.id
    else:
        assert output == b""  # the application answers, or it was a reply / violation


def pending_client() -> ClientConnection:
    client = ClientConnection(max_line_length=4096)
    client.subscribe("x")  # 1
    client.authorize("w")  # 2
    client.configure(version_rolling_mask=0xFFFFFFFF)  # 3
    client.send_request("mining.submit", [])  # 4
    client.suggest_difficulty(1)  # 5
    client.extranonce_subscribe()  # 6
    client.send_request(EXTENSION, {})  # 7
    client.data_to_send()
    return client


@SETTINGS
@given(chunks=streams())
def test_client_input_yields_events_or_a_remote_error(chunks: list[bytes]) -> None:
    client = pending_client()
    for chunk in chunks:
        try:
            events = client.receive_data(chunk)
        except RemoteProtocolError as exc:
            assert client.state is ClientState.ERROR
            check_events(list(exc.events))
            return
        check_events(events)
        for text in client.data_to_send().decode("ascii").splitlines():
            json.loads(text)  # automatic acknowledgements are valid JSON


@SETTINGS
@given(line=st.binary(max_size=200))
def test_any_single_line(line: bytes) -> None:
    for connection in (authorized_server(), pending_client()):
        try:
            events = connection.receive_data(line + b"\n")
        except RemoteProtocolError:
            continue
        assert all(isinstance(event, Event) for event in events)


REQUESTS = [
    "mining.submit",
    "mining.subscribe",
    "mining.authorize",
    "mining.configure",
    "mining.suggest_difficulty",
]
NOTIFICATIONS = sorted(set(VALID_PARAMS) - set(REQUESTS))
TARGETED = settings(SETTINGS, max_examples=30)


@pytest.mark.parametrize("method", REQUESTS)
@TARGETED
@given(data=st.data())
def test_server_request_params_of_every_shape(method: str, data: st.DataObject) -> None:
    params = data.draw(mutated(VALID_PARAMS[method]) | mutated(data.draw(mutated(VALID_PARAMS[method]))))
    [event] = authorized_server().receive_data(
        json.dumps({"id": 1, "method": method, "params": params}).encode() + b"\n"
    )
    check_events([event])


@pytest.mark.parametrize("method", NOTIFICATIONS)
@TARGETED
@given(data=st.data())
def test_client_notification_params_of_every_shape(method: str, data: st.DataObject) -> None:
    params = data.draw(mutated(VALID_PARAMS[method]) | mutated(data.draw(mutated(VALID_PARAMS[method]))))
    [event] = pending_client().receive_data(
        json.dumps({"id": None, "method": method, "params": params}).encode() + b"\n"
    )
    check_events([event])


@pytest.mark.parametrize("request_id", range(1, 8))
@TARGETED
@given(data=st.data())
def test_client_replies_of_every_shape(request_id: int, data: st.DataObject) -> None:
    result = data.draw(mutated(data.draw(st.sampled_from(VALID_RESULTS))) | json_values)
    error = data.draw(st.sampled_from([None, [23, "Low difficulty share", None]]) | json_values)
    reply = {"id": request_id, "result": result, "error": error}
    [event] = pending_client().receive_data(json.dumps(reply).encode() + b"\n")
    check_events([event])
