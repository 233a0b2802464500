from __future__ import annotations

import json
from typing import Any

import pytest

from stratumkit.protocol import (
    Authorize,
    BadRequest,
    Configure,
    ConnectionClosed,
    ErrorCode,
    ErrorReply,
    ExtensionRequest,
    ExtranonceSubscribe,
    LocalProtocolError,
    ProtocolViolation,
    RemoteProtocolError,
    Response,
    ServerConnection,
    ServerState,
    Submit,
    Subscribe,
    SuggestDifficulty,
    SuggestTarget,
)

from .helpers import CKPOOL_JOB, EXTENSION

SUBMIT = b'{"id": 4, "method": "mining.submit", "params": ["w", "j1", "00000000", "6927b489", "a3c0ffee"]}\n'


def line(ident: Any, method: str, params: Any) -> bytes:
    return json.dumps({"id": ident, "method": method, "params": params}).encode() + b"\n"


def replies(server: ServerConnection) -> list[dict[str, Any]]:
    data = server.data_to_send()
    assert data == b"" or data.endswith(b"\n")
    return [json.loads(text) for text in data.decode("ascii").splitlines()]


def make(state: ServerState) -> ServerConnection:
    """A server driven into ``state`` through the public API."""
    server = ServerConnection(extension_methods={EXTENSION})
    if state is ServerState.CONNECTED:
        return server
    server.receive_data(line(1, "mining.subscribe", ["test/1"]))
    server.respond_subscribe(1, "08000002", 4)
    if state is ServerState.AUTHORIZED:
        server.receive_data(line(2, "mining.authorize", ["w", "x"]))
        server.respond(2, True)
    server.data_to_send()
    assert server.state is state
    return server


# --------------------------------------------------------------------------------------------
# The state table


@pytest.mark.parametrize("state", [ServerState.CONNECTED, ServerState.SUBSCRIBED, ServerState.AUTHORIZED])
@pytest.mark.parametrize(
    ("request_line", "kind"),
    [
        (line(7, "mining.configure", [["version-rolling"], {}]), Configure),
        (line(7, "mining.subscribe", ["x/1"]), Subscribe),
        (line(7, "mining.authorize", ["w", "x"]), Authorize),
        (line(7, "mining.suggest_difficulty", [64]), SuggestDifficulty),
        (line(7, "mining.suggest_target", ["00000000ffff" + "0" * 52]), SuggestTarget),
        (line(7, "mining.extranonce.subscribe", []), ExtranonceSubscribe),
        (line(7, EXTENSION, {"gpus": 2}), ExtensionRequest),
    ],
)
def test_requests_allowed_in_every_open_state(state: ServerState, request_line: bytes, kind: type) -> None:
    server = make(state)
    [event] = server.receive_data(request_line)
    assert type(event) is kind
    assert server.data_to_send() == b""  # the application answers
    assert server.awaiting_reply == 1
    assert server.state is state


@pytest.mark.parametrize(
    ("state", "code"),
    [
        (ServerState.CONNECTED, ErrorCode.NOT_SUBSCRIBED),
        (ServerState.SUBSCRIBED, ErrorCode.UNAUTHORIZED),
    ],
)
def test_early_submit_is_answered_by_the_protocol(state: ServerState, code: ErrorCode) -> None:
    server = make(state)
    [event] = server.receive_data(SUBMIT)
    assert event == BadRequest(4, "mining.submit", code, code.default_message)
    assert replies(server) == [{"id": 4, "result": None, "error": [int(code), code.default_message, None]}]
    assert server.state is state
    assert server.awaiting_reply == 0


def test_submit_when_authorized_is_an_event() -> None:
    server = make(ServerState.AUTHORIZED)
    [event] = server.receive_data(SUBMIT)
    assert event == Submit(4, "w", "j1", "00000000", "6927b489", "a3c0ffee", None)
    assert server.data_to_send() == b""
    server.respond(4, True)
    assert server.data_to_send() == b'{"id":4,"result":true,"error":null}\n'


