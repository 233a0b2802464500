"""Shares found by the native scan, as a miner would submit them.

Difficulties in the tests are chosen so that this is cheap: at share difficulty 1e-6 one nonce in
~4096 is a share (well under a millisecond of scanning). Shares avoid the network target unless a
block is asked for, so a test never extends the chain (and turns its jobs stale) by accident.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from stratumkit.agent.work import MinerJob
from stratumkit.hashing import hash_to_int, scan_nonces, sha256d


@dataclass(frozen=True)
class Share:
    job_id: str
    extranonce2: str
    ntime: str
    nonce: str
    version_bits: str | None
    hash: bytes  # internal byte order, as the pool logs it

    def key(self, extranonce1: bytes) -> tuple[bytes, bytes, int, int]:
        """How the share log identifies the work: (extranonce1, extranonce2, ntime, nonce)."""
        return (
            extranonce1,
            bytes.fromhex(self.extranonce2),
            int(self.ntime, 16),
            int(self.nonce, 16),
        )

    def params(self, worker: str) -> list[str]:
        tail = [] if self.version_bits is None else [self.version_bits]
        return [worker, self.job_id, self.extranonce2, self.ntime, self.nonce, *tail]


def header_hash(header76: bytes, nonce: int) -> bytes:
    return sha256d(header76 + struct.pack("<I", nonce))


def find_nonce(
    header76: bytes,
    target: int,
    *,
    above: int | None = None,
    start: int = 0,
) -> int:
    """The first nonce from `start` whose hash meets `target` and, if given, misses `above`."""
    while True:
        for nonce in scan_nonces(header76, start, 1 << 16, target):
            if above is None or hash_to_int(header_hash(header76, nonce)) > above:
                return nonce
        start += 1 << 16


def find_low_nonce(header76: bytes, target: int, start: int = 0) -> int:
    """The first nonce from `start` whose hash does NOT meet `target`."""
    nonce = start
    while hash_to_int(header_hash(header76, nonce)) <= target:
        nonce += 1
    return nonce


def make_share(
    job: MinerJob,
    extranonce1: bytes,
    extranonce2: bytes,
    *,
    target: int,
    above: int | None = None,
    low: bool = False,
    version: int | None = None,
    version_bits: int | None = None,
    ntime: int | None = None,
) -> Share:
    """A share of `job`: meeting `target` (and missing `above`), or missing `target` if `low`."""
    header76 = job.header76(extranonce1, extranonce2, version=version, ntime=ntime)
    nonce = find_low_nonce(header76, target) if low else find_nonce(header76, target, above=above)
    return Share(
        job_id=job.job_id,
        extranonce2=extranonce2.hex(),
        ntime=f"{job.ntime if ntime is None else ntime:08x}",
        nonce=f"{nonce:08x}",
        version_bits=None if version_bits is None else f"{version_bits:08x}",
        hash=header_hash(header76, nonce),
    )
