"""The guarded Python API over the native SHA-256d core (native/, bound with cffi).

Every function crosses into C once per call (a batch, or one share), with the GIL released by cffi
for the duration. Arguments are checked before C sees them and bad ones raise `HashingError`; the
success path leans on cffi's own type and range conversion and runs the slower explanatory checks
only when that conversion fails (so where cffi converts an argument itself, a bool passes as the
int it is). The checks, `HashingError` and `ShareResult` come from `stratumkit.hashing_checks`,
shared with `stratumkit.hashing_ref`: the pure-Python twin of this module's functions (same names,
same results) that the tests use as the oracle.

The environment variable STRATUMKIT_SHA256 ("auto", "portable", "shani") picks the compression
implementation at import; `use_implementation()` switches it at run time (tests run both).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence

from stratumkit._sha256d import ffi, lib
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
    "PreparedJob",
    "ShareResult",
    "available_implementations",
    "check_share",
    "hash_headers",
    "hash_to_int",
    "implementation",
    "meets_target",
    "scan_nonces",
    "sha256d",
    "sha256d_many",
    "use_implementation",
]

_IMPLS = {"auto": lib.SK_IMPL_AUTO, "portable": lib.SK_IMPL_PORTABLE, "shani": lib.SK_IMPL_SHANI}
_NAMES = {lib.SK_IMPL_PORTABLE: "portable", lib.SK_IMPL_SHANI: "shani"}


def available_implementations() -> tuple[str, ...]:
    """The compression implementations this CPU can run, e.g. ("portable", "shani")."""
    mask = lib.sk_available()
    return tuple(name for code, name in _NAMES.items() if mask & (1 << code))


def implementation() -> str:
    """The implementation in use now."""
    return _NAMES[lib.sk_impl()]


def use_implementation(name: str) -> str:
    """Switch implementation ("auto", "portable" or "shani"); returns the one now active."""
    if name not in _IMPLS:
        raise HashingError(f"unknown SHA-256 implementation {name!r}; choose from {sorted(_IMPLS)}")
    got = lib.sk_set_impl(_IMPLS[name])
    if got < 0:
        raise HashingError(f"SHA-256 implementation {name!r} is not available on this CPU")
    return _NAMES[got]


use_implementation(os.environ.get("STRATUMKIT_SHA256", "auto") or "auto")


def _target_bytes(name: str, target: int) -> bytes:
    """A target as C takes it: 32 bytes, little-endian."""
    try:
        return target.to_bytes(32, "little")
    except (AttributeError, OverflowError, TypeError):
        check_target(name, target)
        raise


def sha256d(data: bytes) -> bytes:
    """SHA-256 applied twice, as Bitcoin hashes headers, transactions and merkle nodes."""
    if type(data) is not bytes:
        data = check_bytes("data", data)
    out = ffi.new("uint8_t[32]")
    lib.sk_sha256d(data, len(data), out)
    digest: bytes = ffi.buffer(out)[:]
    return digest


def sha256d_many(buffers: Sequence[bytes]) -> list[bytes]:
    """sha256d of each buffer, in one call into C."""
    parts = check_buffers(buffers)
    n = len(parts)
    offsets = ffi.new("size_t[]", n + 1)
    pos = 0
    for i, b in enumerate(parts):
        offsets[i] = pos
        pos += len(b)
    offsets[n] = pos
    out = ffi.new("uint8_t[]", 32 * n or 1)
    lib.sk_sha256d_many(b"".join(parts), offsets, n, out)
    raw = ffi.buffer(out, 32 * n)[:]
    return [raw[32 * i : 32 * i + 32] for i in range(n)]


def hash_headers(headers: bytes, target: int) -> tuple[bytes, list[int]]:
    """Hash n concatenated 80-byte headers; return the n hashes and the indices that meet target."""
    headers = check_headers(headers)
    tb = _target_bytes("target", target)
    n = len(headers) // 80
    out = ffi.new("uint8_t[]", 32 * n or 1)
    hits = ffi.new("uint32_t[]", n or 1)
    k = lib.sk_hash_headers(headers, n, tb, out, hits)
    return ffi.buffer(out, 32 * n)[:], list(hits[0:k])


class PreparedJob:
    """A job's constant share-check inputs, converted for C once so each share pays only for its own.

    The pool builds one per job (and per difficulty-independent template); `check` is the one
    native call per share. `coinb2` is kept referenced here because C borrows it.
    """

    __slots__ = ("_coinb2", "_job", "coinb1", "merkle_branch", "nbits", "network_target", "prevhash")

    def __init__(
        self,
        coinb1: bytes,
        coinb2: bytes,
        merkle_branch: bytes,
        prevhash: bytes,
        nbits: int,
        network_target: int,
    ) -> None:
        coinb1, coinb2, branch, prevhash, nbits, network_target = check_job(
            coinb1, coinb2, merkle_branch, prevhash, nbits, network_target
        )
        self._job = ffi.new("sk_job *")
        self._coinb2 = coinb2
        rc = lib.sk_job_init(
            self._job,
            coinb1,
            len(coinb1),
            coinb2,
            len(coinb2),
            branch,
            len(branch) >> 5,
            prevhash,
            nbits,
            network_target.to_bytes(32, "little"),
        )
        if rc != 0:  # pragma: no cover - check_job already bounds the length
            raise HashingError("merkle branch too long")
        self.coinb1 = coinb1
        self.merkle_branch = branch
        self.prevhash = prevhash
        self.nbits = nbits
        self.network_target = network_target

    @property
    def coinb2(self) -> bytes:
        return self._coinb2

    def check(
        self,
        extranonce1: bytes,
        extranonce2: bytes,
        version: int,
        ntime: int,
        nonce: int,
        share_target: int,
    ) -> ShareResult:
        """Hash one share of this job: the header it makes and whether it meets each target."""
        try:
            out = _tls.out
        except AttributeError:
            out = _tls.out = ffi.new(_OUT)
        target = _targets.get(share_target) if type(share_target) is int else None
        if target is None:
            target = _target_bytes("share_target", share_target)  # HashingError for a bad one
            if len(_targets) > 1024:
                _targets.clear()
            _targets[share_target] = target
        try:
            flags = _job_check(
                self._job,
                extranonce1,
                len(extranonce1),
                extranonce2,
                len(extranonce2),
                version,
                ntime,
                nonce,
                target,
                out,
            )
        except (TypeError, OverflowError, AttributeError):
            # cffi refused an argument: raise the HashingError that names it
            check_share_fields(extranonce1, extranonce2, version, ntime, nonce, share_target)
            raise
        raw = ffi.buffer(out)[:]
        # tuple.__new__ skips NamedTuple's Python-level constructor: this is the per-share path
        return _new_tuple(ShareResult, (raw[:80], raw[80:], flags & _SHARE != 0, flags & _NETWORK != 0))


_OUT = ffi.typeof("uint8_t[112]")
#: The flags sk_job_check returns.
_SHARE = lib.SK_MEETS_SHARE
_NETWORK = lib.SK_MEETS_NETWORK
_job_check = lib.sk_job_check
#: Share targets as C wants them (little-endian bytes), per target: a pool has few difficulties.
_targets: dict[int, bytes] = {}
_new_tuple = tuple.__new__
#: One output buffer per thread: cffi releases the GIL during the call, so threads must not share it.
_tls = threading.local()


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

    `prevhash` is in internal byte order (as in the header); `merkle_branch` is the concatenation
    of the 32-byte branch hashes. The returned hash is in internal byte order too. The pool itself
    uses `PreparedJob`, which this wraps, so that job constants are converted once per job.
    """
    job = PreparedJob(coinb1, coinb2, merkle_branch, prevhash, nbits, network_target)
    return job.check(extranonce1, extranonce2, version, ntime, nonce, share_target)


def scan_nonces(header76: bytes, start: int, count: int, target: int, max_found: int = 64) -> list[int]:
    """Try nonces start .. start+count-1 in the header's last 4 bytes; return those meeting target.

    The first 64 header bytes are hashed once (the midstate); stops early after max_found hits.
    """
    header76, start, count, max_found = check_scan(header76, start, count, max_found)
    tb = _target_bytes("target", target)
    found = ffi.new("uint32_t[]", max_found)
    k = lib.sk_scan(header76, start, count, tb, found, max_found)
    return list(found[0:k])