def test_submit_overtaking_a_pending_authorize_reaches_the_application() -> None:
    server = make(ServerState.SUBSCRIBED)
    events = server.receive_data(line(2, "mining.authorize", ["w", "x"]) + SUBMIT)
    assert [type(event) for event in events] == [Authorize, Submit]
    server.respond(2, False)  # refused after all
    server.respond_error(4, ErrorCode.UNAUTHORIZED)
    assert server.state is ServerState.SUBSCRIBED
    # With no authorization granted or pending, the protocol refuses shares again.
    [event] = server.receive_data(SUBMIT)
    assert isinstance(event, BadRequest) and event.code is ErrorCode.UNAUTHORIZED


def test_authorize_before_subscribe_is_remembered() -> None:
    server = make(ServerState.CONNECTED)
    server.receive_data(line(1, "mining.authorize", ["w", "x"]))
    server.respond(1, True)
    assert server.state is ServerState.CONNECTED
    assert server.authorized_workers == {"w"}
    [event] = server.receive_data(SUBMIT)
    assert isinstance(event, BadRequest) and event.code is ErrorCode.NOT_SUBSCRIBED
    server.receive_data(line(2, "mining.subscribe", []))
    server.respond_subscribe(2, "0a0b0c0d", 8)
    # (mypy narrows the property from the assert above; the state did change)
    assert server.state is ServerState.AUTHORIZED  # type: ignore[comparison-overlap]
    assert (server.extranonce1, server.extranonce2_size) == ("0a0b0c0d", 8)


def test_refused_subscribe_and_authorize_change_nothing() -> None:
    server = make(ServerState.CONNECTED)
    server.receive_data(line(1, "mining.subscribe", []) + line(2, "mining.authorize", ["w", ""]))
    server.respond_error(1, ErrorCode.OTHER, "pool full")
    server.respond_error(2, ErrorCode.UNAUTHORIZED)
    assert server.state is ServerState.CONNECTED
    assert server.authorized_workers == frozenset()
    assert replies(server) == [
        {"id": 1, "result": None, "error": [20, "pool full", None]},
        {"id": 2, "result": None, "error": [24, "Unauthorized worker", None]},
    ]


def test_several_workers_can_authorize_on_one_connection() -> None:
    server = make(ServerState.SUBSCRIBED)
    server.receive_data(line(2, "mining.authorize", ["a", "x"]) + line(3, "mining.authorize", ["b", "x"]))
    server.respond(2, True)
    server.respond(3, True)
    assert server.authorized_workers == {"a", "b"}
    assert server.state is ServerState.AUTHORIZED


# --------------------------------------------------------------------------------------------
# Bad input: exact code, message, and the state after


