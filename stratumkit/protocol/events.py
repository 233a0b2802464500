"""Events: what the protocol objects report, one frozen dataclass per Stratum message.

Rules:
- Every event is a frozen dataclass whose constructor validates its fields and raises
  :class:`LocalProtocolError` for bad values: building an invalid event is a bug in our code.
- The parsers build events from wire data they have already checked through ``_trusted``,
  which skips the second round of checks (the hot path: one ``Submit`` per share).
- Hex fields stay ``str`` exactly as they travel. ``Submit`` is shape-checked only: the widths
  of extranonce2 / ntime / nonce depend on the session and are the share validator's job.
- Secrets (the authorize password) stay out of ``repr``.

Which side sees what:

========================  ==========================================================
received by the server    Subscribe, Authorize, Configure, SuggestDifficulty, SuggestTarget,
                          ExtranonceSubscribe, Submit, ExtensionRequest,
                          Response / ErrorReply (to client.get_version and friends),
                          BadRequest (already answered), ProtocolViolation, ConnectionClosed
received by the client    SubscribeResult, AuthorizeResult, ConfigureResult, SubmitResult,
                          Response / ErrorReply, SetDifficulty, Notify, SetExtranonce,
                          SetVersionMask, Reconnect, ShowMessage, GetVersion,
                          ExtensionNotification, ProtocolViolation, ConnectionClosed
========================  ==========================================================
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType
from typing import Any, Final, NoReturn, TypeVar

from .errors import ErrorCode, LocalProtocolError
from .jsonrpc import RequestId, as_difficulty, dumps, encode_str, is_request_id

__all__ = [
    "Authorize",
    "AuthorizeResult",
    "BadRequest",
    "Configure",
    "ConfigureResult",
    "ConnectionClosed",
    "ErrorReply",
    "Event",
    "ExtensionNotification",
    "ExtensionRequest",
    "ExtranonceSubscribe",
    "GetVersion",
    "Notify",
    "ProtocolViolation",
    "Reconnect",
    "Response",
    "SetDifficulty",
    "SetExtranonce",
    "SetVersionMask",
    "ShowMessage",
    "Submit",
    "SubmitResult",
    "Subscribe",
    "SubscribeResult",
    "SuggestDifficulty",
    "SuggestTarget",
]

VERSION_ROLLING: Final = "version-rolling"
MINIMUM_DIFFICULTY: Final = "minimum-difficulty"
SUBSCRIBE_EXTRANONCE: Final = "subscribe-extranonce"
#: BIP310: a miner that sends no mask can roll every bit.
FULL_VERSION_MASK: Final = 0xFFFFFFFF
#: The largest share target: 256 bits (a 64-hex-digit ``mining.suggest_target``).
MAX_TARGET: Final = 2**256 - 1

_ERROR_CODES: Final = frozenset(int(code) for code in ErrorCode)
_HEX: Final = re.compile(r"[0-9a-fA-F]*")
_E = TypeVar("_E", bound="Event")


def _fail(message: str) -> NoReturn:
    raise LocalProtocolError(message)


def _check_id(value: object) -> None:
    if not is_request_id(value):
        _fail(f"a request id must be an int, a str or None, not {type(value).__name__}")


def _check_str(name: str, value: object, *, empty: bool = True) -> None:
    if type(value) is not str:
        _fail(f"{name} must be a str, not {type(value).__name__}")
    if not empty and not value:
        _fail(f"{name} must not be empty")


def _check_optional_str(name: str, value: object) -> None:
    if value is not None:
        _check_str(name, value)


def _check_hex(name: str, value: object, width: int | None = None) -> None:
    """``width`` in hex digits; without one, any even number of digits."""
    _check_str(name, value)
    assert isinstance(value, str)
    if width is not None and len(value) != width:
        _fail(f"{name} must be {width} hex digits, got {len(value)}: {value[:80]!r}")
    if len(value) % 2 or not _HEX.fullmatch(value):
        _fail(f"{name} must be an even number of hex digits, got {value[:80]!r}")


def _check_bool(name: str, value: object) -> None:
    if type(value) is not bool:
        _fail(f"{name} must be a bool, not {type(value).__name__}")


def _check_size(name: str, value: object, low: int, high: int) -> None:
    if type(value) is not int or not low <= value <= high:
        _fail(f"{name} must be an int from {low} to {high}, got {value!r}")


def _check_mask(name: str, value: object) -> None:
    if type(value) is not int or not 0 <= value <= FULL_VERSION_MASK:
        _fail(f"{name} must be an int from 0 to 0xffffffff, got {value!r}")


def _check_difficulty(value: object) -> float:
    number = as_difficulty(value)
    if number is None:
        _fail(f"difficulty must be a positive finite number, got {value!r}")
    return number


def _check_target(value: object) -> None:
    if type(value) is not int or not 0 < value <= MAX_TARGET:
        _fail(f"target must be an int from 1 to 2**256-1, got {value!r}")


def parse_target(value: object) -> int | None:
    """A ``mining.suggest_target`` param (64 hex digits, big-endian) as an int; None if it is
    not one, or is zero (no hash meets a zero target)."""
    if type(value) is not str or len(value) != 64 or not _HEX.fullmatch(value):
        return None
    return int(value, 16) or None


def parse_mask(name: str, value: object) -> int:
    """A BIP310 ``TMask``: hex text encoding a uint32. Exactly 8 digits per BIP310; 1-8 are
    accepted because some firmwares format the mask with a bare ``%x``."""
    if type(value) is not str or not 1 <= len(value) <= 8 or not _HEX.fullmatch(value):
        _fail(f"{name} must be up to 8 hex digits, got {value!r}")
    return int(value, 16)


def _trusted(cls: type[_E], fields: dict[str, Any]) -> _E:
    """Build an event from values a parser has already validated (no second check)."""
    event = object.__new__(cls)
    object.__setattr__(event, "__dict__", fields)
    return event


@dataclass(frozen=True)
class Event:
    """Base class of everything ``receive_data`` returns."""


# --------------------------------------------------------------------------------------------
# Received by the server (sent by miners)


@dataclass(frozen=True)
class Subscribe(Event):
    """``mining.subscribe``: the miner asks for work and its extranonce.

    ``session_id`` is the id from an earlier subscription the miner wants to resume.
    """

    id: RequestId
    user_agent: str = ""
    session_id: str | None = None

    def __post_init__(self) -> None:
        _check_id(self.id)
        _check_str("user_agent", self.user_agent)
        _check_optional_str("session_id", self.session_id)


@dataclass(frozen=True)
class Authorize(Event):
    """``mining.authorize``: a worker logs in. The password never appears in ``repr``."""

    id: RequestId
    username: str
    password: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        _check_id(self.id)
        _check_str("username", self.username)
        _check_optional_str("password", self.password)


@dataclass(frozen=True)
class Configure(Event):
    """``mining.configure`` (BIP310): the miner lists extensions and their parameters.

    The typed properties read the parameters of the extensions this library knows; every
    other code stays available in ``extensions`` / ``params``.
    """

    id: RequestId
    extensions: tuple[str, ...]
    params: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        _check_id(self.id)
        if isinstance(self.extensions, str) or not isinstance(self.extensions, Sequence):
            _fail("extensions must be a sequence of str")
        extensions = tuple(self.extensions)
        for code in extensions:
            _check_str("an extension code", code, empty=False)
        if not isinstance(self.params, Mapping):
            _fail(f"params must be a mapping, not {type(self.params).__name__}")
        params = MappingProxyType(dict(self.params))
        for key in params:
            _check_str("a parameter name", key)
        object.__setattr__(self, "extensions", extensions)
        object.__setattr__(self, "params", params)
        # Parse now so that a bad parameter fails construction, not a later property access.
        object.__setattr__(self, "_parsed", _parse_configure(extensions, params))

    @property
    def version_rolling_mask(self) -> int | None:
        """The mask the miner can roll (``0xffffffff`` if it sent none), or None if it did not
        ask for version rolling."""
        mask: int | None = self._parsed[0]  # type: ignore[attr-defined]
        return mask

    @property
    def version_rolling_min_bit_count(self) -> int | None:
        count: int | None = self._parsed[1]  # type: ignore[attr-defined]
        return count

    @property
    def minimum_difficulty(self) -> float | None:
        """The requested floor (0 disables it), or None if the extension was not requested."""
        value: float | None = self._parsed[2]  # type: ignore[attr-defined]
        return value

    @property
    def subscribe_extranonce(self) -> bool:
        return SUBSCRIBE_EXTRANONCE in self.extensions


def _parse_configure(
    extensions: tuple[str, ...], params: Mapping[str, Any]
) -> tuple[int | None, int | None, float | None]:
    mask = min_bits = minimum = None
    if VERSION_ROLLING in extensions:
        raw_mask = params.get("version-rolling.mask")
        mask = FULL_VERSION_MASK if raw_mask is None else parse_mask("version-rolling.mask", raw_mask)
        raw_bits = params.get("version-rolling.min-bit-count")
        if raw_bits is not None:
            # BIP310 types it as TMask (hex text) while every example sends an integer.
            if type(raw_bits) is str:
                raw_bits = parse_mask("version-rolling.min-bit-count", raw_bits)
            _check_size("version-rolling.min-bit-count", raw_bits, 0, 32)
            min_bits = raw_bits
    if MINIMUM_DIFFICULTY in extensions:
        raw_minimum = params.get("minimum-difficulty.value")
        if raw_minimum is not None:
            if raw_minimum == 0 and type(raw_minimum) is not bool:
                minimum = 0.0
            else:
                minimum = as_difficulty(raw_minimum)
                if minimum is None:
                    _fail(f"minimum-difficulty.value must be a number >= 0, got {raw_minimum!r}")
    return mask, min_bits, minimum


@dataclass(frozen=True)
class SuggestDifficulty(Event):
    """``mining.suggest_difficulty``: the miner's wish for its share difficulty."""

    id: RequestId
    difficulty: float

    def __post_init__(self) -> None:
        _check_id(self.id)
        object.__setattr__(self, "difficulty", _check_difficulty(self.difficulty))


