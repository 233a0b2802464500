"""The pool side of one Stratum V1 connection, as a sans-I/O state machine.

Bytes from the miner go into :meth:`ServerConnection.receive_data`, which returns events; the
application answers through ``respond*`` / ``send_*`` and ships :meth:`data_to_send` to the
socket. Replies the protocol can decide alone (bad JSON, unknown methods, shares sent too
early) are queued by the connection itself and reported as ``BadRequest`` events.

States (derived from what the *application* granted, not from what the miner asked):

==============  ===============================================================================
CONNECTED       nothing granted yet
SUBSCRIBED      a ``mining.subscribe`` was answered with a result
AUTHORIZED      subscribed, and at least one ``mining.authorize`` was answered ``true``
CLOSED          the miner closed its side (``receive_data(b"")``)
ERROR           the miner broke the framing (oversized line, binary data); close the socket
==============  ===============================================================================

What each request gets, by state (a notification never gets an answer: see below):

========================  ==========  ============  ============  =================
request                   CONNECTED   SUBSCRIBED    AUTHORIZED    how it is answered
========================  ==========  ============  ============  =================
mining.configure          event       event         event         application
mining.subscribe          event       event         event         application
mining.authorize          event       event         event         application
mining.suggest_difficulty event       event         event         application
mining.suggest_target     event       event         event         application
mining.extranonce.subscr. event       event         event         application
registered extensions     event       event         event         application
mining.submit             error 25    error 24 [1]  event         application
anything else             error 20    error 20      error 20      automatic
========================  ==========  ============  ============  =================

[1] Unless a ``mining.authorize`` is still waiting for its answer: miners such as the bitaxe
    do not wait for that answer before mining, so a share may overtake it. The ``Submit`` is
    then reported after the ``Authorize`` event, and the application (which answers in order)
    has already decided the authorization when it sees the share.

Notifications (``"id": null``, or no ``"id"`` at all) are never answered, whatever the method:
a reply with a null id matches no request, and bfgminer, which sends ``mining.suggest_target``
that way before subscribing, takes the reply for the subscribe answer and reconnects. The table
still decides the event: a known method gives its event (``Submit`` included), with nothing
waiting for an answer; what would be an error reply is a ``ProtocolViolation`` instead.
``respond*`` with the id None queues nothing and changes no state (the miner never learns of
the answer), so the application can answer every event alike.

Decisions:
- Authorize before subscribe is allowed (several firmwares pipeline their handshake); the
  grant is remembered and the connection becomes AUTHORIZED as soon as the subscribe is
  answered. ``mining.configure`` is accepted at any time (BIP310 wants it first, some miners
  send it later or again).
- Malformed JSON (duplicate keys included), a non-object, a bad id, a missing or unknown
  method, or params of the wrong shape: error 20 with a message saying what was wrong; the
  connection goes on. Lines whose id is unreadable are answered with a null id.
- Request ids may be int or str and are echoed exactly (null makes a notification). Miners reuse
  ids (cpuminer sends every share as id 4), so replies to one id are matched first-in,
  first-out.
- A reply from the miner to a request we never sent gets no answer (no reply loops): it is
  reported as ``ProtocolViolation``.
- Work-related sends are refused (``LocalProtocolError``) when the miner could not use them:
  ``mining.notify`` before the subscription, ``mining.set_extranonce`` to a miner that did not
  subscribe to it, ``mining.set_version_mask`` before version rolling was negotiated.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

from .connection import Connection, clip, error_tail, reply_head, result_tail
from .errors import ErrorCode, LocalProtocolError
from .events import (
    MINIMUM_DIFFICULTY,
    SUBSCRIBE_EXTRANONCE,
    VERSION_ROLLING,
    Authorize,
    BadRequest,
    Configure,
    ErrorReply,
    Event,
    ExtensionRequest,
    ExtranonceSubscribe,
    Notify,
    ProtocolViolation,
    Response,
    Submit,
    Subscribe,
    SuggestDifficulty,
    SuggestTarget,
    _check_hex,
    _check_mask,
    _check_size,
    _json_params,
    _trusted,
    parse_mask,
    parse_target,
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

__all__ = ["ServerConnection", "ServerState"]


class ServerState(enum.Enum):
    CONNECTED = "connected"
    SUBSCRIBED = "subscribed"
    AUTHORIZED = "authorized"
    CLOSED = "closed"
    ERROR = "error"


#: extranonce2 sizes every common miner accepts (cgminer and cpuminer-opt refuse < 2 or > 16).
EXTRANONCE2_SIZES: Final = range(2, 17)

_SUBMIT_SHAPE: Final = (
    "mining.submit takes 5 or 6 string params: [worker, job_id, extranonce2, ntime, nonce, version_bits?]"
)
#: How much of a peer-controlled string an error message quotes.
_QUOTE_LIMIT: Final = 64

# The six standard error replies with their conventional messages, precomputed.
_ERROR_TAILS: Final = {int(code): error_tail(int(code), code.default_message) for code in ErrorCode}


class ServerConnection(Connection[ServerState]):
    """One miner's connection, pool side.

    ``extension_methods`` are extra request methods (e.g. ``"stratumkit.rig.register"``)
    reported as ``ExtensionRequest`` instead of being refused as unknown.
    """

    _peer = "miner"
    _states = (
        ServerState.CONNECTED,
        ServerState.SUBSCRIBED,
        ServerState.AUTHORIZED,
        ServerState.CLOSED,
        ServerState.ERROR,
    )
    _refuses_tls = True

    def __init__(
        self,
        *,
        extension_methods: Iterable[str] = (),
        max_line_length: int = DEFAULT_MAX_LINE_LENGTH,
    ) -> None:
        super().__init__(max_line_length)
        self._extension_methods = frozenset(extension_methods)
        self._workers: set[str] = set()  # usernames granted by mining.authorize
        self._authorizing = 0  # mining.authorize requests not answered yet
        # Miner requests waiting for our answer: the oldest per id, then any later ones that
        # reuse the same id (cpuminer sends every share as id 4), in arrival order.
        self._awaiting: dict[RequestId, Event] = {}
        self._awaiting_more: dict[RequestId, deque[Event]] = {}
        self._extranonce1: str | None = None
        self._extranonce2_size: int | None = None
        self._version_rolling_mask: int | None = None
        self._extranonce_subscribed = False
        self._user_agent: str | None = None

    # ----------------------------------------------------------------------------------------
    # State (``state`` and ``max_line_length`` come from Connection)

    @property
    def extranonce1(self) -> str | None:
        """From the answer to mining.subscribe, or the last send_set_extranonce."""
        return self._extranonce1

    @property
    def extranonce2_size(self) -> int | None:
        return self._extranonce2_size

    @property
    def version_rolling_mask(self) -> int | None:
        """The version-rolling mask in force (None: not negotiated)."""
        return self._version_rolling_mask

    @property
    def extranonce_subscribed(self) -> bool:
        """True once the miner's opt-in to mining.set_extranonce was answered true."""
        return self._extranonce_subscribed

    @property
    def user_agent(self) -> str | None:
        """What the miner called itself in the granted mining.subscribe."""
        return self._user_agent

    @property
    def authorized_workers(self) -> frozenset[str]:
        """Usernames whose mining.authorize was answered ``true``."""
        return frozenset(self._workers)

    @property
    def awaiting_reply(self) -> int:
        """How many miner requests still wait for the application's answer."""
        return len(self._awaiting) + sum(len(more) for more in self._awaiting_more.values())

    # ----------------------------------------------------------------------------------------
    # Input (``receive_data`` comes from Connection)

    def _handle_line(self, line: bytes) -> Event:
        try:
            message = decode_line(line)
        except MalformedJSON as exc:
            return self._refuse_line(None, str(exc))
        if type(message) is not dict:
            return self._refuse_line(None, "a request must be a JSON object")
        ident = message.get("id")
        method = message.get("method")
        if method is None:
            if "result" in message or "error" in message:
                return self._handle_reply(ident, message)
            if not is_request_id(ident):
                return self._refuse_line(None, 'missing "method"')
            return self._bad(ident, None, ErrorCode.OTHER, 'missing "method"')
        if not is_request_id(ident):
            return self._refuse_line(
                method if type(method) is str else None, '"id" must be an integer, a string or null'
            )
        if type(method) is not str:
            return self._bad(ident, None, ErrorCode.OTHER, '"method" must be a string')
        handler = _HANDLERS.get(method)
        if handler is not None:
            return handler(self, ident, message.get("params"))
        if method in self._extension_methods:
            params = message.get("params", [])
            event = _trusted(ExtensionRequest, {"id": ident, "method": method, "params": params})
            self._await(ident, event)
            return event
        return self._bad(ident, method, ErrorCode.OTHER, f"unknown method {clip(method, _QUOTE_LIMIT)!r}")

    def _bad(self, ident: RequestId, method: str | None, code: ErrorCode, message: str) -> Event:
        """Refuse a request: error reply + ``BadRequest``; a notification only gets reported."""
        if ident is None:
            what = "a notification" if method is None else clip(method, _QUOTE_LIMIT)
            return _trusted(ProtocolViolation, {"message": f"{what} (id null, not answered): {message}"})
        self._out.append(reply_head(ident) + error_tail(int(code), message))
        return _trusted(BadRequest, {"id": ident, "method": method, "code": code, "message": message})

    def _refuse_line(self, method: str | None, message: str) -> BadRequest:
        """A line whose id cannot be read (bad JSON, not an object, a bad id): the error goes out
        with a null id, as JSON-RPC wants; such a line was not a notification."""
        self._out.append(reply_head(None) + error_tail(int(ErrorCode.OTHER), message))
        return _trusted(BadRequest, {"id": None, "method": method, "code": ErrorCode.OTHER, "message": message})

    def _await(self, ident: RequestId, event: Event) -> None:
        if ident is None:
            return  # a notification: no answer will be sent, none is waited for
        if ident in self._awaiting:
            self._awaiting_more.setdefault(ident, deque()).append(event)
        else:
            self._awaiting[ident] = event

    # Request handlers: (self, id, raw params) -> event. Each either returns a request event
    # (now awaiting the application's answer) or a BadRequest it has already answered.

    def _on_submit(self, ident: RequestId, params: Any) -> Event:
        if not self._subscribed:
            return self._bad(ident, "mining.submit", ErrorCode.NOT_SUBSCRIBED, "Not subscribed")
        if not self._authorized and not self._authorizing:
            return self._bad(ident, "mining.submit", ErrorCode.UNAUTHORIZED, "Unauthorized worker")
        if type(params) is list:
            count = len(params)
            if count == 5:
                worker, job_id, extranonce2, ntime, nonce = params
                version_bits = None
            elif count == 6:
                worker, job_id, extranonce2, ntime, nonce, version_bits = params
            else:
                return self._bad(ident, "mining.submit", ErrorCode.OTHER, _SUBMIT_SHAPE)
            if (
                type(worker) is str
                and type(job_id) is str
                and type(extranonce2) is str
                and type(ntime) is str
                and type(nonce) is str
                and (version_bits is None or type(version_bits) is str)
            ):
                event = _trusted(
                    Submit,
                    {
                        "id": ident,
                        "worker": worker,
                        "job_id": job_id,
                        "extranonce2": extranonce2,
                        "ntime": ntime,
                        "nonce": nonce,
                        "version_bits": version_bits,
                    },
                )
                if ident in self._awaiting:
                    self._awaiting_more.setdefault(ident, deque()).append(event)
                elif ident is not None:
                    self._awaiting[ident] = event
                return event
        return self._bad(ident, "mining.submit", ErrorCode.OTHER, _SUBMIT_SHAPE)

    def _on_subscribe(self, ident: RequestId, params: Any) -> Event:
        if params is None:
            params = []
        if type(params) is not list:
            return self._bad(ident, "mining.subscribe", ErrorCode.OTHER, "mining.subscribe params must be a list")
        user_agent = params[0] if params else ""
        if user_agent is None:
            user_agent = ""
        if type(user_agent) is not str:
            return self._bad(
                ident,
                "mining.subscribe",
                ErrorCode.OTHER,
                "mining.subscribe: the user agent (param 1) must be a string",
            )
        # The session to resume; anything but a string is treated as "none" (some firmwares
        # send null or a number there), and extra params (host, port) are ignored.
        session_id = params[1] if len(params) > 1 and type(params[1]) is str else None
        event = _trusted(Subscribe, {"id": ident, "user_agent": user_agent, "session_id": session_id})
        self._await(ident, event)
        return event

    def _on_authorize(self, ident: RequestId, params: Any) -> Event:
        if type(params) is list and params and type(params[0]) is str:
            password = params[1] if len(params) > 1 else None
            if password is None or type(password) is str:
                event = _trusted(Authorize, {"id": ident, "username": params[0], "password": password})
                if ident is not None:  # a notification's grant never reaches the miner
                    self._authorizing += 1
                    self._await(ident, event)
                return event
        return self._bad(
            ident,
            "mining.authorize",
            ErrorCode.OTHER,
            "mining.authorize takes [username, password?] as strings",
        )

    def _on_configure(self, ident: RequestId, params: Any) -> Event:
        if type(params) is list and params and type(params[0]) is list:
            extension_params = params[1] if len(params) > 1 else {}
            if type(extension_params) is dict:
                try:
                    event = Configure(ident, tuple(params[0]), extension_params)
                except LocalProtocolError as exc:
                    return self._bad(ident, "mining.configure", ErrorCode.OTHER, f"mining.configure: {exc}")
                self._await(ident, event)
                return event
        return self._bad(
            ident,
            "mining.configure",
            ErrorCode.OTHER,
            "mining.configure takes [[extension, ...], {parameter: value, ...}]",
        )

    def _on_suggest_difficulty(self, ident: RequestId, params: Any) -> Event:
        if type(params) is list and params:
            difficulty = as_difficulty(params[0])
            if difficulty is not None:
                event = _trusted(SuggestDifficulty, {"id": ident, "difficulty": difficulty})
                self._await(ident, event)
                return event
        return self._bad(
            ident,
            "mining.suggest_difficulty",
            ErrorCode.OTHER,
            "mining.suggest_difficulty takes [difficulty] as a positive number",
        )

    def _on_suggest_target(self, ident: RequestId, params: Any) -> Event:
        if type(params) is list and params:
            target = parse_target(params[0])
            if target is not None:
                event = _trusted(SuggestTarget, {"id": ident, "target": target})
                self._await(ident, event)
                return event
        return self._bad(
            ident,
            "mining.suggest_target",
            ErrorCode.OTHER,
            "mining.suggest_target takes [target] as 64 hex digits, big-endian, not zero",
        )

    def _on_extranonce_subscribe(self, ident: RequestId, params: Any) -> Event:
        event = _trusted(ExtranonceSubscribe, {"id": ident})
        self._await(ident, event)
        return event

    def _handle_reply(self, ident: Any, message: dict[str, Any]) -> Event:
        method = self._pending.pop(ident, None) if type(ident) is int else None
        if method is None:
            return _trusted(
                ProtocolViolation,
                {"message": f"a reply with id {clip(dumps(ident), _QUOTE_LIMIT)!r} answers no request we sent"},
            )
        error = message.get("error")
        if error is not None:
            code, text = error_fields(error)
            return _trusted(ErrorReply, {"id": ident, "method": method, "code": code, "message": text})
        return _trusted(Response, {"id": ident, "method": method, "result": message.get("result")})

    # ----------------------------------------------------------------------------------------
    # Answers to the miner's requests

    def respond(self, request_id: RequestId, result: Any) -> None:
        """Answer a request with a result (``True`` for an accepted share).

        Answers to subscribe, authorize, configure and extranonce.subscribe move the state
        (see the module table); a subscribe result must be ``[subscriptions, extranonce1,
        extranonce2_size]``. For the id None (a notification) nothing is sent or changed.
        """
        if request_id is None:
            self._check_can_send()
            result_tail(result)  # an unserializable result is still our bug
            return
        event = self._peek(request_id)
        reply = reply_head(request_id) + result_tail(result)
        if type(event) is not Submit:
            self._apply_result(event, result)  # may refuse the answer: before anything changes
        self._pop(request_id)
        self._out.append(reply)

    def respond_error(self, request_id: RequestId, code: int, message: str | None = None) -> None:
        """Answer a request with ``[code, message, null]`` (message defaults by code); nothing
        for the id None."""
        if type(code) is bool or not isinstance(code, int):
            raise LocalProtocolError(f"an error code must be an int, not {type(code).__name__}")
        if message is not None and type(message) is not str:
            raise LocalProtocolError(f"an error message must be a str, not {type(message).__name__}")
        if request_id is None:
            self._check_can_send()
            return
        event = self._peek(request_id)
        self._pop(request_id)
        if type(event) is Authorize:
            self._authorizing -= 1
        tail = _ERROR_TAILS.get(code) if message is None else None
        if tail is None:
            tail = error_tail(int(code), ErrorCode.OTHER.default_message if message is None else message)
        self._out.append(reply_head(request_id) + tail)

    def respond_subscribe(
        self,
        request_id: RequestId,
        extranonce1: str,
        extranonce2_size: int,
        subscription_id: str | None = None,
    ) -> None:
        """Grant a subscription: ``[[["mining.set_difficulty", sid], ["mining.notify", sid]],
        extranonce1, extranonce2_size]``. ``subscription_id`` (what miners echo back to resume
        the session) defaults to ``extranonce1``."""
        sid = extranonce1 if subscription_id is None else subscription_id
        if type(sid) is not str:
            raise LocalProtocolError(f"subscription_id must be a str, not {type(sid).__name__}")
        result = [
            [["mining.set_difficulty", sid], ["mining.notify", sid]],
            extranonce1,
            extranonce2_size,
        ]
        if request_id is not None and type(self._peek(request_id)) is not Subscribe:
            raise LocalProtocolError(f"request {request_id!r} is not a mining.subscribe")
        self.respond(request_id, result)

    def respond_configure(
        self,
        request_id: RequestId,
        *,
        version_rolling_mask: int | None = None,
        minimum_difficulty: bool = False,
        subscribe_extranonce: bool = False,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        """Answer a ``mining.configure`` per BIP310, one entry per extension the miner listed.

        ``version_rolling_mask`` is the pool's allowed mask (None refuses version rolling);
        the miner gets its intersection with the mask it offered. Unknown extensions are
        answered ``false``; ``extra`` adds entries verbatim. Nothing for the id None.
        """
        if request_id is None:
            self._check_can_send()
            return
        event = self._peek(request_id)
        if type(event) is not Configure:
            raise LocalProtocolError(f"request {request_id!r} is not a mining.configure")
        assert isinstance(event, Configure)
        result: dict[str, Any] = {}
        for code in event.extensions:
            if code == VERSION_ROLLING:
                miner_mask = event.version_rolling_mask
                if version_rolling_mask is None or miner_mask is None:
                    result[VERSION_ROLLING] = False
                else:
                    _check_mask("version_rolling_mask", version_rolling_mask)
                    result[VERSION_ROLLING] = True
                    result["version-rolling.mask"] = f"{version_rolling_mask & miner_mask:08x}"
            elif code == MINIMUM_DIFFICULTY:
                result[MINIMUM_DIFFICULTY] = bool(minimum_difficulty)
            elif code == SUBSCRIBE_EXTRANONCE:
                result[SUBSCRIBE_EXTRANONCE] = bool(subscribe_extranonce)
            else:
                result[code] = False
        if extra:
            result.update(extra)
        self.respond(request_id, result)

    def _peek(self, request_id: RequestId) -> Event:
        self._check_can_send()
        if not is_request_id(request_id):
            raise LocalProtocolError(f"a request id must be an int, a str or None, not {type(request_id).__name__}")
        event = self._awaiting.get(request_id)
        if event is None:
            raise LocalProtocolError(f"no request with id {request_id!r} is waiting for an answer")
        return event

    def _pop(self, request_id: RequestId) -> None:
        more = self._awaiting_more.get(request_id)
        if more:
            self._awaiting[request_id] = more.popleft()
            if not more:
                del self._awaiting_more[request_id]
        else:
            del self._awaiting[request_id]

    def _apply_result(self, event: Event, result: Any) -> None:
        """State changes a successful answer makes; validates before anything changes."""
        kind = type(event)
        if kind is Subscribe:
            if type(result) is not list or len(result) != 3 or type(result[0]) is not list:
                raise LocalProtocolError("a subscribe result must be [subscriptions, extranonce1, extranonce2_size]")
            extranonce1, size = result[1], result[2]
            _check_hex("extranonce1", extranonce1)
            if not extranonce1:
                raise LocalProtocolError("extranonce1 must not be empty")
            _check_size("extranonce2_size", size, EXTRANONCE2_SIZES[0], EXTRANONCE2_SIZES[-1])
            self._subscribed = True
            self._extranonce1, self._extranonce2_size = extranonce1, size
            assert isinstance(event, Subscribe)
            self._user_agent = event.user_agent
        elif kind is Authorize:
            self._authorizing -= 1
            if result is True:
                assert isinstance(event, Authorize)
                self._workers.add(event.username)
                self._authorized = True
        elif kind is Configure:
            if isinstance(result, Mapping) and result.get(VERSION_ROLLING) is True:
                self._version_rolling_mask = parse_mask("version-rolling.mask", result.get("version-rolling.mask"))
            if isinstance(result, Mapping) and result.get(SUBSCRIBE_EXTRANONCE) is True:
                self._extranonce_subscribed = True
        elif kind is ExtranonceSubscribe:
            if result is True:
                self._extranonce_subscribed = True

    # ----------------------------------------------------------------------------------------
    # Messages the pool starts

    def send_set_difficulty(self, difficulty: float) -> None:
        """``mining.set_difficulty``; integral values go out as integers (1024, not 1024.0)."""
        self._check_can_send()
        value = as_difficulty(difficulty)
        if value is None:
            raise LocalProtocolError(f"difficulty must be a positive finite number, got {difficulty!r}")
        self._out.append(
            f'{{"id":null,"method":"mining.set_difficulty","params":[{encode_difficulty(value)}]}}\n'.encode()
        )

    def send_notify(self, notify: Notify) -> None:
        """Send a job. ``Notify`` caches its line: build it once, send it to every miner."""
        self._check_can_send()
        if type(notify) is not Notify:
            raise LocalProtocolError(f"send_notify() takes a Notify, not {type(notify).__name__}")
        if not self._subscribed:
            raise LocalProtocolError("mining.notify before the miner's subscription was granted")
        self._out.append(notify.wire)

    def send_set_extranonce(self, extranonce1: str, extranonce2_size: int) -> None:
        """``mining.set_extranonce`` (only to miners that subscribed to it)."""
        self._check_can_send()
        if not self.extranonce_subscribed:
            raise LocalProtocolError(
                "mining.set_extranonce to a miner that did not subscribe to it: it would ignore it"
            )
        _check_hex("extranonce1", extranonce1)
        if not extranonce1:
            raise LocalProtocolError("extranonce1 must not be empty")
        _check_size("extranonce2_size", extranonce2_size, EXTRANONCE2_SIZES[0], EXTRANONCE2_SIZES[-1])
        self._extranonce1, self._extranonce2_size = extranonce1, extranonce2_size
        self._out.append(
            f'{{"id":null,"method":"mining.set_extranonce","params":["{extranonce1}",{extranonce2_size}]}}\n'.encode()
        )

    def send_set_version_mask(self, mask: int) -> None:
        """``mining.set_version_mask`` (BIP310): valid at once, only after negotiation."""
        self._check_can_send()
        _check_mask("mask", mask)
        if self.version_rolling_mask is None:
            raise LocalProtocolError("mining.set_version_mask before version rolling was negotiated")
        self._version_rolling_mask = mask
        self._out.append(f'{{"id":null,"method":"mining.set_version_mask","params":["{mask:08x}"]}}\n'.encode())

    def send_reconnect(self, host: str | None = None, port: int | None = None, wait: float | None = None) -> None:
        """``client.reconnect``: params ``[host, port, wait]``, trailing unknowns left out."""
        self._check_can_send()
        if host is None and (port is not None or wait is not None):
            raise LocalProtocolError("client.reconnect needs a host when it gives a port or wait")
        if port is None and wait is not None:
            raise LocalProtocolError("client.reconnect needs a port when it gives a wait")
        if host is not None and (type(host) is not str or not host):
            raise LocalProtocolError(f"host must be a non-empty str, got {host!r}")
        if port is not None:
            _check_size("port", port, 1, 65535)
        if wait is not None and (
            type(wait) is bool or not isinstance(wait, int | float) or not 0 <= wait < float("inf")
        ):
            raise LocalProtocolError(f"wait must be a finite number of seconds >= 0, got {wait!r}")
        params = [value for value in (host, port, wait) if value is not None]
        self._notification("client.reconnect", dumps(params))

    def send_show_message(self, message: str) -> None:
        """``client.show_message``: text for the miner's operator."""
        self._check_can_send()
        if type(message) is not str:
            raise LocalProtocolError(f"message must be a str, not {type(message).__name__}")
        self._notification("client.show_message", f"[{encode_str(message)}]")

    def send_get_version(self) -> int:
        """Ask the miner for its version; the answer comes back as a ``Response`` event."""
        return self.send_request("client.get_version", [])

    def send_request(self, method: str, params: Any) -> int:
        """Send a request of ours (an extension, ``client.get_version``); return its id."""
        self._check_can_send()
        if type(method) is not str or not method:
            raise LocalProtocolError(f"method must be a non-empty str, got {method!r}")
        return self._request(method, _json_params(params))

    def send_notification(self, method: str, params: Any) -> None:
        """Send a notification (``"id": null``), e.g. a ``stratumkit.*`` extension message."""
        self._check_can_send()
        if type(method) is not str or not method:
            raise LocalProtocolError(f"method must be a non-empty str, got {method!r}")
        self._notification(method, _json_params(params))

    def _notification(self, method: str, params_json: str) -> None:
        self._out.append(f'{{"id":null,"method":{encode_str(method)},"params":{params_json}}}\n'.encode())


_Handler = Callable[[ServerConnection, RequestId, Any], Event]
_HANDLERS: Final[dict[str, _Handler]] = {
    "mining.submit": ServerConnection._on_submit,
    "mining.subscribe": ServerConnection._on_subscribe,
    "mining.authorize": ServerConnection._on_authorize,
    "mining.configure": ServerConnection._on_configure,
    "mining.suggest_difficulty": ServerConnection._on_suggest_difficulty,
    "mining.suggest_target": ServerConnection._on_suggest_target,
    "mining.extranonce.subscribe": ServerConnection._on_extranonce_subscribe,
}