@pytest.mark.parametrize(
    ("data", "reply_id", "message"),
    [
        (b"{not json}\n", None, "malformed JSON"),
        (b'{"id": 1, "method": "mining.subscribe"\n', None, "malformed JSON"),
        (b"[1, 2, 3]\n", None, "a request must be a JSON object"),
        (b'"mining.subscribe"\n', None, "a request must be a JSON object"),
        (b'{"id": 5, "params": []}\n', 5, 'missing "method"'),
        (b'{"id": 5, "method": 7, "params": []}\n', 5, '"method" must be a string'),
        (b'{"id": 5.5, "method": "mining.subscribe", "params": []}\n', None, '"id" must be'),
        (b'{"id": true, "method": "mining.subscribe", "params": []}\n', None, '"id" must be'),
        (b'{"id": [1], "method": "mining.subscribe", "params": []}\n', None, '"id" must be'),
        (line(6, "mining.get_transactions", ["j1"]), 6, "unknown method 'mining.get_transactions'"),
        (line(6, "mining.subscribe", {"agent": "x"}), 6, "mining.subscribe params must be a list"),
        (line(6, "mining.subscribe", [5]), 6, "user agent"),
        (line(6, "mining.authorize", []), 6, "mining.authorize takes"),
        (line(6, "mining.authorize", [1, "x"]), 6, "mining.authorize takes"),
        (line(6, "mining.authorize", ["w", 5]), 6, "mining.authorize takes"),
        (line(6, "mining.configure", ["version-rolling"]), 6, "mining.configure takes"),
        (line(6, "mining.configure", [["version-rolling"], []]), 6, "mining.configure takes"),
        (
            line(6, "mining.configure", [["version-rolling"], {"version-rolling.mask": "zz"}]),
            6,
            "version-rolling.mask",
        ),
        (line(6, "mining.suggest_difficulty", []), 6, "positive number"),
        (line(6, "mining.suggest_difficulty", [-5]), 6, "positive number"),
        (line(6, "mining.suggest_difficulty", ["512"]), 6, "positive number"),
        (line(6, "mining.suggest_target", []), 6, "64 hex digits"),
        (line(6, "mining.suggest_target", ["ffff"]), 6, "64 hex digits"),
        (line(6, "mining.suggest_target", ["0" * 64]), 6, "not zero"),
        (line(6, "mining.suggest_target", ["1" * 65]), 6, "64 hex digits"),
        (line(6, "mining.suggest_target", ["0x" + "f" * 62]), 6, "64 hex digits"),
        (line(6, "mining.suggest_target", ["g" * 64]), 6, "64 hex digits"),
        (line(6, "mining.suggest_target", [2**200]), 6, "64 hex digits"),
        (line(6, "mining.suggest_target", "f" * 64), 6, "64 hex digits"),
        (
            b'{"id":1,"method":"mining.submit","method":"mining.subscribe","params":["x"]}\n',
            None,
            "duplicate key 'method'",
        ),
        (b'{"id": 1, "method": "mining.configure", "params": [[], {"a": 1, "a": 2}]}\n', None, "duplicate key 'a'"),
    ],
)
@pytest.mark.parametrize("state", [ServerState.CONNECTED, ServerState.AUTHORIZED])
def test_bad_requests_get_error_20_and_the_connection_goes_on(
    data: bytes, reply_id: Any, message: str, state: ServerState
) -> None:
    server = make(state)
    [event] = server.receive_data(data)
    assert isinstance(event, BadRequest)
    assert event.code is ErrorCode.OTHER and event.id == reply_id
    assert message in event.message
    [reply] = replies(server)
    assert reply == {"id": reply_id, "result": None, "error": [20, event.message, None]}
    assert server.state is state
    # ... and the next request is served normally.
    [event] = server.receive_data(line(9, "mining.suggest_difficulty", [2]))
    assert isinstance(event, SuggestDifficulty)


@pytest.mark.parametrize(
    "params",
    [
        None,
        {},
        [],
        ["w", "j", "00", "00"],
        ["w", "j", "00", "00", "00", "00", "00"],
        ["w", "j", "00", "00", 5],
        ["w", 1, "00", "00", "00"],
        ["w", "j", "00", "00", "00", 7],
        [None, "j", "00", "00", "00"],
    ],
)
def test_submit_of_the_wrong_shape_is_error_20(params: Any) -> None:
    server = make(ServerState.AUTHORIZED)
    [event] = server.receive_data(line(4, "mining.submit", params))
    assert isinstance(event, BadRequest) and event.code is ErrorCode.OTHER
    assert "5 or 6 string params" in event.message
    assert server.state is ServerState.AUTHORIZED


def test_submit_shape_only_widths_are_left_to_the_validator() -> None:
    server = make(ServerState.AUTHORIZED)
    [event] = server.receive_data(line(4, "mining.submit", ["", "", "zz", "1", "", None]))
    assert event == Submit(4, "", "", "zz", "1", "", None)