@dataclass(frozen=True)
class SuggestTarget(Event):
    """``mining.suggest_target``: the miner's wish as a share target (bfgminer sends it before
    subscribing, as a notification). The wire form is 64 hex digits, big-endian."""

    id: RequestId
    target: int

    def __post_init__(self) -> None:
        _check_id(self.id)
        _check_target(self.target)


@dataclass(frozen=True)
class ExtranonceSubscribe(Event):
    """``mining.extranonce.subscribe``: the miner can follow ``mining.set_extranonce``."""

    id: RequestId

    def __post_init__(self) -> None:
        _check_id(self.id)


@dataclass(frozen=True)
class Submit(Event):
    """``mining.submit``: a share. All fields are the strings the miner sent.

    ``version_bits`` is the BIP310 sixth parameter (None when the miner sent five).
    """

    id: RequestId
    worker: str
    job_id: str
    extranonce2: str
    ntime: str
    nonce: str
    version_bits: str | None = None

    def __post_init__(self) -> None:
        _check_id(self.id)
        for name in ("worker", "job_id", "extranonce2", "ntime", "nonce"):
            _check_str(name, getattr(self, name))
        _check_optional_str("version_bits", self.version_bits)


@dataclass(frozen=True)
class ExtensionRequest(Event):
    """A request for a method the server registered as an extension (``params`` as sent)."""

    id: RequestId
    method: str
    params: Any = field(default=(), hash=False)

    def __post_init__(self) -> None:
        _check_id(self.id)
        _check_str("method", self.method, empty=False)


