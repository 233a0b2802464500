"""Work as a miner holds it: a mining.notify turned into headers for any extranonce2.

Pure functions over the protocol's Notify event; the merkle root is folded once per extranonce2
(never per nonce), and the nonce scan itself runs in C (`hashing.scan_nonces`).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from stratumkit.chain.merkle import fold_branch
from stratumkit.chain.targets import difficulty_to_target, nbits_to_target
from stratumkit.chain.template import prevhash_from_stratum
from stratumkit.hashing import sha256d
from stratumkit.protocol.events import Notify


@dataclass(frozen=True, slots=True)
class MinerJob:
    job_id: str
    prevhash: bytes  # internal byte order
    coinb1: bytes
    coinb2: bytes
    merkle_branch: tuple[bytes, ...]
    version: int
    nbits: int
    ntime: int
    clean: bool
    difficulty: float
    share_target: int

    @classmethod
    def from_notify(cls, notify: Notify, difficulty: float) -> MinerJob:
        return cls(
            job_id=notify.job_id,
            prevhash=prevhash_from_stratum(notify.prevhash),
            coinb1=bytes.fromhex(notify.coinb1),
            coinb2=bytes.fromhex(notify.coinb2),
            merkle_branch=tuple(bytes.fromhex(h) for h in notify.merkle_branch),
            version=int(notify.version, 16),
            nbits=int(notify.nbits, 16),
            ntime=int(notify.ntime, 16),
            clean=notify.clean_jobs,
            difficulty=difficulty,
            share_target=difficulty_to_target(difficulty),
        )

    def header76(
        self, extranonce1: bytes, extranonce2: bytes, *, version: int | None = None, ntime: int | None = None
    ) -> bytes:
        """The first 76 header bytes (all but the nonce) for this extranonce pair."""
        root = fold_branch(sha256d(self.coinb1 + extranonce1 + extranonce2 + self.coinb2), self.merkle_branch)
        return (
            struct.pack("<I", self.version if version is None else version)
            + self.prevhash
            + root
            + struct.pack("<II", self.ntime if ntime is None else ntime, self.nbits)
        )

    @property
    def network_target(self) -> int:
        return nbits_to_target(self.nbits)
