"""Merkle roots, the Stratum coinbase branch, and the segwit witness commitment.

Rules:
- Every hash here is 32 bytes in internal byte order (as hashed, as in the header); the hex that
  RPC and explorers show is the reverse.
- A level with an odd number of nodes pairs its last node with itself. That is Bitcoin's rule and
  also its weakness (CVE-2012-2459): the lists [a, b, c] and [a, b, c, c] have the same root, so a
  root does not pin down the transaction list. A pool never feeds this module a list with a
  duplicated txid (the node's template cannot contain one), and a block we assemble always has
  the template's exact list; code that checks someone else's block must reject duplicate txids
  itself.
- The coinbase is leaf 0. The Stratum branch is what a miner folds its coinbase hash with, left to
  right, `root = sha256d(root || branch[i])`, to reach the merkle root.
- Witness commitment (BIP141): the witness root is computed over wtxids with the coinbase's
  wtxid taken as 32 zero bytes, and the coinbase commits to sha256d(witness_root || reserved)
  in an OP_RETURN output `6a24aa21a9ed || commitment`; `reserved` is the coinbase's single
  32-byte witness item, zeros by convention.
"""

from __future__ import annotations

from collections.abc import Sequence

from stratumkit.chain.errors import MerkleError
from stratumkit.hashing import sha256d, sha256d_many

__all__ = [
    "WITNESS_COMMITMENT_HEADER",
    "WITNESS_RESERVED_VALUE",
    "fold_branch",
    "merkle_branch",
    "merkle_root",
    "witness_commitment",
    "witness_commitment_script",
    "witness_merkle_root",
]

#: OP_RETURN, push 36, then the 4-byte BIP141 commitment tag aa21a9ed.
WITNESS_COMMITMENT_HEADER = bytes.fromhex("6a24aa21a9ed")
#: The coinbase's witness reserved value: one 32-byte witness item, all zeros.
WITNESS_RESERVED_VALUE = bytes(32)


def _check_hashes(hashes: Sequence[bytes], what: str) -> list[bytes]:
    out = []
    for i, h in enumerate(hashes):
        if not isinstance(h, bytes | bytearray | memoryview) or len(h) != 32:
            raise MerkleError(f"{what}[{i}] must be 32 bytes")
        out.append(bytes(h))
    return out


def _next_level(level: list[bytes]) -> list[bytes]:
    if len(level) % 2:
        level = [*level, level[-1]]
    return sha256d_many([level[i] + level[i + 1] for i in range(0, len(level), 2)])


def merkle_root(hashes: Sequence[bytes]) -> bytes:
    """The merkle root of a non-empty list of txids (or wtxids), coinbase first."""
    level = _check_hashes(hashes, "hashes")
    if not level:
        raise MerkleError("a merkle tree needs at least one leaf")
    while len(level) > 1:
        level = _next_level(level)
    return level[0]


def merkle_branch(txids: Sequence[bytes]) -> list[bytes]:
    """The Stratum branch for the coinbase, given the txids of the OTHER transactions in order.

    At each level the coinbase's running hash is the left node; the branch records its right
    sibling, and the rest of the level (from the third node on) is hashed up as usual. The
    coinbase's own hash is never needed, which is why this can be sent before any extranonce.
    """
    rest = _check_hashes(txids, "txids")
    branch: list[bytes] = []
    # `rest` is the level without its left-most node (the coinbase path).
    while rest:
        branch.append(rest[0])
        rest = _next_level(rest[1:]) if len(rest) > 1 else []
    return branch


def fold_branch(leaf: bytes, branch: Sequence[bytes]) -> bytes:
    """The merkle root reached from the coinbase hash `leaf` through a Stratum branch."""
    root = _check_hashes([leaf], "leaf")[0]
    for h in _check_hashes(branch, "branch"):
        root = sha256d(root + h)
    return root


def witness_merkle_root(wtxids: Sequence[bytes]) -> bytes:
    """The witness root from the wtxids of the non-coinbase transactions, in block order."""
    return merkle_root([bytes(32), *_check_hashes(wtxids, "wtxids")])


def witness_commitment(witness_root: bytes, reserved: bytes = WITNESS_RESERVED_VALUE) -> bytes:
    """sha256d(witness_root || reserved): the 32 bytes the coinbase commits to."""
    _check_hashes([witness_root, reserved], "witness_root/reserved")
    return sha256d(bytes(witness_root) + bytes(reserved))


def witness_commitment_script(wtxids: Sequence[bytes], reserved: bytes = WITNESS_RESERVED_VALUE) -> bytes:
    """The coinbase output script committing to these (non-coinbase) wtxids."""
    return WITNESS_COMMITMENT_HEADER + witness_commitment(witness_merkle_root(wtxids), reserved)
