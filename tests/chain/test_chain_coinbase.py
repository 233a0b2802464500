from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stratumkit.chain.address import Network, address_to_script
from stratumkit.chain.coinbase import (
    MAX_SCRIPT_SIG,
    CoinbaseParts,
    build_coinbase,
    coinbase_with_witness,
)
from stratumkit.chain.errors import CoinbaseError
from stratumkit.chain.serialize import push_data, push_height, read_height_push
from stratumkit.chain.template import BlockTemplate
from stratumkit.chain.transaction import parse_transaction
from stratumkit.hashing import sha256d

from .chain_vectors import VECTORS_DIR, Vector, load_vector

PAYOUT = address_to_script("bc1qvyq0cc6rahyvsazfdje0twl7ez82ndmuac2lhv", Network.MAINNET)


def _build(template: BlockTemplate, **kwargs: object) -> CoinbaseParts:
    args: dict[str, object] = {"extranonce1_size": 4, "extranonce2_size": 8}
    args.update(kwargs)
    return build_coinbase(template, PAYOUT, **args)  # type: ignore[arg-type]


def test_coinbase_parses_back(vector: Vector) -> None:
    t = vector.template
    parts = _build(t, pool_tag=b"/stratumkit/")
    en1, en2 = b"\x11\x22\x33\x44", bytes(range(8))
    tx = parse_transaction(parts.join(en1, en2))

    assert tx.is_coinbase and not tx.has_witness
    assert tx.version == 1 and tx.locktime == 0
    (txin,) = tx.inputs
    assert txin.sequence == 0xFFFF_FFFF
    assert read_height_push(txin.script_sig) == t.height
    assert txin.script_sig.endswith(push_data(b"/stratumkit/") + b"\x0c" + en1 + en2)
    assert len(txin.script_sig) <= MAX_SCRIPT_SIG

    payout, commitment = tx.outputs
    assert (payout.value, payout.script_pubkey) == (t.coinbasevalue, PAYOUT)
    assert (commitment.value, commitment.script_pubkey) == (0, t.default_witness_commitment)


def test_extranonce_sits_between_the_parts(vector: Vector) -> None:
    parts = _build(vector.template)
    tx_a = parts.join(bytes(4), bytes(8))
    tx_b = parts.join(b"\xff" * 4, b"\xee" * 8)
    assert len(tx_a) == len(tx_b) == len(parts.coinb1) + 12 + len(parts.coinb2)
    # Only the extranonce bytes differ, so only the txid changes.
    diff = [i for i, (a, b) in enumerate(zip(tx_a, tx_b, strict=True)) if a != b]
    assert diff == list(range(len(parts.coinb1), len(parts.coinb1) + 12))
    assert sha256d(tx_a) != sha256d(tx_b)


def test_no_witness_commitment_means_one_output(testnet_vector: Vector) -> None:
    t = replace(testnet_vector.template, default_witness_commitment=None)
    tx = parse_transaction(_build(t).join(bytes(4), bytes(8)))
    assert [(o.value, o.script_pubkey) for o in tx.outputs] == [(t.coinbasevalue, PAYOUT)]


def test_coinbaseaux_is_pushed_after_the_height(testnet_vector: Vector) -> None:
    aux = (("flags", bytes.fromhex("062f503253482f")), ("empty", b""))
    t = replace(testnet_vector.template, coinbaseaux=aux)
    tx = parse_transaction(_build(t).join(bytes(4), bytes(8)))
    script_sig = tx.inputs[0].script_sig
    assert script_sig.startswith(push_height(t.height) + push_data(aux[0][1]) + b"\x0c")


@pytest.mark.parametrize("height", [1, 2, 16, 17, 127, 128, 255, 256, 65535, 65536])
def test_small_heights(testnet_vector: Vector, height: int) -> None:
    t = replace(testnet_vector.template, height=height)
    tx = parse_transaction(_build(t, extranonce1_size=1, extranonce2_size=0).join(b"\x05", b""))
    script_sig = tx.inputs[0].script_sig
    assert script_sig.startswith(push_height(height))
    assert read_height_push(script_sig) == height
    if height <= 16:
        assert script_sig[0] == 0x50 + height  # OP_1..OP_16, as consensus expects


