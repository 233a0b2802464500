from __future__ import annotations

import pytest

from stratumkit.chain.errors import SerializationError
from stratumkit.chain.transaction import parse_transaction
from stratumkit.hashing import sha256d

from .chain_vectors import Vector


def test_template_transactions_round_trip(vector: Vector) -> None:
    """Every real transaction parses, re-serializes byte for byte, and hashes to the node's ids."""
    transactions = vector.template.transactions
    segwit = 0
    for tx in transactions:
        parsed = parse_transaction(tx.data)
        assert parsed.serialize() == tx.data
        assert parsed.txid() == tx.txid
        assert parsed.wtxid() == tx.wtxid
        assert not parsed.is_coinbase
        segwit += parsed.has_witness
    if vector.name.startswith("mainnet"):
        # The mainnet block is a segwit block: make sure the witness path was exercised.
        assert segwit > 100


def test_real_coinbase_both_forms(vector: Vector) -> None:
    plain = parse_transaction(vector.coinbase_nowitness)
    full = parse_transaction(vector.coinbase_witness)
    assert plain.is_coinbase and full.is_coinbase
    assert not plain.has_witness
    assert full.inputs[0].witness == (bytes(32),)
    assert plain.txid() == full.txid() == sha256d(vector.coinbase_nowitness)
    assert full.wtxid() == sha256d(vector.coinbase_witness) != full.txid()
    assert full.serialize(witness=False) == vector.coinbase_nowitness
    assert sum(o.value for o in plain.outputs) == vector.template.coinbasevalue
    assert plain.locktime == 0


def test_malformed_transactions_are_refused(testnet_vector: Vector) -> None:
    plain = testnet_vector.coinbase_nowitness
    full = testnet_vector.coinbase_witness
    with pytest.raises(SerializationError, match="trailing"):
        parse_transaction(plain + b"\x00")
    with pytest.raises(SerializationError, match="need"):
        parse_transaction(plain[:-1])
    with pytest.raises(SerializationError, match="flag"):
        parse_transaction(full[:5] + b"\x02" + full[6:])
    # Marker and flag with an empty witness: the "superfluous witness record" malleation.
    no_witness_items = parse_transaction(full)
    superfluous = plain[:4] + b"\x00\x01" + plain[4:-4] + b"\x00" * len(no_witness_items.inputs) + plain[-4:]
    with pytest.raises(SerializationError, match="witness"):
        parse_transaction(superfluous)
    # An input count written in a longer form than needed.
    with pytest.raises(SerializationError, match="non-canonical"):
        parse_transaction(plain[:4] + b"\xfd\x01\x00" + plain[5:])
    with pytest.raises(SerializationError, match="no inputs"):
        parse_transaction(bytes(4) + b"\x00\x01\x00\x00" + bytes(4))