@pytest.mark.parametrize("bytewise", [False, True])
def test_oversized_line_is_fatal(bytewise: bool) -> None:
    server = ServerConnection(max_line_length=64)
    data = b'{"id": 1, "method": "mining.subscribe", "params": ["' + b"x" * 64 + b'"]}\n'
    with pytest.raises(RemoteProtocolError, match="longer than 64 bytes"):
        if bytewise:
            for index in range(len(data)):
                server.receive_data(data[index : index + 1])
        else:
            server.receive_data(data)
    assert server.state is ServerState.ERROR
    with pytest.raises(RemoteProtocolError):
        server.receive_data(b"\n")
    with pytest.raises(LocalProtocolError):
        server.send_set_difficulty(1)


@pytest.mark.parametrize(
    "garbage",
    [b"\x00\x01\x02\x03\n", b"\xff\xfe\xfd\n", b'{"id": 1, "method": "mining.sub\x07scribe"}\n'],
)
def test_binary_garbage_is_fatal(garbage: bytes) -> None:
    server = make(ServerState.AUTHORIZED)
    with pytest.raises(RemoteProtocolError, match="binary data"):
        server.receive_data(garbage)
    assert server.state is ServerState.ERROR


def test_tls_handshake_on_plain_port_fails_at_once() -> None:
    server = ServerConnection()
    with pytest.raises(RemoteProtocolError, match="TLS"):
        server.receive_data(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")


def test_events_before_a_fatal_line_are_not_lost() -> None:
    server = make(ServerState.AUTHORIZED)
    with pytest.raises(RemoteProtocolError) as info:
        server.receive_data(SUBMIT + b"\x00garbage\n" + SUBMIT)
    assert [type(event) for event in info.value.events] == [Submit]
    server = ServerConnection(max_line_length=200)
    with pytest.raises(RemoteProtocolError) as info:
        server.receive_data(line(1, "mining.subscribe", []) + b"{" + b" " * 300)
    assert [type(event) for event in info.value.events] == [Subscribe]


def test_end_of_stream() -> None:
    server = make(ServerState.AUTHORIZED)
    server.receive_data(b'{"id": 4, "method": "mining.sub')  # a partial line is dropped
    assert server.receive_data(b"") == [ConnectionClosed()]
    assert server.state is ServerState.CLOSED
    assert server.receive_data(b"") == []
    with pytest.raises(LocalProtocolError):
        server.receive_data(SUBMIT)
    with pytest.raises(LocalProtocolError):
        server.send_notify(CKPOOL_JOB)


# --------------------------------------------------------------------------------------------
# Replies


@pytest.mark.parametrize("ident", [0, 4, -1, 2**64, "4", "abc-1", "é\u2603", ""], ids=repr)
def test_ids_are_echoed_exactly(ident: Any) -> None:
    server = make(ServerState.AUTHORIZED)
    server.receive_data(line(ident, "mining.submit", ["w", "j", "00", "00", "00"]))
    server.respond(ident, True)
    server.receive_data(line(ident, "mining.submit", ["w", "j", "00", "00", "00"]))
    server.respond_error(ident, ErrorCode.JOB_NOT_FOUND)
    server.receive_data(line(ident, "mining.nope", []))
    accepted, stale, unknown = replies(server)
    for reply in (accepted, stale, unknown):
        assert type(reply["id"]) is type(ident) and reply["id"] == ident
    assert accepted == {"id": ident, "result": True, "error": None}
    assert stale == {"id": ident, "result": None, "error": [21, "Job not found", None]}


# --------------------------------------------------------------------------------------------
# Notifications ("id": null or no id): never answered

TARGET_HEX = "00000000ffff" + "0" * 52


def notification(method: str, params: Any) -> bytes:
    return json.dumps({"id": None, "method": method, "params": params}).encode() + b"\n"


@pytest.mark.parametrize("with_id", [True, False], ids=["id-null", "no-id"])
@pytest.mark.parametrize(
    ("data", "message"),
    [
        (notification("mining.get_transactions", ["j1"]), "unknown method"),
        (notification("mining.capabilities", [{"notify": []}]), "unknown method"),
        (notification("mining.subscribe", {"agent": "x"}), "params must be a list"),
        (notification("mining.authorize", []), "mining.authorize takes"),
        (notification("mining.configure", ["version-rolling"]), "mining.configure takes"),
        (notification("mining.suggest_difficulty", [-5]), "positive number"),
        (notification("mining.suggest_target", ["0" * 64]), "not zero"),
        (notification("mining.suggest_target", [0.004]), "64 hex digits"),
        (notification("mining.submit", ["w", "j"]), ""),
        (b'{"id": null, "params": []}\n', 'missing "method"'),
        (b'{"id": null, "method": 7, "params": []}\n', '"method" must be a string'),
    ],
)
@pytest.mark.parametrize("state", [ServerState.CONNECTED, ServerState.AUTHORIZED])
def test_a_refused_notification_is_reported_not_answered(
    data: bytes, message: str, state: ServerState, with_id: bool
) -> None:
    server = make(state)
    if not with_id:  # JSON-RPC 2.0 spelling of a notification
        data = json.dumps({key: value for key, value in json.loads(data).items() if key != "id"}).encode() + b"\n"
    [event] = server.receive_data(data)
    assert isinstance(event, ProtocolViolation)
    assert message in event.message and "not answered" in event.message
    assert server.data_to_send() == b""
    assert server.awaiting_reply == 0 and server.state is state


@pytest.mark.parametrize("state", [ServerState.CONNECTED, ServerState.SUBSCRIBED])
def test_an_early_share_as_a_notification_is_reported_not_answered(state: ServerState) -> None:
    server = make(state)
    [event] = server.receive_data(notification("mining.submit", ["w", "j1", "00000000", "6927b489", "a3c0ffee"]))
    assert isinstance(event, ProtocolViolation) and "mining.submit" in event.message
    assert server.data_to_send() == b""


def test_known_notifications_are_events_and_answering_them_sends_and_changes_nothing() -> None:
    server = ServerConnection()
    events = server.receive_data(
        notification("mining.configure", [["version-rolling"], {"version-rolling.mask": "ffffffff"}])
        + notification("mining.subscribe", ["x/1"])
        + notification("mining.authorize", ["w", "x"])
        + notification("mining.suggest_difficulty", [0.004])
        + notification("mining.suggest_target", [TARGET_HEX])
        + notification("mining.extranonce.subscribe", [])
    )
    configure, subscribe, authorize, suggest, target, extranonce = events
    assert [type(event) for event in events] == [
        Configure,
        Subscribe,
        Authorize,
        SuggestDifficulty,
        SuggestTarget,
        ExtranonceSubscribe,
    ]
    assert suggest == SuggestDifficulty(None, 0.004) and target == SuggestTarget(None, 0xFFFF << 208)
    assert all(event.id is None for event in events)  # type: ignore[attr-defined]
    assert server.awaiting_reply == 0
    # The application answers every event the same way: nothing goes out, nothing changes.
    server.respond_configure(configure.id, version_rolling_mask=0x1FFFE000)  # type: ignore[attr-defined]
    server.respond_subscribe(subscribe.id, "08000002", 4)  # type: ignore[attr-defined]
    server.respond(authorize.id, True)  # type: ignore[attr-defined]
    server.respond(suggest.id, True)
    server.respond_error(target.id, ErrorCode.OTHER, "no")
    server.respond(extranonce.id, True)  # type: ignore[attr-defined]
    assert server.data_to_send() == b""
    assert server.state is ServerState.CONNECTED
    assert server.version_rolling_mask is None and server.extranonce1 is None
    assert server.authorized_workers == frozenset() and not server.extranonce_subscribed
    # A result that could never be sent is still our bug, id or not.
    with pytest.raises(LocalProtocolError):
        server.respond(None, {1, 2})


def test_an_authorize_notification_does_not_let_shares_overtake_it() -> None:
    server = make(ServerState.SUBSCRIBED)
    [authorize] = server.receive_data(notification("mining.authorize", ["w", "x"]))
    assert isinstance(authorize, Authorize)
    [share] = server.receive_data(SUBMIT)
    assert share == BadRequest(4, "mining.submit", ErrorCode.UNAUTHORIZED, "Unauthorized worker")


def test_a_share_as_a_notification_is_judged_but_not_answered() -> None:
    server = make(ServerState.AUTHORIZED)
    [share] = server.receive_data(notification("mining.submit", ["w", "j1", "00000000", "6927b489", "a3c0ffee"]))
    assert share == Submit(None, "w", "j1", "00000000", "6927b489", "a3c0ffee")
    assert server.awaiting_reply == 0
    server.respond(None, True)
    server.respond_error(None, ErrorCode.LOW_DIFFICULTY)
    assert server.data_to_send() == b""
    # ... and a share with an id right after it is answered as usual.
    [share] = server.receive_data(SUBMIT)
    server.respond(4, True)
    assert replies(server) == [{"id": 4, "result": True, "error": None}]


def test_extension_notifications_are_events_without_an_answer() -> None:
    server = make(ServerState.AUTHORIZED)
    [event] = server.receive_data(notification(EXTENSION, {"gpus": 2}))
    assert event == ExtensionRequest(None, EXTENSION, {"gpus": 2})
    server.respond(None, {"ok": True})
    assert server.data_to_send() == b"" and server.awaiting_reply == 0


def test_reused_ids_are_answered_first_in_first_out() -> None:
    server = make(ServerState.AUTHORIZED)
    events = server.receive_data(
        b"".join(line(4, "mining.submit", ["w", "j", "00", "00", nonce]) for nonce in ("01", "02", "03"))
    )
    assert [event.nonce for event in events] == ["01", "02", "03"]  # type: ignore[attr-defined]
    assert server.awaiting_reply == 3
    for _ in range(3):
        server.respond(4, True)
    assert server.awaiting_reply == 0
    with pytest.raises(LocalProtocolError, match="no request with id 4"):
        server.respond(4, True)


@pytest.mark.parametrize("code", list(ErrorCode))
def test_error_replies_are_code_message_null(code: ErrorCode) -> None:
    server = make(ServerState.AUTHORIZED)
    server.receive_data(SUBMIT + SUBMIT)
    server.respond_error(4, code)
    server.respond_error(4, int(code), 'custom "text"')
    assert replies(server) == [
        {"id": 4, "result": None, "error": [int(code), code.default_message, None]},
        {"id": 4, "result": None, "error": [int(code), 'custom "text"', None]},
    ]


def test_respond_misuse_is_a_local_error() -> None:
    server = make(ServerState.AUTHORIZED)
    with pytest.raises(LocalProtocolError):
        server.respond(99, True)
    server.receive_data(SUBMIT + line(5, "mining.subscribe", []))
    with pytest.raises(LocalProtocolError):
        server.respond(4, {1, 2})  # not JSON
    with pytest.raises(LocalProtocolError):
        server.respond(4, float("nan"))
    with pytest.raises(LocalProtocolError):
        server.respond_error(4, "21")  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError):
        server.respond_subscribe(4, "08000002", 4)  # 4 is a submit
    for bad in (
        ["x", "08000002", 4],
        [[], "0800000", 4],
        [[], "", 4],
        [[], "08000002", 1],
        [[], "08000002", 17],
    ):
        with pytest.raises(LocalProtocolError):
            server.respond(5, bad)
    assert server.awaiting_reply == 2  # failed answers consumed nothing
    server.respond(4, True)
    server.respond_subscribe(5, "08000003", 16, subscription_id="s5")
    assert server.extranonce1 == "08000003"