@dataclass(frozen=True)
class BadRequest(Event):
    """A request the server could not accept; the error reply is already queued.

    Reported so the application can count or log it; nothing needs to be sent.
    """

    id: RequestId
    method: str | None
    code: ErrorCode
    message: str

    def __post_init__(self) -> None:
        _check_id(self.id)
        _check_optional_str("method", self.method)
        if not isinstance(self.code, int) or self.code not in _ERROR_CODES:
            _fail(f"code must be one of {sorted(_ERROR_CODES)}, got {self.code!r}")
        object.__setattr__(self, "code", ErrorCode(self.code))
        _check_str("message", self.message)


# --------------------------------------------------------------------------------------------
# Replies to requests we sent (both sides)


@dataclass(frozen=True)
class Response(Event):
    """A successful reply to a request this side sent (``method`` names that request)."""

    id: RequestId
    method: str
    result: Any = field(default=None, hash=False)

    def __post_init__(self) -> None:
        _check_id(self.id)
        _check_str("method", self.method)


@dataclass(frozen=True)
class ErrorReply(Event):
    """An error reply to a request this side sent, normalised to ``(code, message)``."""

    id: RequestId
    method: str
    code: int
    message: str

    def __post_init__(self) -> None:
        _check_id(self.id)
        _check_str("method", self.method)
        if type(self.code) is bool or not isinstance(self.code, int):
            _fail(f"code must be an int, not {type(self.code).__name__}")
        _check_str("message", self.message)


