"""The whole pool pipeline against real blocks: template -> notify fields -> share check -> block.

Each vector is a real block turned back into the getblocktemplate result that produced it (see
tests/vectors/README.md). A pool that gets these right would have produced the real block.
"""

from __future__ import annotations

import json

import pytest

from stratumkit.chain.block import BlockHeader, assemble_block, parse_block
from stratumkit.chain.merkle import merkle_root, witness_commitment_script
from stratumkit.chain.targets import difficulty_to_target, nbits_to_target
from stratumkit.chain.template import BlockTemplate
from stratumkit.hashing import check_share, sha256d

from .chain_vectors import VECTOR_FILES, VECTORS_DIR, Vector


def test_vectors_are_present_and_documented() -> None:
    # A vector-driven suite that finds no vectors would pass vacuously.
    assert len(VECTOR_FILES) >= 2
    readme = (VECTORS_DIR / "README.md").read_text()
    for path in VECTOR_FILES:
        assert path.name in readme, f"{path.name} has no provenance line in the README"
        source = json.loads(path.read_text())["source"]
        assert "block" in source


def test_notify_fields(vector: Vector) -> None:
    t = vector.template
    assert t.stratum_merkle_branch == vector.expected["stratum_merkle_branch"]
    assert t.prevhash_stratum == vector.expected["prevhash_stratum"]
    assert t.bits == vector.expected["nbits_hex"]


def test_witness_commitment_recomputed_from_wtxids(vector: Vector) -> None:
    t = vector.template
    assert t.default_witness_commitment is not None
    assert witness_commitment_script(t.wtxids) == t.default_witness_commitment
    assert t.default_witness_commitment.hex() == vector.template_json["default_witness_commitment"]


@pytest.mark.parametrize("split", [(41, 4, 4), (42, 8, 0), (60, 1, 7), (-60, 4, 8)])
def test_real_coinbase_split_anywhere_gives_the_real_block(vector: Vector, split: tuple[int, int, int]) -> None:
    t = vector.template
    cb = vector.coinbase_nowitness
    start, n1, n2 = split
    start %= len(cb)
    coinb1 = cb[:start]
    extranonce1 = cb[start : start + n1]
    extranonce2 = cb[start + n1 : start + n1 + n2]
    coinb2 = cb[start + n1 + n2 :]
    result = check_share(
        coinb1,
        extranonce1,
        extranonce2,
        coinb2,
        t.merkle_branch_bytes,
        vector.header_field("version"),
        t.prevhash,
        vector.header_field("ntime"),
        vector.header_field("nbits"),
        vector.header_field("nonce"),
        difficulty_to_target(1),
        nbits_to_target(vector.expected["nbits_hex"]),
    )
    assert result.hash[::-1].hex() == vector.expected["block_hash"]
    assert result.header.hex() == vector.expected["header_hex"]
    assert result.meets_share
    assert result.meets_network


def test_wrong_nonce_is_not_a_block(vector: Vector) -> None:
    t = vector.template
    cb = vector.coinbase_nowitness
    result = check_share(
        cb[:50],
        b"",
        b"",
        cb[50:],
        t.merkle_branch_bytes,
        vector.header_field("version"),
        t.prevhash,
        vector.header_field("ntime"),
        t.nbits,
        vector.header_field("nonce") ^ 1,
        t.network_target,
        t.network_target,
    )
    assert result.hash[::-1].hex() != vector.expected["block_hash"]
    assert not result.meets_network


def test_assembled_block_is_the_real_block(vector: Vector) -> None:
    t = vector.template
    header = bytes.fromhex(vector.expected["header_hex"])
    block = assemble_block(t, header, vector.coinbase_nowitness)

    parsed_header, txs = parse_block(block)
    assert parsed_header.serialize() == header
    assert parsed_header.hash_hex() == vector.expected["block_hash"]
    assert len(txs) == 1 + len(t.transactions)
    # The coinbase went in with its witness (the template commits to witnesses)...
    coinbase = txs[0]
    assert coinbase.serialize() == vector.coinbase_witness
    assert coinbase.txid() == sha256d(vector.coinbase_nowitness)
    # ...and everything else verbatim.
    tail = b"".join(tx.data for tx in t.transactions)
    assert block.endswith(tail)
    assert len(block) == 80 + _compact_len(len(txs)) + len(vector.coinbase_witness) + len(tail)
    # Independent checks of what the header and coinbase commit to, from the parsed block alone.
    assert merkle_root([tx.txid() for tx in txs]) == parsed_header.merkle_root
    commitment = coinbase.outputs[-1].script_pubkey
    assert commitment == witness_commitment_script([tx.wtxid() for tx in txs[1:]])


def test_template_json_round_trips_through_views(vector: Vector) -> None:
    t: BlockTemplate = vector.template
    raw = vector.template_json
    assert t.previousblockhash == raw["previousblockhash"]
    assert t.height == raw["height"]
    assert t.coinbasevalue == raw["coinbasevalue"]
    assert [h[::-1].hex() for h in t.txids] == [tx["txid"] for tx in raw["transactions"]]
    assert [h[::-1].hex() for h in t.wtxids] == [tx["hash"] for tx in raw["transactions"]]
    assert BlockHeader.parse(bytes.fromhex(vector.expected["header_hex"])).prevhash == t.prevhash


def _compact_len(n: int) -> int:
    return 1 if n < 0xFD else 3 if n <= 0xFFFF else 5
