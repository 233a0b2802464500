"""JSON-RPC 1.0 as Stratum speaks it: one JSON object per line, ids echoed verbatim.

Rules:
- Decoding takes one framed line (bytes) and returns the decoded JSON value. A line that is not
  UTF-8, or carries raw control bytes (only space, tab and CR may appear outside strings, and
  none inside), is *binary data*: :class:`RemoteProtocolError`. Any other decoding failure is
  :class:`MalformedJSON`, which the connection answers with error 20 and survives.
- NaN / Infinity are not JSON; they are refused, not smuggled in as floats.
- A key repeated within one object, at any depth, is :class:`MalformedJSON` ("duplicate key"):
  last-one-wins would let a line mean one thing to us and another to a proxy or log reader.
  Every key is followed by a ``:``, so a line with no more colons than its top-level object
  has keys cannot repeat one; only other lines pay for the exact check (a second parse).
- Encoding is compact and ASCII-only (``ensure_ascii``), so whatever strings a peer sent us can
  always be echoed back as valid JSON, even lone surrogates.
- Request ids are ``int``, ``str`` or ``None`` (never ``bool`` or ``float``), echoed exactly.
- Difficulties serialize the way miners parse them best: integral values as integers
  (``1024``, not ``1024.0``), fractions in plain decimal notation (``0.00001``, never
  ``1e-05``), and integral values from 2**53 up with a ``.0`` suffix: jansson (cgminer,
  cpuminer) reads those as reals, where an integer beyond ``long long`` fails the whole line.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any, Final, NoReturn

from .errors import ErrorCode, RemoteProtocolError

__all__ = [
    "MalformedJSON",
    "RequestId",
    "as_difficulty",
    "decode_line",
    "dumps",
    "encode_difficulty",
    "encode_id",
    "encode_str",
    "error_fields",
    "is_request_id",
]

#: What a JSON-RPC id may be on the Stratum wire.
RequestId = int | str | None


class MalformedJSON(ValueError):
    """A text line that is not one JSON value: answered with error 20, not fatal."""


def _refuse_constant(name: str) -> NoReturn:
    raise MalformedJSON(f"{name} is not a JSON number")


class _DuplicateKey(MalformedJSON):
    """Valid syntax, refused meaning: told apart so the message does not say "malformed"."""


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(f"duplicate key {key[:64]!r}")
            seen.add(key)
    return obj


_decoder: Final = json.JSONDecoder(parse_constant=_refuse_constant)
# The decoder's C scanner, called directly: raw_decode() is a thin Python wrapper around it, and
# skipping that frame is a measurable share of a submit's parse time.
_scan_once: Final[Callable[[str, int], tuple[Any, int]]] = _decoder.scan_once  # type: ignore[attr-defined]
# The same scanner refusing repeated keys, for the lines the colon count cannot clear.
_scan_unique: Final[Callable[[str, int], tuple[Any, int]]] = json.JSONDecoder(  # type: ignore[attr-defined]
    parse_constant=_refuse_constant, object_pairs_hook=_unique_keys
).scan_once
# Characters JSON never allows raw (RFC 8259 section 7 + section 2 whitespace).
_CONTROL: Final = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
_JSON_SPACE: Final = " \t\r\n"


def decode_line(line: bytes) -> Any:
    """Decode one line; raise ``MalformedJSON`` (recoverable) or ``RemoteProtocolError``."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        raise RemoteProtocolError("binary data on the line: it is not UTF-8 text") from None
    if text[:1] in (" ", "\t", "\r"):
        text = text.lstrip(_JSON_SPACE)
    try:
        value, end = _scan_once(text, 0)
        if text.count(":") > (len(value) if type(value) is dict else 0):
            _scan_unique(text, 0)  # some colon is not a top-level key's: look for a repeated key
    except StopIteration as stop:  # what the scanner raises when no value starts at all
        if _CONTROL.search(text):
            raise RemoteProtocolError("binary data on the line: raw control characters") from None
        raise MalformedJSON(f"malformed JSON: Expecting value at column {stop.value + 1}") from None
    except RecursionError:
        raise MalformedJSON("JSON nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, MalformedJSON, int digit limits
        if _CONTROL.search(text):
            raise RemoteProtocolError("binary data on the line: raw control characters") from None
        if isinstance(exc, json.JSONDecodeError):
            raise MalformedJSON(f"malformed JSON: {exc.msg} at column {exc.colno}") from None
        if isinstance(exc, _DuplicateKey):
            raise MalformedJSON(str(exc)) from None
        raise MalformedJSON(f"malformed JSON: {exc}") from None
    if end != len(text) and text[end:].strip(_JSON_SPACE):
        if _CONTROL.search(text, end):
            raise RemoteProtocolError("binary data on the line: raw control characters")
        raise MalformedJSON(f"malformed JSON: extra data after the value at column {end + 1}")
    return value


_encoder: Final = json.JSONEncoder(ensure_ascii=True, allow_nan=False, separators=(",", ":"))
#: Compact, ASCII-only, NaN-free JSON text.
dumps: Final = _encoder.encode

# Strings made only of these need no escaping: printable ASCII minus '"' and '\'.
_PLAIN: Final = re.compile(r"[ !#-\[\]-~]*")


def encode_str(value: str) -> str:
    """JSON text for ``value``; skips the encoder for the plain-ASCII strings hex fields are."""
    if _PLAIN.fullmatch(value):
        return f'"{value}"'
    return dumps(value)


def is_request_id(value: object) -> bool:
    """True for the id types JSON-RPC usage allows on the wire: int (not bool), str, null."""
    kind = type(value)
    return kind is int or kind is str or value is None


def encode_id(value: RequestId) -> str:
    if value is None:
        return "null"
    if isinstance(value, str):
        return encode_str(value)
    return str(value)


_EXACT_INT: Final = 2.0**53  # below this every integral float prints as an exact int


def encode_difficulty(value: float) -> str:
    """Plain decimal text for a positive finite difficulty (``1024``, ``0.001``, ``1.5``)."""
    if value.is_integer():
        if value < _EXACT_INT:
            return str(int(value))
        # jansson (cgminer, cpuminer) refuses integers beyond long long: keep it a real.
        return f"{int(value)}.0"
    text = repr(value)
    if "e" in text or "E" in text:
        # repr() switches to exponent form below 1e-4; some miner JSON parsers do not follow it.
        text = format(Decimal(text), "f")
    return text


def as_difficulty(value: object) -> float | None:
    """``value`` as a float if it is a positive, finite JSON number (bool excluded), else None."""
    if type(value) is bool or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:  # an int beyond float range
        return None
    return number if number > 0 and math.isfinite(number) else None


def error_fields(error: Any) -> tuple[int, str]:
    """Normalise the error shapes pools send: ``[code, message, traceback]`` (Stratum),
    ``{"code": .., "message": ..}`` (JSON-RPC 2.0), or a bare string."""
    code: Any = None
    message: Any = None
    if type(error) is list:
        code = error[0] if error else None
        message = error[1] if len(error) > 1 else None
    elif type(error) is dict:
        code = error.get("code")
        message = error.get("message")
    elif type(error) is str:
        message = error
    if type(code) is not int:
        code = int(ErrorCode.OTHER)
    if type(message) is not str:
        message = dumps(error) if message is None else dumps(message)
    return code, message