@dataclass(frozen=True)
class ProtocolViolation(Event):
    """The peer sent something we could not use and that gets no reply (a reply to an unknown
    id, a notification of an unknown method or the wrong shape). The connection goes on."""

    message: str

    def __post_init__(self) -> None:
        _check_str("message", self.message)


@dataclass(frozen=True)
class ConnectionClosed(Event):
    """The peer closed its side (``receive_data(b"")``)."""


# --------------------------------------------------------------------------------------------
# Received by the client (sent by pools)


@dataclass(frozen=True)
class SubscribeResult(Event):
    """The pool's answer to ``mining.subscribe``."""

    id: RequestId
    extranonce1: str
    extranonce2_size: int
    subscriptions: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        _check_id(self.id)
        _check_hex("extranonce1", self.extranonce1)
        _check_size("extranonce2_size", self.extranonce2_size, 1, 32)
        pairs = tuple(tuple(pair) for pair in self.subscriptions)
        for pair in pairs:
            if len(pair) != 2 or not all(type(item) is str for item in pair):
                _fail(f"a subscription must be a (method, id) pair of str, got {pair!r}")
        object.__setattr__(self, "subscriptions", pairs)

    @property
    def session_id(self) -> str | None:
        """The ``mining.notify`` subscription id: what miners send back to resume a session."""
        for method, ident in self.subscriptions:
            if method.lower() == "mining.notify":
                return ident
        return None


@dataclass(frozen=True)
class AuthorizeResult(Event):
    """The pool's answer to ``mining.authorize``; ``code``/``message`` explain a refusal."""

    id: RequestId
    ok: bool
    code: int | None = None
    message: str | None = None

    def __post_init__(self) -> None:
        _check_id(self.id)
        _check_bool("ok", self.ok)
        _check_optional_str("message", self.message)


@dataclass(frozen=True)
class ConfigureResult(Event):
    """The pool's answer to ``mining.configure``: one entry per requested extension."""

    id: RequestId
    result: Mapping[str, Any] = field(hash=False)

    def __post_init__(self) -> None:
        _check_id(self.id)
        if not isinstance(self.result, Mapping):
            _fail(f"result must be a mapping, not {type(self.result).__name__}")
        result = MappingProxyType(dict(self.result))
        object.__setattr__(self, "result", result)
        mask = None
        if result.get(VERSION_ROLLING) is True:
            mask = parse_mask("version-rolling.mask", result.get("version-rolling.mask"))
        object.__setattr__(self, "_mask", mask)

    @property
    def version_rolling(self) -> bool:
        return self._mask is not None  # type: ignore[attr-defined]

    @property
    def version_rolling_mask(self) -> int | None:
        """The negotiated mask, or None if the pool refused version rolling."""
        mask: int | None = self._mask  # type: ignore[attr-defined]
        return mask

    @property
    def minimum_difficulty(self) -> bool | None:
        value = self.result.get(MINIMUM_DIFFICULTY)
        return value if type(value) is bool else None


@dataclass(frozen=True)
class SubmitResult(Event):
    """The pool's verdict on a share; ``code``/``message`` explain a rejection."""

    id: RequestId
    accepted: bool
    code: int | None = None
    message: str | None = None

    def __post_init__(self) -> None:
        _check_id(self.id)
        _check_bool("accepted", self.accepted)
        _check_optional_str("message", self.message)


@dataclass(frozen=True)
class SetDifficulty(Event):
    """``mining.set_difficulty``: applies to jobs notified from now on."""

    difficulty: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "difficulty", _check_difficulty(self.difficulty))