def test_pool_tag_is_cut_to_fit(testnet_vector: Vector) -> None:
    t = testnet_vector.template
    tag = bytes(range(32, 127)) * 2
    parts = _build(t, pool_tag=tag)
    script_sig = parse_transaction(parts.join(bytes(4), bytes(8))).inputs[0].script_sig
    assert len(script_sig) == MAX_SCRIPT_SIG
    height_len = len(push_height(t.height))
    pushed_tag = script_sig[height_len : MAX_SCRIPT_SIG - 13]
    assert pushed_tag[0] == 0x4C  # OP_PUSHDATA1: the tag is longer than 75 bytes
    assert pushed_tag == push_data(tag[: len(pushed_tag) - 2])


@settings(max_examples=60)
@given(
    height=st.integers(min_value=1, max_value=2**31 - 1),
    en1=st.integers(min_value=0, max_value=16),
    en2=st.integers(min_value=0, max_value=16),
    tag=st.binary(max_size=120),
    value=st.integers(min_value=0, max_value=21_000_000 * 100_000_000),
)
def test_any_coinbase_round_trips(height: int, en1: int, en2: int, tag: bytes, value: int) -> None:
    testnet = load_vector(VECTORS_DIR / "testnet_924634_gbt.json")
    t = replace(testnet.template, height=height, coinbasevalue=value)
    try:
        parts = _build(t, extranonce1_size=en1, extranonce2_size=en2, pool_tag=tag)
    except CoinbaseError as exc:
        # The only way to fail here: a scriptSig below 2 bytes (tiny height, nothing else).
        assert "consensus minimum" in str(exc)
        assert len(push_height(height)) + en1 + en2 + (1 if en1 + en2 else 0) < 2 and not tag
        return
    extranonce = bytes(range(en1 + en2))
    tx = parse_transaction(parts.join(extranonce[:en1], extranonce[en1:]))
    script_sig = tx.inputs[0].script_sig
    assert 2 <= len(script_sig) <= MAX_SCRIPT_SIG
    assert read_height_push(script_sig) == height
    assert script_sig.endswith(extranonce)
    assert tx.outputs[0].value == value


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"extranonce1_size": 40, "extranonce2_size": 36}, "does not fit one push"),
        ({"extranonce1_size": -1}, "non-negative"),
        ({"extranonce2_size": True}, "non-negative"),
        ({"pool_tag": "tag"}, "pool_tag must be bytes"),
    ],
)
def test_bad_arguments(testnet_vector: Vector, kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(CoinbaseError, match=message):
        _build(testnet_vector.template, **kwargs)


def test_bad_payout_and_sizes(testnet_vector: Vector) -> None:
    t = testnet_vector.template
    with pytest.raises(CoinbaseError, match="payout_script"):
        build_coinbase(t, b"", extranonce1_size=4, extranonce2_size=4)
    with pytest.raises(CoinbaseError, match="consensus minimum"):
        _build(replace(t, height=1), extranonce1_size=0, extranonce2_size=0)
    big_aux = (("flags", bytes(90)),)
    with pytest.raises(CoinbaseError, match="a scriptSig holds 100"):
        _build(replace(t, coinbaseaux=big_aux))


def test_coinbase_with_witness_matches_the_real_block(vector: Vector) -> None:
    full = coinbase_with_witness(vector.coinbase_nowitness)
    assert full == vector.coinbase_witness
    assert parse_transaction(full).txid() == sha256d(vector.coinbase_nowitness)


def test_coinbase_with_witness_refuses(testnet_vector: Vector) -> None:
    with pytest.raises(CoinbaseError, match="already carries a witness"):
        coinbase_with_witness(testnet_vector.coinbase_witness)
    with pytest.raises(CoinbaseError, match="not a coinbase"):
        coinbase_with_witness(testnet_vector.template.transactions[0].data)
    with pytest.raises(CoinbaseError, match="not a transaction"):
        coinbase_with_witness(testnet_vector.coinbase_nowitness + b"\x00")
