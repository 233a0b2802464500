"""Bitcoin's wire encodings: little-endian integers, compact sizes, script pushes, BIP34 heights.

Rules of this module:
- Writers refuse values out of range (`SerializationError`), never wrap or truncate.
- Script pushes are *minimal* (the form Bitcoin Core's MINIMALDATA rule and `CScript() << x`
  produce), so a byte string has exactly one encoding here.
- `ByteReader` is strict: short reads, non-canonical compact sizes and, via `finish()`, trailing
  bytes are errors. Accepting trailing bytes lets two different byte strings parse to the same
  object, which is how malleability bugs start.
"""

from __future__ import annotations

import struct

from stratumkit.chain.errors import SerializationError

__all__ = [
    "MAX_SCRIPT_ELEMENT",
    "ByteReader",
    "compact_size",
    "decode_script_number",
    "push_data",
    "push_height",
    "push_int",
    "read_height_push",
    "script_number",
    "u32le",
    "u64le",
]

#: Largest data push a script may carry (Bitcoin's MAX_SCRIPT_ELEMENT_SIZE).
MAX_SCRIPT_ELEMENT = 520

_OP_0 = 0x00
_OP_PUSHDATA1 = 0x4C
_OP_PUSHDATA2 = 0x4D
_OP_1NEGATE = 0x4F
_OP_1 = 0x51
_OP_16 = 0x60


