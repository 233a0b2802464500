"""The two ways a Stratum conversation can go wrong, and the error codes miners understand.

Rules (the contract every parser in this package keeps):
- Feeding *any* bytes to ``receive_data`` either returns events or raises
  :class:`RemoteProtocolError`. Any other exception escaping from input handling is a bug.
- Everything we can get wrong ourselves (constructing an invalid event, answering a request that
  is not waiting for an answer, sending work before the miner subscribed) raises
  :class:`LocalProtocolError`.
- A *recoverable* peer mistake (bad JSON, unknown method, params of the wrong shape) is not an
  exception at all: the server answers it with an error reply and reports a ``BadRequest`` event.
  Only damage that leaves the byte stream unusable (an oversized line, binary data) raises.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import IntEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .events import Event

__all__ = [
    "ErrorCode",
    "LocalProtocolError",
    "ProtocolError",
    "RemoteProtocolError",
    "TlsOnPlainPort",
]


class ErrorCode(IntEnum):
    """Stratum V1 error codes, as sent in ``"error": [code, message, null]``.

    These are the codes the original pool implementation defined and every miner displays;
    there is no formal registry, so we keep to the six everybody knows.
    """

    OTHER = 20
    JOB_NOT_FOUND = 21  # stale share: the job is unknown or no longer valid
    DUPLICATE = 22
    LOW_DIFFICULTY = 23
    UNAUTHORIZED = 24
    NOT_SUBSCRIBED = 25

    @property
    def default_message(self) -> str:
        """The conventional message text, used when a reply gives none."""
        return _DEFAULT_MESSAGES[self]


_DEFAULT_MESSAGES = {
    ErrorCode.OTHER: "Other/Unknown",
    ErrorCode.JOB_NOT_FOUND: "Job not found",
    ErrorCode.DUPLICATE: "Duplicate share",
    ErrorCode.LOW_DIFFICULTY: "Low difficulty share",
    ErrorCode.UNAUTHORIZED: "Unauthorized worker",
    ErrorCode.NOT_SUBSCRIBED: "Not subscribed",
}


class ProtocolError(Exception):
    """Base of both error kinds; never raised itself (catch it to handle either)."""

    def __init__(self, message: str) -> None:
        if type(self) is ProtocolError:
            raise TypeError("ProtocolError is abstract: raise LocalProtocolError or RemoteProtocolError")
        super().__init__(message)


class LocalProtocolError(ProtocolError):
    """We misused the API: the peer did nothing wrong, the calling code has a bug."""


class RemoteProtocolError(ProtocolError):
    """The peer broke the protocol so badly that the connection has to be closed.

    ``events`` holds what complete, valid messages arrived in the same ``receive_data`` call
    before the damage (replies to them may already be queued), so that a share submitted just
    before a garbage line is not silently lost.
    """

    def __init__(self, message: str, events: Sequence[Event] = ()) -> None:
        super().__init__(message)
        self.events: tuple[Event, ...] = tuple(events)


class TlsOnPlainPort(RemoteProtocolError):
    """A TLS ClientHello on a plain-text port: the connection has to be closed, but the peer is
    probing, not misbehaving (bfgminer 5.x opens every connection with one and falls back to
    plain text on the next)."""


class LineTooLong(RemoteProtocolError):
    """Raised by the line framer; ``lines`` are the complete lines that preceded the long one."""

    def __init__(self, message: str, lines: Sequence[bytes] = ()) -> None:
        super().__init__(message)
        self.lines: tuple[bytes, ...] = tuple(lines)
