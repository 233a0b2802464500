from __future__ import annotations

import json
from typing import Any

import pytest

from stratumkit.protocol import (
    FULL_VERSION_MASK,
    AuthorizeResult,
    ClientConnection,
    ClientState,
    ConfigureResult,
    ConnectionClosed,
    ErrorReply,
    ExtensionNotification,
    GetVersion,
    LocalProtocolError,
    Notify,
    ProtocolViolation,
    Reconnect,
    RemoteProtocolError,
    Response,
    SetDifficulty,
    SetExtranonce,
    SetVersionMask,
    ShowMessage,
    SubmitResult,
    SubscribeResult,
)

from . import vectors
from .helpers import CKPOOL_JOB, FEEDERS


def sent(client: ClientConnection) -> list[dict[str, Any]]:
    data = client.data_to_send()
    assert data == b"" or data.endswith(b"\n")
    return [json.loads(text) for text in data.decode("ascii").splitlines()]


def subscribed(extranonce2_size: int = 4) -> ClientConnection:
    client = ClientConnection()
    request = client.subscribe("stratumkit-test/1.0")
    client.receive_data(
        b'{"id":%d,"result":[[["mining.notify","s1"]],"08000002",%d],"error":null}\n' % (request, extranonce2_size)
    )
    client.data_to_send()
    return client


def test_requests_get_fresh_ids_and_exact_params() -> None:
    client = ClientConnection()
    ids = [
        client.configure(version_rolling_mask=FULL_VERSION_MASK, version_rolling_min_bit_count=2),
        client.subscribe("stratumkit-agent/0.1", session_id="ae6812eb"),
        client.authorize("tb1qworker.rig1"),
        client.suggest_difficulty(1024.0),
        client.extranonce_subscribe(),
        client.send_request("stratumkit.lease.register", {"gpus": 2}),
    ]
    assert ids == [1, 2, 3, 4, 5, 6]
    assert sent(client) == [
        {
            "id": 1,
            "method": "mining.configure",
            "params": [
                ["version-rolling"],
                {"version-rolling.mask": "ffffffff", "version-rolling.min-bit-count": 2},
            ],
        },
        {"id": 2, "method": "mining.subscribe", "params": ["stratumkit-agent/0.1", "ae6812eb"]},
        {"id": 3, "method": "mining.authorize", "params": ["tb1qworker.rig1", "x"]},
        {"id": 4, "method": "mining.suggest_difficulty", "params": [1024]},
        {"id": 5, "method": "mining.extranonce.subscribe", "params": []},
        {"id": 6, "method": "stratumkit.lease.register", "params": {"gpus": 2}},
    ]
    assert client.pending_requests[3] == "mining.authorize"


def test_configure_lists_each_requested_extension() -> None:
    client = ClientConnection()
    client.configure(version_rolling_mask=0x1FFFE000, minimum_difficulty=2048, subscribe_extranonce=True)
    [request] = sent(client)
    assert request["params"] == [
        ["version-rolling", "minimum-difficulty", "subscribe-extranonce"],
        {"version-rolling.mask": "1fffe000", "minimum-difficulty.value": 2048},
    ]
    refused: list[dict[str, Any]] = [
        {},
        {"version_rolling_min_bit_count": 2},
        {"version_rolling_mask": -1},
        {"minimum_difficulty": -1},
    ]
    for bad in refused:
        with pytest.raises(LocalProtocolError):
            client.configure(**bad)