def _check_uint(name: str, value: int, bits: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise SerializationError(f"{name} must be an int, not {type(value).__name__}")
    if not 0 <= value < (1 << bits):
        raise SerializationError(f"{name} out of range for uint{bits}: {value}")
    return value


def u32le(value: int) -> bytes:
    return struct.pack("<I", _check_uint("value", value, 32))


def u64le(value: int) -> bytes:
    return struct.pack("<Q", _check_uint("value", value, 64))


def compact_size(n: int) -> bytes:
    """Bitcoin's variable-length integer ("CompactSize"), in its one canonical form."""
    _check_uint("compact size", n, 64)
    if n < 0xFD:
        return bytes((n,))
    if n <= 0xFFFF:
        return b"\xfd" + struct.pack("<H", n)
    if n <= 0xFFFF_FFFF:
        return b"\xfe" + struct.pack("<I", n)
    return b"\xff" + struct.pack("<Q", n)


def script_number(n: int) -> bytes:
    """The minimal little-endian sign-magnitude encoding scripts use for numbers (CScriptNum).

    Zero is the empty string; when the top byte's high bit is taken by the magnitude, one more
    byte carries the sign (0x00 or 0x80), so 128 is `80 00` and -128 is `80 80`.
    """
    if not isinstance(n, int) or isinstance(n, bool):
        raise SerializationError(f"script number must be an int, not {type(n).__name__}")
    if n == 0:
        return b""
    magnitude = abs(n)
    out = bytearray()
    while magnitude:
        out.append(magnitude & 0xFF)
        magnitude >>= 8
    if out[-1] & 0x80:
        out.append(0x80 if n < 0 else 0x00)
    elif n < 0:
        out[-1] |= 0x80
    return bytes(out)


def decode_script_number(data: bytes, *, max_size: int = 8) -> int:
    """Inverse of `script_number`; refuses non-minimal encodings and overlong numbers."""
    data = bytes(data)
    if len(data) > max_size:
        raise SerializationError(f"script number longer than {max_size} bytes")
    if not data:
        return 0
    if (data[-1] & 0x7F) == 0 and (len(data) == 1 or not data[-2] & 0x80):
        raise SerializationError(f"non-minimal script number {data.hex()}")
    magnitude = int.from_bytes(data[:-1] + bytes((data[-1] & 0x7F,)), "little")
    return -magnitude if data[-1] & 0x80 else magnitude


def push_data(data: bytes) -> bytes:
    """The minimal script push of `data`: OP_0, OP_1..OP_16, OP_1NEGATE or a length prefix."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise SerializationError(f"push data must be bytes, not {type(data).__name__}")
    data = bytes(data)
    n = len(data)
    if n > MAX_SCRIPT_ELEMENT:
        raise SerializationError(f"push of {n} bytes exceeds the {MAX_SCRIPT_ELEMENT}-byte limit")
    if n == 0:
        return bytes((_OP_0,))
    if n == 1 and 1 <= data[0] <= 16:
        return bytes((_OP_1 + data[0] - 1,))
    if n == 1 and data[0] == 0x81:
        return bytes((_OP_1NEGATE,))
    if n < _OP_PUSHDATA1:
        return bytes((n,)) + data
    if n <= 0xFF:
        return bytes((_OP_PUSHDATA1, n)) + data
    return bytes((_OP_PUSHDATA2,)) + struct.pack("<H", n) + data


def push_int(n: int) -> bytes:
    """A number pushed as `CScript() << n` does: OP_0, OP_1NEGATE, OP_1..OP_16, else its bytes."""
    if not isinstance(n, int) or isinstance(n, bool):
        raise SerializationError(f"pushed number must be an int, not {type(n).__name__}")
    if n == 0:
        return bytes((_OP_0,))
    if n == -1 or 1 <= n <= 16:
        return bytes((_OP_1 + n - 1,)) if n > 0 else bytes((_OP_1NEGATE,))
    return push_data(script_number(n))


def push_height(height: int) -> bytes:
    """The BIP34 block-height push a coinbase scriptSig must start with.

    Consensus compares the scriptSig's first bytes with `CScript() << height`, so heights 1..16
    are the single opcodes OP_1..OP_16 (not a one-byte push), and 128 needs a sign byte.
    """
    _check_uint("height", height, 31)
    return push_int(height)


def read_height_push(script_sig: bytes) -> int:
    """The height a coinbase scriptSig starts with (inverse of `push_height`)."""
    script_sig = bytes(script_sig)
    if not script_sig:
        raise SerializationError("empty scriptSig has no height push")
    op = script_sig[0]
    if op == _OP_0:
        return 0
    if _OP_1 <= op <= _OP_16:
        return op - _OP_1 + 1
    if not 1 <= op <= 8:
        raise SerializationError(f"scriptSig does not start with a height push (opcode {op:#04x})")
    if len(script_sig) < 1 + op:
        raise SerializationError("height push runs past the end of the scriptSig")
    height = decode_script_number(script_sig[1 : 1 + op])
    if height < 0:
        raise SerializationError(f"negative height {height}")
    if push_height(height) != script_sig[: 1 + op]:
        raise SerializationError("height push is not minimal")
    return height


class ByteReader:
    """A cursor for strict decoding: every read checks the length, `finish()` checks the end."""

    __slots__ = ("_data", "_pos")

    def __init__(self, data: bytes) -> None:
        if not isinstance(data, bytes | bytearray | memoryview):
            raise SerializationError(f"expected bytes, not {type(data).__name__}")
        self._data = bytes(data)
        self._pos = 0

    @property
    def position(self) -> int:
        return self._pos

    @property
    def remaining(self) -> int:
        return len(self._data) - self._pos

    def read(self, n: int) -> bytes:
        if n < 0:
            raise SerializationError(f"negative read length {n}")
        if self.remaining < n:
            raise SerializationError(f"need {n} bytes at offset {self._pos}, only {self.remaining} left")
        out = self._data[self._pos : self._pos + n]
        self._pos += n
        return out

    def peek(self, n: int) -> bytes:
        return self._data[self._pos : self._pos + n]

    def u8(self) -> int:
        return self.read(1)[0]

    def u32(self) -> int:
        value: int = struct.unpack("<I", self.read(4))[0]
        return value

    def u64(self) -> int:
        value: int = struct.unpack("<Q", self.read(8))[0]
        return value

    def compact_size(self) -> int:
        first = self.u8()
        if first < 0xFD:
            return first
        if first == 0xFD:
            n: int = struct.unpack("<H", self.read(2))[0]
            floor = 0xFD
        elif first == 0xFE:
            n = struct.unpack("<I", self.read(4))[0]
            floor = 0x1_0000
        else:
            n = struct.unpack("<Q", self.read(8))[0]
            floor = 0x1_0000_0000
        if n < floor:
            raise SerializationError(f"non-canonical compact size {n} at offset {self._pos}")
        return n

    def var_bytes(self) -> bytes:
        """A compact-size length followed by that many bytes."""
        return self.read(self.compact_size())

    def finish(self) -> None:
        """Raise unless every byte was consumed."""
        if self.remaining:
            raise SerializationError(f"{self.remaining} trailing bytes after offset {self._pos}")
