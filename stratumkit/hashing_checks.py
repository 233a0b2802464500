"""What the two hashing modules share: the argument rules, the error and result types, the constants.

`stratumkit.hashing` (the native core) and `stratumkit.hashing_ref` (the hashlib oracle) both
import this module, so each rule is written once and a bad argument gets the same `HashingError`,
with the same message, from either. The reference runs every check on every call. So does the
native module, except on its fast paths (a bytes argument that already is `bytes`, a share's own
fields, a target), where cffi's conversion goes first and the check runs only to explain a
failure; so there, and only there, the native module takes a bool as the int it is.

Rules:
- Byte strings may be any bytes-like object (converted to `bytes`), except a job's coinb1
  and coinb2 and a share's extranonces, which must be `bytes` exactly: the job keeps its parts as
  given (C keeps a pointer into coinb2), and the per-share call hands the extranonces to C
  unconverted.
- Integers are `int`, never `bool`, and in range for their C type; targets are 0 .. 2**256 - 1.
- A merkle branch is whole 32-byte hashes, at most 32 of them (the C core's `SK_MAX_BRANCH`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

__all__ = [
    "DIFF1_TARGET",
    "MAX_BRANCH",
    "MAX_TARGET",
    "HashingError",
    "ShareResult",
    "check_branch",
    "check_buffers",
    "check_bytes",
    "check_exact_bytes",
    "check_headers",
    "check_job",
    "check_scan",
    "check_share_fields",
    "check_target",
    "check_uint",
    "hash_to_int",
    "meets_target",
]

#: Difficulty 1 (the "pool difficulty 1" / bdiff convention): share target = DIFF1_TARGET / difficulty.
DIFF1_TARGET = 0x00000000FFFF0000000000000000000000000000000000000000000000000000
MAX_TARGET = (1 << 256) - 1
#: The longest merkle branch a job may have (SK_MAX_BRANCH in native/sha256d.h).
MAX_BRANCH = 32


class HashingError(ValueError):
    """An argument of the wrong type, length or range was passed to the hashing API."""


class ShareResult(NamedTuple):
    """What one share check found. `hash` is in internal byte order (reverse it for display)."""

    header: bytes
    hash: bytes
    meets_share: bool
    meets_network: bool


def hash_to_int(digest: bytes) -> int:
    """The 256-bit number a hash stands for when compared with a target (little-endian)."""
    return int.from_bytes(digest, "little")


def meets_target(digest: bytes, target: int) -> bool:
    return hash_to_int(digest) <= target


def check_bytes(name: str, value: object, length: int | None = None) -> bytes:
    """Any bytes-like value as `bytes`, optionally of an exact length."""
    if not isinstance(value, bytes | bytearray | memoryview):
        raise HashingError(f"{name} must be bytes, not {type(value).__name__}")
    b = bytes(value)
    if length is not None and len(b) != length:
        raise HashingError(f"{name} must be {length} bytes, got {len(b)}")
    return b


def check_exact_bytes(name: str, value: object) -> bytes:
    """A value that must already be `bytes` (no bytearray, no memoryview)."""
    if type(value) is not bytes:
        raise HashingError(f"{name} must be bytes, not {type(value).__name__}")
    return value


def check_uint(name: str, value: object, bits: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise HashingError(f"{name} must be an int, not {type(value).__name__}")
    if not 0 <= value < (1 << bits):
        raise HashingError(f"{name} out of range for uint{bits}: {value}")
    return value


def check_target(name: str, value: object) -> int:
    return check_uint(name, value, 256)


def check_branch(value: object) -> bytes:
    b = check_bytes("merkle_branch", value)
    if len(b) % 32:
        raise HashingError(f"merkle_branch must be a multiple of 32 bytes, got {len(b)}")
    if len(b) > 32 * MAX_BRANCH:
        raise HashingError(f"merkle_branch has more than {MAX_BRANCH} levels")
    return b


def check_buffers(buffers: Sequence[bytes]) -> list[bytes]:
    """The buffers of `sha256d_many`, each as `bytes`."""
    if isinstance(buffers, bytes | bytearray | memoryview | str):
        raise HashingError("buffers must be a sequence of bytes objects")
    return [b if type(b) is bytes else check_bytes(f"buffers[{i}]", b) for i, b in enumerate(buffers)]


def check_headers(headers: object) -> bytes:
    """The concatenated 80-byte headers of `hash_headers`."""
    b = check_bytes("headers", headers)
    if len(b) % 80:
        raise HashingError(f"headers must be a multiple of 80 bytes, got {len(b)}")
    return b


def check_job(
    coinb1: object, coinb2: object, merkle_branch: object, prevhash: object, nbits: object, network_target: object
) -> tuple[bytes, bytes, bytes, bytes, int, int]:
    """A job's constant share-check inputs, in this order, checked and converted."""
    return (
        check_exact_bytes("coinb1", coinb1),
        check_exact_bytes("coinb2", coinb2),
        check_branch(merkle_branch),
        check_bytes("prevhash", prevhash, 32),
        check_uint("nbits", nbits, 32),
        check_target("network_target", network_target),
    )


def check_share_fields(
    extranonce1: object, extranonce2: object, version: object, ntime: object, nonce: object, share_target: object
) -> tuple[bytes, bytes, int, int, int, int]:
    """One share's own inputs, in this order, checked."""
    return (
        check_exact_bytes("extranonce1", extranonce1),
        check_exact_bytes("extranonce2", extranonce2),
        check_uint("version", version, 32),
        check_uint("ntime", ntime, 32),
        check_uint("nonce", nonce, 32),
        check_target("share_target", share_target),
    )


def check_scan(header76: object, start: object, count: object, max_found: object) -> tuple[bytes, int, int, int]:
    """A nonce scan's header, range and result limit (the target is checked on its own)."""
    header = check_bytes("header76", header76, 76)
    first = check_uint("start", start, 32)
    n = check_uint("count", count, 33)
    if first + n > 1 << 32:
        raise HashingError("nonce range runs past 2**32")
    if type(max_found) is not int or max_found < 1:
        raise HashingError("max_found must be a positive int")
    return header, first, n, max_found