@pytest.mark.parametrize("feed", list(FEEDERS.values()), ids=list(FEEDERS))
def test_slush_session(feed: Any) -> None:
    """The documented session: subscribe result, notify, accepted share."""
    client = ClientConnection()
    client.subscribe("cpuminer/2.5.1")  # id 1
    events = feed(client.receive_data, vectors.SLUSH_SUBSCRIBE_RESULT + vectors.SLUSH_NOTIFY)
    assert events[0] == SubscribeResult(
        1,
        "08000002",
        4,
        (
            ("mining.set_difficulty", "b4b6693b72a50c7116db18d6497cac52"),
            ("mining.notify", "ae6812eb4cd7735a302a8a9dd95cf71f"),
        ),
    )
    assert client.session_id == "ae6812eb4cd7735a302a8a9dd95cf71f"
    assert client.state is ClientState.SUBSCRIBED
    job = events[1]
    assert isinstance(job, Notify)
    assert (job.job_id, job.version, job.nbits, job.ntime, job.clean_jobs) == (
        "bf",
        "00000002",
        "1c2ac4af",
        "504e86b9",
        False,
    )
    assert job.merkle_branch == ()
    assert client.submit("slush.miner1", "bf", "00000001", "504e86ed", "b2957c02") == 2
    client.data_to_send()
    # The documented reply was for id 4; answer ours the same way.
    [result] = client.receive_data(vectors.SLUSH_SUBMIT_ACCEPTED.replace(b'"id": 4', b'"id": 2'))
    assert result == SubmitResult(2, True)


def test_f2pool_subscribe_result_and_integer_difficulty() -> None:
    client = ClientConnection()
    client.subscribe("x")
    subscribe, difficulty = client.receive_data(vectors.F2POOL_SUBSCRIBE_RESULT + vectors.F2POOL_SET_DIFFICULTY)
    assert isinstance(subscribe, SubscribeResult)
    assert (subscribe.extranonce1, subscribe.extranonce2_size, subscribe.session_id) == (
        "00",
        8,
        "mining.notify",
    )
    assert difficulty == SetDifficulty(8192)
    assert client.difficulty == 8192.0


def test_ckpool_notify_parses_to_the_job_we_would_send() -> None:
    [event] = subscribed().receive_data(vectors.CKPOOL_NOTIFY)
    assert event == CKPOOL_JOB


def test_bip310_configure_and_version_mask() -> None:
    client = ClientConnection()
    client.configure(version_rolling_mask=0x1FFFE000, version_rolling_min_bit_count=2, minimum_difficulty=2048)
    result, mask = client.receive_data(vectors.BIP310_CONFIGURE_RESULT + vectors.BIP310_SET_VERSION_MASK)
    assert isinstance(result, ConfigureResult)
    assert result.version_rolling_mask == 0x18000000 and result.minimum_difficulty is True
    assert mask == SetVersionMask(0x3000)
    assert client.version_rolling_mask == 0x3000


def test_nicehash_extranonce_flow() -> None:
    client = subscribed()
    request = client.extranonce_subscribe()
    refused, change = client.receive_data(
        vectors.NICEHASH_EXTRANONCE_REFUSED.replace(b'"id": 3', b'"id": %d' % request) + vectors.NICEHASH_SET_EXTRANONCE
    )
    assert refused == ErrorReply(request, "mining.extranonce.subscribe", 20, "Not supported.")
    assert change == SetExtranonce("08000002", 4)
    assert (client.extranonce1, client.extranonce2_size) == ("08000002", 4)


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (b'{"id":2,"result":true,"error":null}', SubmitResult(2, True)),
        (
            b'{"id":2,"result":null,"error":[23,"Low difficulty share",null]}',
            SubmitResult(2, False, 23, "Low difficulty share"),
        ),
        (
            b'{"id":2,"result":false,"error":{"code":21,"message":"Stale"}}',
            SubmitResult(2, False, 21, "Stale"),
        ),
        (
            b'{"id":2,"result":false,"error":null,"reject-reason":"above target"}',
            SubmitResult(2, False, None, "above target"),
        ),
        (
            b'{"id":"2","result":true,"error":null}',
            SubmitResult("2", True),
        ),  # a pool that stringifies ids
    ],
)
def test_submit_results(reply: bytes, expected: SubmitResult) -> None:
    client = subscribed()
    assert client.submit("w", "j", "00000000", "6927b489", "a3c0ffee", "00006000") == 2
    [request] = sent(client)
    assert request["params"] == ["w", "j", "00000000", "6927b489", "a3c0ffee", "00006000"]
    assert client.receive_data(reply + b"\n") == [expected]
    assert client.pending_requests == {}