@dataclass(frozen=True)
class Notify(Event):
    """``mining.notify``: a job. Built by the pool to send, parsed by the client on receipt.

    The wire line is serialized once and cached, so broadcasting one job to thousands of
    connections costs one ``json`` call.
    """

    job_id: str
    prevhash: str
    coinb1: str
    coinb2: str
    merkle_branch: tuple[str, ...]
    version: str
    nbits: str
    ntime: str
    clean_jobs: bool

    def __post_init__(self) -> None:
        _check_str("job_id", self.job_id, empty=False)
        _check_hex("prevhash", self.prevhash, 64)
        _check_hex("coinb1", self.coinb1)
        _check_hex("coinb2", self.coinb2)
        if isinstance(self.merkle_branch, str) or not isinstance(self.merkle_branch, Sequence):
            _fail("merkle_branch must be a sequence of 64-digit hex str")
        branch = tuple(self.merkle_branch)
        for step in branch:
            _check_hex("a merkle_branch step", step, 64)
        object.__setattr__(self, "merkle_branch", branch)
        _check_hex("version", self.version, 8)
        _check_hex("nbits", self.nbits, 8)
        _check_hex("ntime", self.ntime, 8)
        _check_bool("clean_jobs", self.clean_jobs)

    @cached_property
    def wire(self) -> bytes:
        """The ``mining.notify`` line, terminator included."""
        branch = ",".join(f'"{step}"' for step in self.merkle_branch)
        return (
            f'{{"id":null,"method":"mining.notify","params":[{encode_str(self.job_id)},'
            f'"{self.prevhash}","{self.coinb1}","{self.coinb2}",[{branch}],'
            f'"{self.version}","{self.nbits}","{self.ntime}",'
            f"{'true' if self.clean_jobs else 'false'}]}}\n"
        ).encode("ascii")


@dataclass(frozen=True)
class SetExtranonce(Event):
    """``mining.set_extranonce``: new extranonce1 / extranonce2_size for the next jobs."""

    extranonce1: str
    extranonce2_size: int

    def __post_init__(self) -> None:
        _check_hex("extranonce1", self.extranonce1)
        _check_size("extranonce2_size", self.extranonce2_size, 1, 32)


@dataclass(frozen=True)
class SetVersionMask(Event):
    """``mining.set_version_mask`` (BIP310): valid immediately, not only for new jobs."""

    mask: int

    def __post_init__(self) -> None:
        _check_mask("mask", self.mask)


@dataclass(frozen=True)
class Reconnect(Event):
    """``client.reconnect``: go to ``host:port`` (None = the same) after ``wait`` seconds."""

    host: str | None = None
    port: int | None = None
    wait: float | None = None

    def __post_init__(self) -> None:
        _check_optional_str("host", self.host)
        if self.port is not None:
            _check_size("port", self.port, 1, 65535)
        if self.wait is not None:
            if type(self.wait) is bool or not isinstance(self.wait, int | float):
                _fail(f"wait must be a number of seconds, got {self.wait!r}")
            if not 0 <= self.wait < float("inf"):
                _fail(f"wait must be a finite number >= 0, got {self.wait!r}")


@dataclass(frozen=True)
class ShowMessage(Event):
    """``client.show_message``: text for the operator's screen."""

    message: str

    def __post_init__(self) -> None:
        _check_str("message", self.message)


@dataclass(frozen=True)
class GetVersion(Event):
    """``client.get_version``: a request; answer it with ``respond(id, "agent/version")``."""

    id: RequestId

    def __post_init__(self) -> None:
        _check_id(self.id)


@dataclass(frozen=True)
class ExtensionNotification(Event):
    """Any other method the pool sends (``mining.ping``, our ``stratumkit.*`` extensions).

    A non-null ``id`` means the pool waits for an answer.
    """

    method: str
    params: Any = field(default=(), hash=False)
    id: RequestId = None

    def __post_init__(self) -> None:
        _check_str("method", self.method)
        _check_id(self.id)


def _json_params(params: Any) -> str:
    """Serialize extension params, turning unserializable values into a LocalProtocolError."""
    if not isinstance(params, list | tuple | dict):
        _fail(f"params must be a list, tuple or dict, not {type(params).__name__}")
    try:
        return dumps(params)
    except (TypeError, ValueError) as exc:
        _fail(f"params are not JSON-serializable: {exc}")