def test_subscribe_result_shape_and_resume_id() -> None:
    server = ServerConnection()
    [event] = server.receive_data(
        line(
            1,
            "mining.subscribe",
            ["cpuminer/2.5.1", "ae6812eb4cd7735a302a8a9dd95cf71f", "pool", 3333],
        )
    )
    assert event == Subscribe(1, "cpuminer/2.5.1", "ae6812eb4cd7735a302a8a9dd95cf71f")
    server.respond_subscribe(1, "08000002", 4)
    assert replies(server) == [
        {
            "id": 1,
            "result": [
                [["mining.set_difficulty", "08000002"], ["mining.notify", "08000002"]],
                "08000002",
                4,
            ],
            "error": None,
        }
    ]
    assert server.user_agent == "cpuminer/2.5.1"


def test_respond_configure_negotiates_per_bip310() -> None:
    server = ServerConnection()
    [event] = server.receive_data(
        line(
            1,
            "mining.configure",
            [
                ["version-rolling", "minimum-difficulty", "subscribe-extranonce", "info"],
                {"version-rolling.mask": "1fffe000", "minimum-difficulty.value": 2048},
            ],
        )
    )
    assert isinstance(event, Configure)
    server.respond_configure(1, version_rolling_mask=0x3FFFE000, minimum_difficulty=True, subscribe_extranonce=True)
    assert replies(server) == [
        {
            "id": 1,
            "result": {
                "version-rolling": True,
                "version-rolling.mask": "1fffe000",  # pool mask & miner mask
                "minimum-difficulty": True,
                "subscribe-extranonce": True,
                "info": False,
            },
            "error": None,
        }
    ]
    assert server.version_rolling_mask == 0x1FFFE000
    assert server.extranonce_subscribed