@pytest.mark.parametrize(
    ("reply", "expected", "state"),
    [
        (b'{"id":1,"result":true,"error":null}', AuthorizeResult(1, True), ClientState.AUTHORIZED),
        (
            b'{"id":1,"result":false,"error":null}',
            AuthorizeResult(1, False),
            ClientState.SUBSCRIBED,
        ),
        (
            b'{"id":1,"result":null,"error":[24,"Unauthorized worker",null]}',
            AuthorizeResult(1, False, 24, "Unauthorized worker"),
            ClientState.SUBSCRIBED,
        ),
    ],
)
def test_authorize_results(reply: bytes, expected: AuthorizeResult, state: ClientState) -> None:
    client = ClientConnection()
    assert client.authorize("w") == 1  # before subscribing: pipelined handshakes are fine
    assert client.subscribe("x") == 2
    events = client.receive_data(reply + b'\n{"id":2,"result":[[],"0800",4],"error":null}\n')
    assert events[0] == expected
    assert client.state is state


def test_other_replies_are_generic() -> None:
    client = subscribed()
    suggest = client.suggest_difficulty(64)
    lease = client.send_request("stratumkit.lease.register", [])
    events = client.receive_data(
        b'{"id":%d,"result":true,"error":null}\n{"id":%d,"result":null,"error":[20,"no",null]}\n' % (suggest, lease)
    )
    assert events == [
        Response(suggest, "mining.suggest_difficulty", True),
        ErrorReply(lease, "stratumkit.lease.register", 20, "no"),
    ]


def test_refused_subscribe_is_an_error_reply() -> None:
    client = ClientConnection()
    client.subscribe("x")
    [event] = client.receive_data(b'{"id":1,"result":null,"error":null}\n')
    assert isinstance(event, ErrorReply) and event.method == "mining.subscribe"
    assert client.state is ClientState.CONNECTED


@pytest.mark.parametrize(
    "data",
    [
        b"not json\n",
        b"[1]\n",
        b'{"id":1.5,"method":"mining.notify","params":[]}\n',
        b'{"id":null,"method":5}\n',
        b'{"id":null}\n',
        b'{"id":99,"result":true,"error":null}\n',  # a reply to nothing we sent
        b'{"id":null,"method":"mining.notify","params":["j"]}\n',
        b'{"id":null,"method":"mining.notify","params":{"job":"j"}}\n',
        b'{"id":null,"method":"mining.notify","params":["j","00","01","02",[],"20000000","1d00ffff","5e9a2b7c",true]}\n',
        b'{"id":null,"method":"mining.set_difficulty","params":[0]}\n',
        b'{"id":null,"method":"mining.set_difficulty","params":{}}\n',
        b'{"id":null,"method":"mining.set_extranonce","params":["0800"]}\n',
        b'{"id":null,"method":"mining.set_version_mask","params":["xyz"]}\n',
        b'{"id":null,"method":"client.reconnect","params":["h","port"]}\n',
        b'{"id":null,"method":"client.reconnect","params":{"host":"h"}}\n',
        b'{"id":null,"method":"client.show_message","params":[5]}\n',
        b'{"id":null,"method":"client.get_version","params":[]}\n',  # no id: cannot answer
        b'{"id":null,"method":"mining.set_difficulty","method":"client.reconnect","params":[8]}\n',
        b'{"id":null,"method":"mining.set_difficulty","params":[8],"params":[1]}\n',
    ],
)
def test_unusable_pool_lines_are_violations_and_the_connection_goes_on(data: bytes) -> None:
    client = subscribed()
    [event] = client.receive_data(data)
    assert isinstance(event, ProtocolViolation)
    assert client.state is ClientState.SUBSCRIBED
    assert client.receive_data(vectors.F2POOL_SET_DIFFICULTY) == [SetDifficulty(8192)]


