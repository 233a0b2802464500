"""Pure-Python reference of the hashing API, built on hashlib.

It is the test oracle for the native core (`stratumkit.hashing`): same functions, same argument
rules, same results, about a hundred times slower. Nothing on a hot path imports it.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence
from typing import NamedTuple

#: Difficulty 1 (the "pool difficulty 1" / bdiff convention): share target = DIFF1_TARGET / difficulty.
DIFF1_TARGET = 0x00000000FFFF0000000000000000000000000000000000000000000000000000
MAX_TARGET = (1 << 256) - 1


class HashingError(ValueError):
    """An argument of the wrong type, length or range was passed to the hashing API."""


class ShareResult(NamedTuple):
    """What one share check found. `hash` is in internal byte order (reverse it for display)."""

    header: bytes
    hash: bytes
    meets_share: bool
    meets_network: bool


def _bytes(name: str, value: object, length: int | None = None) -> bytes:
    if not isinstance(value, bytes | bytearray | memoryview):
        raise HashingError(f"{name} must be bytes, not {type(value).__name__}")
    b = bytes(value)
    if length is not None and len(b) != length:
        raise HashingError(f"{name} must be {length} bytes, got {len(b)}")
    return b


def _uint(name: str, value: object, bits: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise HashingError(f"{name} must be an int, not {type(value).__name__}")
    if not 0 <= value < (1 << bits):
        raise HashingError(f"{name} out of range for uint{bits}: {value}")
    return value


def _target(name: str, value: object) -> int:
    return _uint(name, value, 256)


def _branch(value: object) -> bytes:
    b = _bytes("merkle_branch", value)
    if len(b) % 32:
        raise HashingError(f"merkle_branch must be a multiple of 32 bytes, got {len(b)}")
    if len(b) > 32 * 32:
        raise HashingError("merkle_branch has more than 32 levels")
    return b


def hash_to_int(digest: bytes) -> int:
    """The 256-bit number a hash stands for when compared with a target (little-endian)."""
    return int.from_bytes(digest, "little")


def meets_target(digest: bytes, target: int) -> bool:
    return hash_to_int(digest) <= target


def sha256d(data: bytes) -> bytes:
    data = _bytes("data", data)
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


def sha256d_many(buffers: Sequence[bytes]) -> list[bytes]:
    if isinstance(buffers, bytes | bytearray | memoryview | str):
        raise HashingError("buffers must be a sequence of bytes objects")
    return [sha256d(b) for b in buffers]


def hash_headers(headers: bytes, target: int) -> tuple[bytes, list[int]]:
    """Hash n concatenated 80-byte headers; return the n hashes and the indices that meet target."""
    headers = _bytes("headers", headers)
    if len(headers) % 80:
        raise HashingError(f"headers must be a multiple of 80 bytes, got {len(headers)}")
    target = _target("target", target)
    out = bytearray()
    hits: list[int] = []
    for i in range(len(headers) // 80):
        h = sha256d(headers[80 * i : 80 * i + 80])
        out += h
        if hash_to_int(h) <= target:
            hits.append(i)
    return bytes(out), hits


def fold_branch(leaf: bytes, merkle_branch: bytes) -> bytes:
    """Fold a Stratum merkle branch (coinbase is always the left-most leaf) into the root."""
    root = leaf
    for i in range(0, len(merkle_branch), 32):
        root = sha256d(root + merkle_branch[i : i + 32])
    return root


def check_share(
    coinb1: bytes,
    extranonce1: bytes,
    extranonce2: bytes,
    coinb2: bytes,
    merkle_branch: bytes,
    version: int,
    prevhash: bytes,
    ntime: int,
    nbits: int,
    nonce: int,
    share_target: int,
    network_target: int,
) -> ShareResult:
    """Rebuild the header a miner hashed and say whether it meets the share and network targets.

    `prevhash` is in internal byte order (as in the block header); `merkle_branch` is the
    concatenation of the 32-byte branch hashes, also internal order.
    """
    coinbase = (
        _bytes("coinb1", coinb1)
        + _bytes("extranonce1", extranonce1)
        + _bytes("extranonce2", extranonce2)
        + _bytes("coinb2", coinb2)
    )
    branch = _branch(merkle_branch)
    root = fold_branch(sha256d(coinbase), branch)
    header = (
        struct.pack("<I", _uint("version", version, 32))
        + _bytes("prevhash", prevhash, 32)
        + root
        + struct.pack("<III", _uint("ntime", ntime, 32), _uint("nbits", nbits, 32), _uint("nonce", nonce, 32))
    )
    h = sha256d(header)
    n = hash_to_int(h)
    return ShareResult(
        header, h, n <= _target("share_target", share_target), n <= _target("network_target", network_target)
    )


def scan_nonces(header76: bytes, start: int, count: int, target: int, max_found: int = 64) -> list[int]:
    """Try nonces start .. start+count-1 in the header's last 4 bytes; return those meeting target."""
    header76 = _bytes("header76", header76, 76)
    start = _uint("start", start, 32)
    count = _uint("count", count, 33)
    if start + count > 1 << 32:
        raise HashingError("nonce range runs past 2**32")
    target = _target("target", target)
    found: list[int] = []
    for nonce in range(start, start + count):
        if hash_to_int(sha256d(header76 + struct.pack("<I", nonce))) <= target:
            found.append(nonce)
            if len(found) >= max_found:
                break
    return found