def test_respond_configure_can_refuse_version_rolling() -> None:
    server = ServerConnection()
    server.receive_data(line(1, "mining.configure", [["version-rolling"], {}]))
    server.respond_configure(1)
    assert replies(server)[0]["result"] == {"version-rolling": False}
    assert server.version_rolling_mask is None
    with pytest.raises(LocalProtocolError, match="before version rolling was negotiated"):
        server.send_set_version_mask(0x6000)


# --------------------------------------------------------------------------------------------
# Messages the pool starts


@pytest.mark.parametrize(
    ("difficulty", "text"),
    [(1024, b"1024"), (1024.0, b"1024"), (0.001, b"0.001"), (1e-05, b"0.00001"), (1.5, b"1.5")],
)
def test_set_difficulty_text(difficulty: float, text: bytes) -> None:
    server = ServerConnection()
    server.send_set_difficulty(difficulty)
    assert server.data_to_send() == b'{"id":null,"method":"mining.set_difficulty","params":[' + text + b"]}\n"


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf"), True, "1"])
def test_set_difficulty_refuses_nonsense(bad: Any) -> None:
    with pytest.raises(LocalProtocolError):
        ServerConnection().send_set_difficulty(bad)


def test_notify_needs_a_subscription() -> None:
    server = make(ServerState.CONNECTED)
    with pytest.raises(LocalProtocolError, match="before the miner's subscription"):
        server.send_notify(CKPOOL_JOB)
    server = make(ServerState.SUBSCRIBED)
    server.send_notify(CKPOOL_JOB)
    assert server.data_to_send() == CKPOOL_JOB.wire
    with pytest.raises(LocalProtocolError):
        server.send_notify("job")  # type: ignore[arg-type]