def test_malformed_subscribe_result_is_a_violation() -> None:
    client = ClientConnection()
    client.subscribe("x")
    client.subscribe("y")
    client.subscribe("z")
    events = client.receive_data(
        b'{"id":1,"result":{"a":1},"error":null}\n'
        b'{"id":2,"result":[[],"0800",0],"error":null}\n'
        b'{"id":3,"result":[[],5,4],"error":null}\n'
    )
    assert all(isinstance(event, ProtocolViolation) for event in events)
    assert client.state is ClientState.CONNECTED


def test_framing_damage_is_fatal() -> None:
    client = ClientConnection(max_line_length=100)
    with pytest.raises(RemoteProtocolError):
        client.receive_data(vectors.CKPOOL_NOTIFY)
    assert client.state is ClientState.ERROR
    client = ClientConnection()
    with pytest.raises(RemoteProtocolError, match="binary data"):
        client.receive_data(b"\xff\x00\n")


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ([], Reconnect()),
        (None, Reconnect()),
        (["pool.example", 3333], Reconnect("pool.example", 3333)),
        (["pool.example", "3334", 10], Reconnect("pool.example", 3334, 10)),
        (["", 3333, "5"], Reconnect(None, 3333, 5.0)),
    ],
)
def test_reconnect_variants(params: Any, expected: Reconnect) -> None:
    client = subscribed()
    message = {"id": None, "method": "client.reconnect", "params": params}
    assert client.receive_data(json.dumps(message).encode() + b"\n") == [expected]


def test_show_message_is_acknowledged_when_it_has_an_id() -> None:
    client = subscribed()
    events = client.receive_data(
        b'{"id":null,"method":"client.show_message","params":["hello"]}\n'
        b'{"id":"m7","method":"client.show_message","params":["bye"]}\n'
    )
    assert events == [ShowMessage("hello"), ShowMessage("bye")]
    assert sent(client) == [{"id": "m7", "result": True, "error": None}]


def test_get_version_and_unknown_requests_are_answered_by_the_application() -> None:
    client = subscribed()
    events = client.receive_data(
        b'{"id":5,"method":"client.get_version","params":[]}\n'
        b'{"id":6,"method":"mining.ping","params":[]}\n'
        b'{"id":null,"method":"stratumkit.lease.divert","params":{"lease":"L1"}}\n'
    )
    assert events == [
        GetVersion(5),
        ExtensionNotification("mining.ping", [], 6),
        ExtensionNotification("stratumkit.lease.divert", {"lease": "L1"}, None),
    ]
    client.respond(5, "stratumkit-agent/0.1")
    client.respond_error(6, 20, "not supported")
    assert sent(client) == [
        {"id": 5, "result": "stratumkit-agent/0.1", "error": None},
        {"id": 6, "result": None, "error": [20, "not supported", None]},
    ]
    with pytest.raises(LocalProtocolError):
        client.respond(5, "again")


def test_submit_checks_what_it_can_know() -> None:
    with pytest.raises(LocalProtocolError, match="before the subscription"):
        ClientConnection().submit("w", "j", "00000000", "6927b489", "a3c0ffee")
    client = subscribed(extranonce2_size=4)
    for args in (
        ("w", "j", "000000", "6927b489", "a3c0ffee"),  # extranonce2 is 4 bytes here
        ("w", "j", "00000000", "6927b48", "a3c0ffee"),
        ("w", "j", "00000000", "6927b489", "a3c0ffeg"),
        ("w", "j", "00000000", "6927b489", "a3c0ffee", "6000"),
        ("w", 5, "00000000", "6927b489", "a3c0ffee"),
    ):
        with pytest.raises(LocalProtocolError):
            client.submit(*args)
    assert client.data_to_send() == b""


def test_end_of_stream() -> None:
    client = subscribed()
    assert client.receive_data(b"") == [ConnectionClosed()]
    assert client.state is ClientState.CLOSED
    with pytest.raises(LocalProtocolError):
        client.submit("w", "j", "00000000", "6927b489", "a3c0ffee")
    with pytest.raises(LocalProtocolError):
        client.receive_data(b"{}\n")
