"""The miner side of one Stratum V1 connection, as a sans-I/O state machine.

Used by the rig agent and the load generator. Requests get fresh integer ids; replies are
matched to them, so the answer to a subscribe comes out as ``SubscribeResult``, to an
authorize as ``AuthorizeResult``, to a share as ``SubmitResult`` (``Response`` /
``ErrorReply`` for everything else).

States (from what the pool granted):

==============  ==========================================================================
CONNECTED       no subscription yet (requests may be pipelined: authorize, configure ...)
SUBSCRIBED      a ``SubscribeResult`` arrived: extranonce1 / extranonce2_size are known
AUTHORIZED      subscribed, and at least one authorize was granted
CLOSED          the pool closed its side
ERROR           the pool broke the framing (oversized line, binary data)
==============  ==========================================================================

Rules:
- ``submit`` needs a subscription (it checks extranonce2's width against it) but not a granted
  authorization: the pool decides, and the reply says so. To send deliberately bad requests
  (load tests), use ``send_request``.
- A pool line we cannot use (malformed JSON, a notification of the wrong shape, a reply to
  nothing we sent) becomes a ``ProtocolViolation`` event and the connection goes on, as
  cpuminer and cgminer do; only broken framing raises ``RemoteProtocolError``.
- ``client.show_message`` with an id is acknowledged automatically (``true``), as cpuminer
  does; ``client.get_version`` and unknown requests with an id are left to the application.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any, Final

from .connection import OK_TAIL, Connection, clip, error_tail, reply_head, result_tail
from .errors import LocalProtocolError
from .events import (
    MINIMUM_DIFFICULTY,
    SUBSCRIBE_EXTRANONCE,
    VERSION_ROLLING,
    AuthorizeResult,
    ConfigureResult,
    ErrorReply,
    Event,
    ExtensionNotification,
    GetVersion,
    Notify,
    ProtocolViolation,
    Reconnect,
    Response,
    SetDifficulty,
    SetExtranonce,
    SetVersionMask,
    ShowMessage,
    SubmitResult,
    SubscribeResult,
    _check_hex,
    _check_mask,
    _check_size,
    _json_params,
    _trusted,
    parse_mask,
)
from .framing import DEFAULT_MAX_LINE_LENGTH
from .jsonrpc import (
    MalformedJSON,
    RequestId,
    as_difficulty,
    decode_line,
    dumps,
    encode_difficulty,
    encode_str,
    error_fields,
    is_request_id,
)

__all__ = ["ClientConnection", "ClientState"]


class ClientState(enum.Enum):
    CONNECTED = "connected"
    SUBSCRIBED = "subscribed"
    AUTHORIZED = "authorized"
    CLOSED = "closed"
    ERROR = "error"


# What an ErrorReply says when a pool refused a request with neither error nor result.
_NO_REASON: Final = [20, "no result and no error in the reply", None]
#: How much of a pool's JSON a ProtocolViolation message quotes.
_QUOTE_LIMIT: Final = 80


class ClientConnection(Connection[ClientState]):
    """One connection to a pool, miner side."""

    _peer = "pool"
    _states = (
        ClientState.CONNECTED,
        ClientState.SUBSCRIBED,
        ClientState.AUTHORIZED,
        ClientState.CLOSED,
        ClientState.ERROR,
    )

    def __init__(self, *, max_line_length: int = DEFAULT_MAX_LINE_LENGTH) -> None:
        super().__init__(max_line_length)
        self._server_requests: dict[RequestId, int] = {}  # pool request id -> times unanswered
        self._extranonce1: str | None = None
        self._extranonce2_size: int | None = None
        self._session_id: str | None = None
        self._difficulty: float | None = None
        self._version_rolling_mask: int | None = None

    @property
    def extranonce1(self) -> str | None:
        """From the subscribe result, or a later mining.set_extranonce."""
        return self._extranonce1

    @property
    def extranonce2_size(self) -> int | None:
        return self._extranonce2_size

    @property
    def session_id(self) -> str | None:
        """The mining.notify subscription id: pass it to ``subscribe`` to resume the session."""
        return self._session_id

    @property
    def difficulty(self) -> float | None:
        """The last mining.set_difficulty (it applies to the jobs notified after it)."""
        return self._difficulty

    @property
    def version_rolling_mask(self) -> int | None:
        """The negotiated version-rolling mask (None: no version rolling)."""
        return self._version_rolling_mask

    @property
    def pending_requests(self) -> dict[int, str]:
        """Our requests still waiting for the pool's reply: id -> method (a copy)."""
        return dict(self._pending)

    # ----------------------------------------------------------------------------------------
    # Requests

    def subscribe(self, user_agent: str, session_id: str | None = None) -> int:
        """``mining.subscribe``; pass a previous ``session_id`` to ask for the same extranonce1."""
        if type(user_agent) is not str:
            raise LocalProtocolError(f"user_agent must be a str, not {type(user_agent).__name__}")
        params = [user_agent] if session_id is None else [user_agent, session_id]
        if session_id is not None and type(session_id) is not str:
            raise LocalProtocolError(f"session_id must be a str, not {type(session_id).__name__}")
        return self._request("mining.subscribe", dumps(params))

    def authorize(self, username: str, password: str = "x") -> int:
        """``mining.authorize``; pools that ignore passwords conventionally get ``"x"``."""
        if type(username) is not str or not username:
            raise LocalProtocolError(f"username must be a non-empty str, got {username!r}")
        if type(password) is not str:
            raise LocalProtocolError(f"password must be a str, not {type(password).__name__}")
        return self._request("mining.authorize", dumps([username, password]))

    def configure(
        self,
        *,
        version_rolling_mask: int | None = None,
        version_rolling_min_bit_count: int | None = None,
        minimum_difficulty: float | None = None,
        subscribe_extranonce: bool = False,
    ) -> int:
        """``mining.configure`` (BIP310) for the extensions whose arguments are given.

        ``version_rolling_mask`` is the mask this miner can roll (``FULL_VERSION_MASK`` for
        all bits); the pool answers with the part it allows.
        """
        extensions: list[str] = []
        params: dict[str, Any] = {}
        if version_rolling_mask is not None:
            _check_mask("version_rolling_mask", version_rolling_mask)
            extensions.append(VERSION_ROLLING)
            params["version-rolling.mask"] = f"{version_rolling_mask:08x}"
            if version_rolling_min_bit_count is not None:
                _check_size("version_rolling_min_bit_count", version_rolling_min_bit_count, 0, 32)
                params["version-rolling.min-bit-count"] = version_rolling_min_bit_count
        elif version_rolling_min_bit_count is not None:
            raise LocalProtocolError("version_rolling_min_bit_count needs version_rolling_mask")
        if minimum_difficulty is not None:
            if minimum_difficulty != 0 and as_difficulty(minimum_difficulty) is None:
                raise LocalProtocolError(f"minimum_difficulty must be a finite number >= 0, got {minimum_difficulty!r}")
            extensions.append(MINIMUM_DIFFICULTY)
            params["minimum-difficulty.value"] = minimum_difficulty
        if subscribe_extranonce:
            extensions.append(SUBSCRIBE_EXTRANONCE)
        if not extensions:
            raise LocalProtocolError("configure() needs at least one extension")
        return self._request("mining.configure", dumps([extensions, params]))

    def suggest_difficulty(self, difficulty: float) -> int:
        value = as_difficulty(difficulty)
        if value is None:
            raise LocalProtocolError(f"difficulty must be a positive finite number, got {difficulty!r}")
        return self._request("mining.suggest_difficulty", f"[{encode_difficulty(value)}]")

    def extranonce_subscribe(self) -> int:
        """``mining.extranonce.subscribe`` (the NiceHash extension): accept set_extranonce."""
        return self._request("mining.extranonce.subscribe", "[]")

    def submit(
        self,
        worker: str,
        job_id: str,
        extranonce2: str,
        ntime: str,
        nonce: str,
        version_bits: str | None = None,
    ) -> int:
        """``mining.submit``; hex fields as the pool expects them (8 digits for ntime, nonce and
        version_bits, ``2 * extranonce2_size`` for extranonce2)."""
        if not self._subscribed:
            raise LocalProtocolError("submit() before the subscription was granted")
        if type(worker) is not str or type(job_id) is not str:
            raise LocalProtocolError("worker and job_id must be str")
        assert self.extranonce2_size is not None
        _check_hex("extranonce2", extranonce2, 2 * self.extranonce2_size)
        _check_hex("ntime", ntime, 8)
        _check_hex("nonce", nonce, 8)
        tail = ""
        if version_bits is not None:
            _check_hex("version_bits", version_bits, 8)
            tail = f',"{version_bits}"'
        params = f'[{encode_str(worker)},{encode_str(job_id)},"{extranonce2}","{ntime}","{nonce}"{tail}]'
        return self._request("mining.submit", params)

    def send_request(self, method: str, params: Any) -> int:
        """Any request (an extension, or a deliberately odd one); replies come back as
        ``Response`` / ``ErrorReply`` (typed results for the standard methods)."""
        if type(method) is not str or not method:
            raise LocalProtocolError(f"method must be a non-empty str, got {method!r}")
        return self._request(method, _json_params(params))

    # ----------------------------------------------------------------------------------------
    # Answers to the pool's requests

    def respond(self, request_id: RequestId, result: Any) -> None:
        """Answer a pool request (``GetVersion``, an ``ExtensionNotification`` with an id)."""
        self._take_server_request(request_id)
        self._out.append(reply_head(request_id) + result_tail(result))

    def respond_error(self, request_id: RequestId, code: int, message: str) -> None:
        if type(code) is bool or not isinstance(code, int) or type(message) is not str:
            raise LocalProtocolError("an error reply needs an int code and a str message")
        self._take_server_request(request_id)
        self._out.append(reply_head(request_id) + error_tail(int(code), message))

    def _take_server_request(self, request_id: RequestId) -> None:
        self._check_can_send()
        if not is_request_id(request_id) or not self._server_requests.get(request_id):
            raise LocalProtocolError(f"the pool sent no request with id {request_id!r} to answer")
        left = self._server_requests[request_id] - 1
        if left:
            self._server_requests[request_id] = left
        else:
            del self._server_requests[request_id]

    # ----------------------------------------------------------------------------------------
    # Input (``receive_data`` comes from Connection)

    def _handle_line(self, line: bytes) -> Event:
        try:
            message = decode_line(line)
        except MalformedJSON as exc:
            return _violation(str(exc))
        if type(message) is not dict:
            return _violation("a message must be a JSON object")
        ident = message.get("id")
        method = message.get("method")
        if not is_request_id(ident):
            return _violation('"id" must be an integer, a string or null')
        if method is None:
            return self._handle_reply(ident, message)
        if type(method) is not str:
            return _violation('"method" must be a string')
        params = message.get("params")
        handler = _NOTIFICATIONS.get(method)
        if handler is None:
            if ident is not None:
                self._server_requests[ident] = self._server_requests.get(ident, 0) + 1
            return _trusted(
                ExtensionNotification,
                {"method": method, "params": [] if params is None else params, "id": ident},
            )
        try:
            return handler(self, ident, params)
        except LocalProtocolError as exc:
            return _violation(f"{method}: {exc}")
        except (TypeError, LookupError, ValueError):
            return _violation(f"{method}: params of the wrong shape: {clip(dumps(params), _QUOTE_LIMIT)}")

    # Notification handlers: (self, id, params) -> event. A LocalProtocolError from an event
    # constructor, or a TypeError/LookupError/ValueError from unpacking, means "wrong shape".

    def _on_notify(self, ident: RequestId, params: Any) -> Event:
        if type(params) is not list or len(params) < 9:
            raise ValueError
        job_id, prevhash, coinb1, coinb2, branch, version, nbits, ntime, clean = params[:9]
        if type(branch) is not list:
            raise ValueError
        return Notify(job_id, prevhash, coinb1, coinb2, tuple(branch), version, nbits, ntime, clean)

    def _on_set_difficulty(self, ident: RequestId, params: Any) -> Event:
        event = SetDifficulty(params[0] if type(params) is list and params else params)
        self._difficulty = event.difficulty
        return event

    def _on_set_extranonce(self, ident: RequestId, params: Any) -> Event:
        if type(params) is not list:
            raise ValueError
        event = SetExtranonce(params[0], params[1])
        self._extranonce1, self._extranonce2_size = event.extranonce1, event.extranonce2_size
        return event

    def _on_set_version_mask(self, ident: RequestId, params: Any) -> Event:
        # cgminer also accepts a bare string instead of a one-item list.
        raw = params[0] if type(params) is list else params
        event = SetVersionMask(parse_mask("mask", raw))
        self._version_rolling_mask = event.mask
        return event

    def _on_reconnect(self, ident: RequestId, params: Any) -> Event:
        if params is None:
            params = []
        if type(params) is not list:
            raise ValueError
        host = params[0] if params else None
        port = params[1] if len(params) > 1 else None
        wait = params[2] if len(params) > 2 else None
        if host == "":
            host = None
        if type(port) is str:  # "3333" as well as 3333, as cpuminer and cgminer accept
            port = int(port) if port.isdigit() else port
        if type(wait) is str:
            wait = float(wait)
        return Reconnect(host, port, wait)

    def _on_show_message(self, ident: RequestId, params: Any) -> Event:
        event = ShowMessage(params[0] if type(params) is list and params else params)
        if ident is not None and not self._failed and not self._closed:
            self._out.append(reply_head(ident) + OK_TAIL)
        return event

    def _on_get_version(self, ident: RequestId, params: Any) -> Event:
        if ident is None:
            raise LocalProtocolError("client.get_version without an id cannot be answered")
        self._server_requests[ident] = self._server_requests.get(ident, 0) + 1
        return _trusted(GetVersion, {"id": ident})

    # Replies

    def _handle_reply(self, ident: RequestId, message: dict[str, Any]) -> Event:
        if "result" not in message and "error" not in message:
            return _violation('a message with neither "method" nor "result"')
        key = ident
        if type(ident) is str and ident.isdigit():  # a pool that stringified our id
            key = int(ident)
        method = self._pending.pop(key, None) if type(key) is int else None
        if method is None:
            return _violation(f"a reply with id {clip(dumps(ident), _QUOTE_LIMIT)} answers no request we sent")
        error = message.get("error")
        result = message.get("result")
        try:
            return _REPLIES.get(method, ClientConnection._on_reply)(self, ident, method, result, error, message)
        except LocalProtocolError as exc:
            return _violation(f"reply to {method}: {exc}")
        except (TypeError, LookupError, ValueError):
            return _violation(f"reply to {method} of the wrong shape: {clip(dumps(result), _QUOTE_LIMIT)}")

    def _on_reply(self, ident: RequestId, method: str, result: Any, error: Any, message: dict[str, Any]) -> Event:
        if error is not None:
            code, text = error_fields(error)
            return _trusted(ErrorReply, {"id": ident, "method": method, "code": code, "message": text})
        return _trusted(Response, {"id": ident, "method": method, "result": result})

    def _on_subscribe_reply(
        self, ident: RequestId, method: str, result: Any, error: Any, message: dict[str, Any]
    ) -> Event:
        if error is not None or result is None:
            return self._on_reply(ident, method, result, error or _NO_REASON, message)
        subscriptions, extranonce1, size = result[0], result[1], result[2]
        if type(subscriptions) is list and len(subscriptions) == 2 and all(type(item) is str for item in subscriptions):
            subscriptions = [subscriptions]  # a single pair instead of a list of pairs
        pairs = tuple(
            (pair[0], pair[1])
            for pair in (subscriptions if type(subscriptions) is list else ())
            if type(pair) is list and len(pair) == 2 and all(type(item) is str for item in pair)
        )
        event = SubscribeResult(ident, extranonce1, size, pairs)
        self._subscribed = True
        self._extranonce1, self._extranonce2_size = extranonce1, size
        self._session_id = event.session_id
        return event

    def _on_authorize_reply(
        self, ident: RequestId, method: str, result: Any, error: Any, message: dict[str, Any]
    ) -> Event:
        if error is not None:
            code, text = error_fields(error)
            return _trusted(AuthorizeResult, {"id": ident, "ok": False, "code": code, "message": text})
        ok = result is True
        if ok:
            self._authorized = True
        return _trusted(AuthorizeResult, {"id": ident, "ok": ok, "code": None, "message": None})

    def _on_configure_reply(
        self, ident: RequestId, method: str, result: Any, error: Any, message: dict[str, Any]
    ) -> Event:
        if error is not None or type(result) is not dict:
            return self._on_reply(ident, method, result, error or _NO_REASON, message)
        event = ConfigureResult(ident, result)
        self._version_rolling_mask = event.version_rolling_mask
        return event

    def _on_submit_reply(
        self, ident: RequestId, method: str, result: Any, error: Any, message: dict[str, Any]
    ) -> Event:
        if error is not None:
            code, text = error_fields(error)
            return _trusted(SubmitResult, {"id": ident, "accepted": False, "code": code, "message": text})
        if result is True:
            return _trusted(SubmitResult, {"id": ident, "accepted": True, "code": None, "message": None})
        # Rejected without an error: some pools explain in "reject-reason".
        reason = message.get("reject-reason")
        return _trusted(
            SubmitResult,
            {
                "id": ident,
                "accepted": False,
                "code": None,
                "message": reason if type(reason) is str else None,
            },
        )


def _violation(message: str) -> ProtocolViolation:
    return _trusted(ProtocolViolation, {"message": message})


_Notification = Callable[[ClientConnection, RequestId, Any], Event]
_NOTIFICATIONS: Final[dict[str, _Notification]] = {
    "mining.notify": ClientConnection._on_notify,
    "mining.set_difficulty": ClientConnection._on_set_difficulty,
    "mining.set_extranonce": ClientConnection._on_set_extranonce,
    "mining.set_version_mask": ClientConnection._on_set_version_mask,
    "client.reconnect": ClientConnection._on_reconnect,
    "client.show_message": ClientConnection._on_show_message,
    "client.get_version": ClientConnection._on_get_version,
}
_Reply = Callable[[ClientConnection, RequestId, str, Any, Any, dict[str, Any]], Event]
_REPLIES: Final[dict[str, _Reply]] = {
    "mining.subscribe": ClientConnection._on_subscribe_reply,
    "mining.authorize": ClientConnection._on_authorize_reply,
    "mining.configure": ClientConnection._on_configure_reply,
    "mining.submit": ClientConnection._on_submit_reply,
}
