from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stratumkit.chain.errors import MerkleError
from stratumkit.chain.merkle import (
    WITNESS_COMMITMENT_HEADER,
    fold_branch,
    merkle_branch,
    merkle_root,
    witness_commitment,
    witness_commitment_script,
    witness_merkle_root,
)
from stratumkit.hashing import sha256d


def _display(hex_ids: list[str]) -> list[bytes]:
    return [bytes.fromhex(h)[::-1] for h in hex_ids]


def _reference_root(leaves: list[bytes]) -> bytes:
    """Bitcoin's merkle root written as plainly as possible, as the oracle for the fast code."""
    if len(leaves) == 1:
        return leaves[0]
    if len(leaves) % 2:
        leaves = [*leaves, leaves[-1]]
    return _reference_root([sha256d(leaves[i] + leaves[i + 1]) for i in range(0, len(leaves), 2)])


def test_block_100000_merkle_root() -> None:
    # Mainnet block 100000: four transactions and the root its header carries.
    txids = _display(
        [
            "8c14f0db3df150123e6f3dbbf30f8b955a8249b62ac1d1ff16284aefa3d06d87",
            "fff2525b8931402dd09222c50775608f75787bd2b87e56995a7bdd30f79702c4",
            "6359f0868171b1d194cbee1af2f16ea598ae8fad666d9b012c8ed2b79a236ec4",
            "e9a66845e05d5abc0ad04ec80f774a7e585c6e8db975962d069a522137b80c1d",
        ]
    )
    root = "f3e94742aca4b5ef85488dc37c06c3282295ffec960994b2c0d5ac2a25a95766"
    assert merkle_root(txids)[::-1].hex() == root
    assert fold_branch(txids[0], merkle_branch(txids[1:]))[::-1].hex() == root


def test_single_leaf_is_its_own_root() -> None:
    genesis_coinbase = _display(["4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b"])
    assert merkle_root(genesis_coinbase) == genesis_coinbase[0]
    assert merkle_branch([]) == []
    assert fold_branch(genesis_coinbase[0], []) == genesis_coinbase[0]


def test_duplicate_leaf_weakness_is_what_bitcoin_does() -> None:
    """CVE-2012-2459: [a, b, c] and [a, b, c, c] share a root. Pinned so nobody "fixes" it."""
    a, b, c = (sha256d(bytes([i])) for i in range(3))
    assert merkle_root([a, b, c]) == merkle_root([a, b, c, c])
    assert merkle_root([a, b, c]) == sha256d(sha256d(a + b) + sha256d(c + c))


def test_single_coinbase_witness_commitment() -> None:
    expected = "6a24aa21a9ede2f61c3f71d1defd3fa999dfa36953755c690689799962b48bebd836974e8cf9"
    assert witness_commitment_script([]).hex() == expected
    # The witness root of a lone coinbase is its zero wtxid.
    assert witness_merkle_root([]) == bytes(32)
    assert WITNESS_COMMITMENT_HEADER + witness_commitment(bytes(32)) == bytes.fromhex(expected)


def test_witness_commitment_uses_zero_coinbase_wtxid() -> None:
    wtxids = [sha256d(bytes([i])) for i in range(5)]
    root = _reference_root([bytes(32), *wtxids])
    assert witness_merkle_root(wtxids) == root
    reserved = bytes(range(32))
    assert witness_commitment_script(wtxids, reserved) == (WITNESS_COMMITMENT_HEADER + sha256d(root + reserved))


@given(st.lists(st.binary(min_size=32, max_size=32), min_size=0, max_size=70))
def test_branch_folds_to_the_root(txids: list[bytes]) -> None:
    coinbase = sha256d(b"coinbase" + len(txids).to_bytes(2, "big"))
    branch = merkle_branch(txids)
    root = _reference_root([coinbase, *txids])
    assert merkle_root([coinbase, *txids]) == root
    assert fold_branch(coinbase, branch) == root
    # One branch entry per tree level above the leaves.
    assert len(branch) == (len(txids)).bit_length()


def test_branch_does_not_depend_on_the_coinbase() -> None:
    txids = [sha256d(bytes([i])) for i in range(7)]
    branch = merkle_branch(txids)
    for coinbase in (bytes(32), b"\xff" * 32):
        assert fold_branch(coinbase, branch) == _reference_root([coinbase, *txids])


def test_bad_input() -> None:
    with pytest.raises(MerkleError, match="at least one leaf"):
        merkle_root([])
    with pytest.raises(MerkleError, match=r"txids\[1\] must be 32 bytes"):
        merkle_branch([bytes(32), bytes(31)])
    with pytest.raises(MerkleError, match="32 bytes"):
        fold_branch(bytes(33), [])
    with pytest.raises(MerkleError, match="32 bytes"):
        witness_commitment(bytes(32), bytes(16))
    with pytest.raises(MerkleError, match="32 bytes"):
        merkle_root(["00" * 32])  # type: ignore[list-item]
