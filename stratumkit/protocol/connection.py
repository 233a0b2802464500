"""What both ends of a Stratum V1 connection share: the plumbing around the lines.

``ServerConnection`` (the pool's side of a miner) and ``ClientConnection`` (a miner's side of a
pool) differ in what a line means to them and in what they may send. The rest is written once,
in :class:`Connection`, which both subclass.

Rules:
- ``receive_data`` frames the bytes into lines (:class:`LineBuffer`) and hands each line to the
  role's ``_handle_line``, which returns exactly one event. ``b""`` ends the stream: one
  ``ConnectionClosed``, then nothing; bytes fed after it are a bug of ours
  (``LocalProtocolError``).
- Broken framing (an oversized line, binary data, a TLS handshake on the pool's plain port) fails
  the connection for good: the ``RemoteProtocolError`` carries the events of the lines before
  the damage, and every later ``receive_data`` raises again. Nothing can be sent on a failed or
  closed connection.
- The state is computed from what happened, not kept: ERROR once failed, CLOSED once the peer
  closed, otherwise CONNECTED, SUBSCRIBED or AUTHORIZED by what has been granted. Each role names
  the states with its own enum (``ServerState``, ``ClientState``).
- Our own requests get fresh integer ids counting from 1; each waits in ``_pending`` (id ->
  method) until the role's reply handling takes it out.
- Output is queued as complete lines and handed out, joined, by ``data_to_send``.
"""

from __future__ import annotations

import abc
import enum
from collections.abc import Sequence
from typing import Any, ClassVar, Final, Generic, TypeVar

from .errors import LineTooLong, LocalProtocolError, RemoteProtocolError, TlsOnPlainPort
from .events import ConnectionClosed, Event
from .framing import LineBuffer
from .jsonrpc import RequestId, dumps, encode_id, encode_str

__all__ = ["FALSE_TAIL", "OK_TAIL", "Connection", "clip", "error_tail", "reply_head", "result_tail"]

#: The first byte of a TLS record carrying a handshake (a ClientHello, on a stratum port).
_TLS_HANDSHAKE: Final = 0x16

# A reply line is reply_head(id) + a tail; the two boolean results are the common ones.
OK_TAIL: Final = b',"result":true,"error":null}\n'
FALSE_TAIL: Final = b',"result":false,"error":null}\n'


def reply_head(request_id: RequestId) -> bytes:
    """A reply line up to and including its id."""
    if type(request_id) is int:  # most ids: format the bytes directly, no str in between
        return b'{"id":%d' % request_id
    return b'{"id":' + encode_id(request_id).encode()


def result_tail(result: Any) -> bytes:
    """Everything after the id of a reply carrying ``result``."""
    if result is True:
        return OK_TAIL
    if result is False:
        return FALSE_TAIL
    try:
        body = dumps(result)
    except (TypeError, ValueError) as exc:
        raise LocalProtocolError(f"result is not JSON-serializable: {exc}") from None
    return f',"result":{body},"error":null}}\n'.encode()


def error_tail(code: int, message: str) -> bytes:
    """Everything after the id of an error reply: ``[code, message, null]``."""
    return f',"result":null,"error":[{code},{encode_str(message)},null]}}\n'.encode()


def clip(text: str, limit: int) -> str:
    """Peer-controlled text quoted in a message, cut after ``limit`` characters."""
    return text if len(text) <= limit else text[:limit] + "..."


_State = TypeVar("_State", bound=enum.Enum)


class Connection(abc.ABC, Generic[_State]):
    """One Stratum connection of either role; the roles subclass it and parse the lines."""

    #: Who is at the other end, as messages name it.
    _peer: ClassVar[str]
    #: The role's states, in the order CONNECTED, SUBSCRIBED, AUTHORIZED, CLOSED, ERROR.
    _states: tuple[_State, _State, _State, _State, _State]
    #: Fail at once when the first bytes are a TLS handshake: the pool's plain-text port, where a
    #: miner set up for TLS would otherwise wait for an answer that never comes.
    _refuses_tls: ClassVar[bool] = False

    def __init__(self, max_line_length: int) -> None:
        self._lines = LineBuffer(max_line_length)
        self._out: list[bytes] = []
        self._tls_unchecked = self._refuses_tls
        self._closed = False
        self._failed = False
        self._subscribed = False
        self._authorized = False  # at least one authorization granted
        self._pending: dict[int, str] = {}  # our request id -> method, until the reply
        self._next_id = 1

    @property
    def max_line_length(self) -> int:
        """The longest line accepted from the peer; raise it for peers trusted with more."""
        return self._lines.max_line_length

    @max_line_length.setter
    def max_line_length(self, value: int) -> None:
        self._lines.max_line_length = value

    @property
    def state(self) -> _State:
        """Where the conversation stands (see the role's module for what each state allows)."""
        connected, subscribed, authorized, closed, error = self._states
        if self._failed:
            return error
        if self._closed:
            return closed
        if not self._subscribed:
            return connected
        return authorized if self._authorized else subscribed

    # ----------------------------------------------------------------------------------------
    # Input

    def receive_data(self, data: bytes) -> list[Event]:
        """Feed bytes from the peer (``b""`` = end of stream); return the events they hold."""
        if self._failed:
            raise RemoteProtocolError("the connection already failed; close it")
        if self._closed:
            if data:
                raise LocalProtocolError(f"receive_data() after the {self._peer} closed the connection")
            return []
        if not data:
            self._closed = True
            return [ConnectionClosed()]
        if self._tls_unchecked:
            self._tls_unchecked = False
            if data[0] == _TLS_HANDSHAKE:
                self._failed = True
                raise TlsOnPlainPort("a TLS handshake arrived on a plain-text stratum port")
        too_long: LineTooLong | None = None
        try:
            lines: Sequence[bytes] = self._lines.feed(data)
        except LineTooLong as exc:
            # The complete lines before the long one still count: handle them, then fail.
            lines, too_long = exc.lines, exc
        events: list[Event] = []
        handle = self._handle_line
        for line in lines:
            try:
                events.append(handle(line))
            except RemoteProtocolError as exc:
                self._failed = True
                raise RemoteProtocolError(str(exc), events) from None
        if too_long is not None:
            self._failed = True
            raise RemoteProtocolError(str(too_long), events)
        return events

    @abc.abstractmethod
    def _handle_line(self, line: bytes) -> Event:
        """Exactly one event per line; raises only ``RemoteProtocolError`` (binary data)."""

    # ----------------------------------------------------------------------------------------
    # Output

    def _check_can_send(self) -> None:
        if self._failed:
            raise LocalProtocolError("the connection failed; nothing more can be sent")
        if self._closed:
            raise LocalProtocolError(f"the {self._peer} closed the connection; nothing more can be sent")

    def _request(self, method: str, params_json: str) -> int:
        """Queue a request of ours (``params_json`` already encoded); return its fresh id."""
        self._check_can_send()
        request_id = self._next_id
        self._next_id += 1
        self._pending[request_id] = method
        self._out.append(f'{{"id":{request_id},"method":{encode_str(method)},"params":{params_json}}}\n'.encode())
        return request_id

    def data_to_send(self) -> bytes:
        """Everything queued for the peer since the last call (possibly ``b""``)."""
        out = self._out
        if not out:
            return b""
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        return data
