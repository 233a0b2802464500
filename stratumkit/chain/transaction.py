"""Transactions as values: parse strictly, serialize with or without witness, txid and wtxid.

Rules:
- `parse_transaction` accepts exactly one encoding per transaction: no trailing bytes, canonical
  compact sizes, and a witness marker only when some input carries witness data (Bitcoin Core's
  "superfluous witness record" rule).
- The txid is always the hash of the NON-witness serialization; the wtxid covers the witness.
  Hashes are in internal byte order; reverse them for display.
"""

from __future__ import annotations

from dataclasses import dataclass

from stratumkit.chain.errors import SerializationError
from stratumkit.chain.serialize import ByteReader, compact_size, u32le, u64le
from stratumkit.hashing import sha256d

__all__ = ["OutPoint", "Transaction", "TxIn", "TxOut", "parse_transaction", "read_transaction"]

_MARKER_FLAG = b"\x00\x01"


@dataclass(frozen=True, slots=True)
class OutPoint:
    txid: bytes  # internal byte order
    index: int

    @property
    def is_null(self) -> bool:
        """The outpoint a coinbase input spends: all-zero txid, index 0xffffffff."""
        return self.txid == bytes(32) and self.index == 0xFFFF_FFFF


@dataclass(frozen=True, slots=True)
class TxIn:
    prevout: OutPoint
    script_sig: bytes
    sequence: int
    witness: tuple[bytes, ...] = ()


@dataclass(frozen=True, slots=True)
class TxOut:
    value: int  # satoshis
    script_pubkey: bytes


@dataclass(frozen=True, slots=True)
class Transaction:
    version: int
    inputs: tuple[TxIn, ...]
    outputs: tuple[TxOut, ...]
    locktime: int

    @property
    def has_witness(self) -> bool:
        return any(txin.witness for txin in self.inputs)

    @property
    def is_coinbase(self) -> bool:
        return len(self.inputs) == 1 and self.inputs[0].prevout.is_null

    def serialize(self, *, witness: bool = True) -> bytes:
        """The wire form; with `witness=True` the segwit form is used only if there is a witness."""
        with_witness = witness and self.has_witness
        parts = [u32le(self.version)]
        if with_witness:
            parts.append(_MARKER_FLAG)
        parts.append(compact_size(len(self.inputs)))
        for txin in self.inputs:
            parts += [
                txin.prevout.txid,
                u32le(txin.prevout.index),
                compact_size(len(txin.script_sig)),
                txin.script_sig,
                u32le(txin.sequence),
            ]
        parts.append(compact_size(len(self.outputs)))
        for txout in self.outputs:
            parts += [
                u64le(txout.value),
                compact_size(len(txout.script_pubkey)),
                txout.script_pubkey,
            ]
        if with_witness:
            for txin in self.inputs:
                parts.append(compact_size(len(txin.witness)))
                for item in txin.witness:
                    parts += [compact_size(len(item)), item]
        parts.append(u32le(self.locktime))
        return b"".join(parts)

    def txid(self) -> bytes:
        """sha256d of the non-witness serialization, internal byte order."""
        return sha256d(self.serialize(witness=False))

    def wtxid(self) -> bytes:
        """sha256d of the full serialization (equals the txid when there is no witness)."""
        return sha256d(self.serialize(witness=True))


def read_transaction(reader: ByteReader) -> Transaction:
    """Decode one transaction at the reader's position (for blocks: many in a row)."""
    version = reader.u32()
    segwit = reader.peek(1) == b"\x00"
    if segwit:
        flag = reader.read(2)[1]
        if flag != 0x01:
            raise SerializationError(f"unknown transaction flag byte {flag:#04x}")
    inputs: list[TxIn] = []
    for _ in range(reader.compact_size()):
        prevout = OutPoint(reader.read(32), reader.u32())
        script_sig = reader.var_bytes()
        inputs.append(TxIn(prevout, script_sig, reader.u32()))
    if not inputs:
        raise SerializationError("transaction has no inputs")
    outputs: list[TxOut] = []
    for _ in range(reader.compact_size()):
        value = reader.u64()
        outputs.append(TxOut(value, reader.var_bytes()))
    if segwit:
        with_witness = []
        for txin in inputs:
            items = tuple(reader.var_bytes() for _ in range(reader.compact_size()))
            with_witness.append(TxIn(txin.prevout, txin.script_sig, txin.sequence, items))
        inputs = with_witness
        if not any(txin.witness for txin in inputs):
            raise SerializationError("witness marker present but every witness is empty")
    return Transaction(version, tuple(inputs), tuple(outputs), reader.u32())


def parse_transaction(raw: bytes) -> Transaction:
    """Decode one serialized transaction (with or without witness); trailing bytes are an error."""
    reader = ByteReader(raw)
    tx = read_transaction(reader)
    reader.finish()
    return tx
