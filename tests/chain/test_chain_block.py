from __future__ import annotations

from dataclasses import fields, replace
from typing import Any

import pytest

from stratumkit.chain.address import Network, address_to_script
from stratumkit.chain.block import BlockHeader, assemble_block, parse_block, serialize_header
from stratumkit.chain.coinbase import build_coinbase
from stratumkit.chain.errors import BlockError
from stratumkit.chain.merkle import fold_branch
from stratumkit.chain.template import BlockTemplate
from stratumkit.hashing import check_share, sha256d

from .chain_vectors import Vector

GENESIS_HEADER = bytes.fromhex(
    "0100000000000000000000000000000000000000000000000000000000000000000000003ba3edfd7a7b12b2"
    "7ac72c3e67768f617fc81bc3888a51323a9fb8aa4b1e5e4a29ab5f49ffff001d1dac2b7c"
)
GENESIS_HASH = "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f"


def test_genesis_header() -> None:
    header = BlockHeader.parse(GENESIS_HEADER)
    assert header.hash_hex() == GENESIS_HASH
    assert header.hash() == sha256d(GENESIS_HEADER)
    assert (header.version, header.ntime, header.nbits, header.nonce) == (
        1,
        1231006505,  # 2009-01-03 18:15:05 UTC
        0x1D00FFFF,
        2083236893,
    )
    assert header.prevhash == bytes(32)
    assert header.merkle_root[::-1].hex() == ("4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b")
    rebuilt = serialize_header(
        header.version,
        header.prevhash,
        header.merkle_root,
        header.ntime,
        header.nbits,
        header.nonce,
    )
    assert rebuilt == GENESIS_HEADER


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("version", -1, "uint32"),
        ("ntime", 2**32, "uint32"),
        ("nonce", True, "uint32"),
        ("prevhash", bytes(31), "32 bytes"),
        ("merkle_root", "00" * 32, "32 bytes"),
    ],
)
def test_header_arguments(field: str, value: object, message: str) -> None:
    args: dict[str, Any] = vars_of(BlockHeader.parse(GENESIS_HEADER))
    args[field] = value
    with pytest.raises(BlockError, match=message):
        serialize_header(**args)


def vars_of(header: BlockHeader) -> dict[str, Any]:
    return {f.name: getattr(header, f.name) for f in fields(header)}


def test_header_length() -> None:
    with pytest.raises(BlockError, match="80 bytes"):
        BlockHeader.parse(GENESIS_HEADER[:79])


def _solve_for(template_vector: Vector, *, witness: bool) -> tuple[BlockTemplate, bytes, bytes]:
    """Build our own coinbase for the vector's template and a header for it (any nonce)."""
    t = template_vector.template
    if not witness:
        t = replace(t, default_witness_commitment=None)
    payout = address_to_script("1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa", Network.MAINNET)
    parts = build_coinbase(t, payout, extranonce1_size=4, extranonce2_size=4, pool_tag=b"sk")
    en1, en2 = b"\x00\x00\x00\x01", b"\x00\x00\x00\x02"
    result = check_share(
        parts.coinb1,
        en1,
        en2,
        parts.coinb2,
        t.merkle_branch_bytes,
        t.version,
        t.prevhash,
        t.curtime,
        t.nbits,
        0,
        t.network_target,
        t.network_target,
    )
    return t, result.header, parts.join(en1, en2)


def test_block_without_witness_commitment_has_no_witness(testnet_vector: Vector) -> None:
    t, header, coinbase = _solve_for(testnet_vector, witness=False)
    block = assemble_block(t, header, coinbase)
    assert block[:80] == header
    # 1 + 14 transactions: one count byte, then the coinbase exactly as hashed.
    assert block[80] == 15
    assert block[81 : 81 + len(coinbase)] == coinbase
    _, txs = parse_block(block)
    assert not txs[0].has_witness
    assert txs[0].serialize() == coinbase


def test_block_with_witness_commitment_has_the_coinbase_witness(testnet_vector: Vector) -> None:
    t, header, coinbase = _solve_for(testnet_vector, witness=True)
    block = assemble_block(t, header, coinbase)
    parsed_header, txs = parse_block(block)
    assert txs[0].inputs[0].witness == (bytes(32),)
    # The header commits to the non-witness txid either way.
    assert fold_branch(txs[0].txid(), t.merkle_branch) == parsed_header.merkle_root
    assert txs[0].serialize(witness=False) == coinbase


def test_assemble_refuses_mismatched_parts(testnet_vector: Vector) -> None:
    t = testnet_vector.template
    header = bytes.fromhex(testnet_vector.expected["header_hex"])
    coinbase = testnet_vector.coinbase_nowitness
    with pytest.raises(BlockError, match="80 bytes"):
        assemble_block(t, header[:79], coinbase)
    with pytest.raises(BlockError, match="prevhash"):
        assemble_block(t, header[:4] + bytes(32) + header[36:], coinbase)
    with pytest.raises(BlockError, match="merkle root"):
        assemble_block(t, header[:36] + bytes(32) + header[68:], coinbase)
    with pytest.raises(BlockError, match="non-witness form"):
        assemble_block(t, header, testnet_vector.coinbase_witness)
    with pytest.raises(BlockError, match="does not parse"):
        assemble_block(t, header, coinbase + b"\x00")


def test_parse_block_is_strict(testnet_vector: Vector) -> None:
    block = assemble_block(
        testnet_vector.template,
        bytes.fromhex(testnet_vector.expected["header_hex"]),
        testnet_vector.coinbase_nowitness,
    )
    with pytest.raises(BlockError, match="trailing"):
        parse_block(block + b"\x00")
    with pytest.raises(BlockError, match="does not parse"):
        parse_block(block[:-1])
    with pytest.raises(BlockError, match="no transactions"):
        parse_block(block[:80] + b"\x00")
