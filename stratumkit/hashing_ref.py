"""Pure-Python reference of the hashing API, built on hashlib.

It is the test oracle for the native core: the module-level functions of `stratumkit.hashing`
(sha256d, sha256d_many, hash_headers, check_share, scan_nonces) with the same argument checks
(both take them from `stratumkit.hashing_checks`) and the same results, about a hundred times
slower. The tests and `stratumkit bench hash` (for the comparison) import it; the pool, the agent
and `stratumkit.hashing` do not.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence

from stratumkit.hashing_checks import (
    DIFF1_TARGET,
    MAX_TARGET,
    HashingError,
    ShareResult,
    check_buffers,
    check_bytes,
    check_headers,
    check_job,
    check_scan,
    check_share_fields,
    check_target,
    hash_to_int,
    meets_target,
)

__all__ = [
    "DIFF1_TARGET",
    "MAX_TARGET",
    "HashingError",
    "ShareResult",
    "check_share",
    "fold_branch",
    "hash_headers",
    "hash_to_int",
    "meets_target",
    "scan_nonces",
    "sha256d",
    "sha256d_many",
]


def sha256d(data: bytes) -> bytes:
    data = check_bytes("data", data)
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


def sha256d_many(buffers: Sequence[bytes]) -> list[bytes]:
    return [sha256d(b) for b in check_buffers(buffers)]


def hash_headers(headers: bytes, target: int) -> tuple[bytes, list[int]]:
    """Hash n concatenated 80-byte headers; return the n hashes and the indices that meet target."""
    headers = check_headers(headers)
    target = check_target("target", target)
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
    coinb1, coinb2, branch, prevhash, nbits, network_target = check_job(
        coinb1, coinb2, merkle_branch, prevhash, nbits, network_target
    )
    extranonce1, extranonce2, version, ntime, nonce, share_target = check_share_fields(
        extranonce1, extranonce2, version, ntime, nonce, share_target
    )
    root = fold_branch(sha256d(coinb1 + extranonce1 + extranonce2 + coinb2), branch)
    header = struct.pack("<I", version) + prevhash + root + struct.pack("<III", ntime, nbits, nonce)
    h = sha256d(header)
    n = hash_to_int(h)
    return ShareResult(header, h, n <= share_target, n <= network_target)


def scan_nonces(header76: bytes, start: int, count: int, target: int, max_found: int = 64) -> list[int]:
    """Try nonces start .. start+count-1 in the header's last 4 bytes; return those meeting target."""
    header76, start, count, max_found = check_scan(header76, start, count, max_found)
    target = check_target("target", target)
    found: list[int] = []
    for nonce in range(start, start + count):
        if hash_to_int(sha256d(header76 + struct.pack("<I", nonce))) <= target:
            found.append(nonce)
            if len(found) >= max_found:
                break
    return found