def test_set_extranonce_needs_the_miners_opt_in() -> None:
    server = make(ServerState.AUTHORIZED)
    with pytest.raises(LocalProtocolError, match="did not subscribe"):
        server.send_set_extranonce("0a0b0c0d", 4)
    server.receive_data(line(3, "mining.extranonce.subscribe", []))
    assert not server.extranonce_subscribed  # not until the answer says yes
    server.respond(3, True)
    server.send_set_extranonce("0a0b0c0d", 4)
    assert replies(server)[-1] == {
        "id": None,
        "method": "mining.set_extranonce",
        "params": ["0a0b0c0d", 4],
    }
    assert (server.extranonce1, server.extranonce2_size) == ("0a0b0c0d", 4)
    for bad in (("0a0", 4), ("", 4), ("0a0b", 1), ("0a0b", 17)):
        with pytest.raises(LocalProtocolError):
            server.send_set_extranonce(*bad)


def test_set_version_mask_after_negotiation() -> None:
    server = ServerConnection()
    server.receive_data(line(1, "mining.configure", [["version-rolling"], {"version-rolling.mask": "ffffffff"}]))
    server.respond_configure(1, version_rolling_mask=0x1FFFE000)
    server.data_to_send()
    server.send_set_version_mask(0x00006000)
    assert server.data_to_send() == b'{"id":null,"method":"mining.set_version_mask","params":["00006000"]}\n'
    assert server.version_rolling_mask == 0x6000
    with pytest.raises(LocalProtocolError):
        server.send_set_version_mask(1 << 32)


@pytest.mark.parametrize(
    ("args", "params"),
    [((), []), (("pool.example", 3333), ["pool.example", 3333]), (("h", 3334, 5), ["h", 3334, 5])],
)
def test_reconnect(args: tuple[Any, ...], params: list[Any]) -> None:
    server = ServerConnection()
    server.send_reconnect(*args)
    assert replies(server) == [{"id": None, "method": "client.reconnect", "params": params}]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"port": 3333},
        {"host": "h", "wait": 1},
        {"host": ""},
        {"host": "h", "port": 0},
        {"host": "h", "port": 1, "wait": -1},
    ],
)
def test_reconnect_refuses_incoherent_params(kwargs: dict[str, Any]) -> None:
    with pytest.raises(LocalProtocolError):
        ServerConnection().send_reconnect(**kwargs)


def test_show_message_and_notifications() -> None:
    server = ServerConnection()
    server.send_show_message('maintenance at 12:00 "UTC"')
    server.send_notification("stratumkit.lease.divert", {"lease": "L1", "token": 7})
    assert replies(server) == [
        {"id": None, "method": "client.show_message", "params": ['maintenance at 12:00 "UTC"']},
        {"id": None, "method": "stratumkit.lease.divert", "params": {"lease": "L1", "token": 7}},
    ]
    with pytest.raises(LocalProtocolError):
        server.send_notification("x", {1, 2})
    with pytest.raises(LocalProtocolError):
        server.send_notification("", [])


def test_get_version_round_trip_and_stray_replies() -> None:
    server = make(ServerState.AUTHORIZED)
    first = server.send_get_version()
    second = server.send_request("stratumkit.lease.status", ["L1"])
    assert second == first + 1
    assert replies(server) == [
        {"id": first, "method": "client.get_version", "params": []},
        {"id": second, "method": "stratumkit.lease.status", "params": ["L1"]},
    ]
    events = server.receive_data(
        b'{"id": %d, "error": null, "result": "cpuminer/2.5.1"}\n' % first
        + b'{"id": %d, "result": null, "error": [20, "no such lease", null]}\n' % second
        + b'{"id": %d, "result": "again", "error": null}\n' % first
        + b'{"id": null, "result": true, "error": null}\n'
    )
    assert events[:2] == [
        Response(first, "client.get_version", "cpuminer/2.5.1"),
        ErrorReply(second, "stratumkit.lease.status", 20, "no such lease"),
    ]
    assert all(isinstance(event, ProtocolViolation) for event in events[2:])
    assert server.data_to_send() == b""  # replies are never answered


def test_extension_requests_only_when_registered() -> None:
    server = make(ServerState.AUTHORIZED)
    [event] = server.receive_data(line("r1", EXTENSION, {"gpus": [{"model": "RTX 4090", "vram_gb": 24}]}))
    assert event == ExtensionRequest("r1", EXTENSION, {"gpus": [{"model": "RTX 4090", "vram_gb": 24}]})
    server.respond("r1", {"rig_id": "rig-1"})
    assert replies(server) == [{"id": "r1", "result": {"rig_id": "rig-1"}, "error": None}]
    plain = ServerConnection()
    [event] = plain.receive_data(line("r1", EXTENSION, {}))
    assert isinstance(event, BadRequest) and event.code is ErrorCode.OTHER
