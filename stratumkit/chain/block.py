"""Block headers and whole blocks for submitblock.

Rules:
- A header is 80 bytes: version, prevhash, merkle root (both internal order), ntime, nbits, nonce,
  integers little-endian. Its sha256d, reversed, is the block hash explorers show.
- A block is header | compact size tx count | coinbase | the template's transactions verbatim.
- The coinbase goes in WITH its witness iff the template has a witness commitment, and WITHOUT
  one otherwise: a node that has no segwit (or a template without segwit) rejects a block whose
  coinbase carries a witness. The merkle root always uses the non-witness coinbase txid.
- `assemble_block` checks that the header belongs to this template and coinbase (prevhash and
  merkle root); a mismatch means the caller paired the wrong job, and submitting would only earn a
  rejection.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from stratumkit.chain.coinbase import coinbase_with_witness
from stratumkit.chain.errors import BlockError, CoinbaseError, SerializationError
from stratumkit.chain.merkle import fold_branch
from stratumkit.chain.serialize import ByteReader, compact_size
from stratumkit.chain.template import BlockTemplate
from stratumkit.chain.transaction import Transaction, parse_transaction, read_transaction
from stratumkit.hashing import sha256d

__all__ = ["HEADER_SIZE", "BlockHeader", "assemble_block", "parse_block", "serialize_header"]

HEADER_SIZE = 80
_HEADER = struct.Struct("<I32s32sIII")


def serialize_header(version: int, prevhash: bytes, merkle_root: bytes, ntime: int, nbits: int, nonce: int) -> bytes:
    """The 80-byte header; `prevhash` and `merkle_root` in internal byte order."""
    for name, value in (("version", version), ("ntime", ntime), ("nbits", nbits), ("nonce", nonce)):
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 0xFFFF_FFFF:
            raise BlockError(f"{name} must be a uint32, got {value!r}")
    for name, digest in (("prevhash", prevhash), ("merkle_root", merkle_root)):
        if not isinstance(digest, bytes) or len(digest) != 32:
            raise BlockError(f"{name} must be 32 bytes")
    return _HEADER.pack(version, prevhash, merkle_root, ntime, nbits, nonce)


@dataclass(frozen=True, slots=True)
class BlockHeader:
    version: int
    prevhash: bytes  # internal byte order
    merkle_root: bytes  # internal byte order
    ntime: int
    nbits: int
    nonce: int

    @classmethod
    def parse(cls, header: bytes) -> BlockHeader:
        if len(header) != HEADER_SIZE:
            raise BlockError(f"a header is {HEADER_SIZE} bytes, got {len(header)}")
        return cls(*_HEADER.unpack(header))

    def serialize(self) -> bytes:
        return serialize_header(self.version, self.prevhash, self.merkle_root, self.ntime, self.nbits, self.nonce)

    def hash(self) -> bytes:
        """sha256d of the header, internal byte order (compare with a target as little-endian)."""
        return sha256d(self.serialize())

    def hash_hex(self) -> str:
        """The block hash as explorers and RPC show it."""
        return self.hash()[::-1].hex()


def assemble_block(template: BlockTemplate, header: bytes, coinbase: bytes) -> bytes:
    """The full block for submitblock, from the solved header and the NON-witness coinbase."""
    parsed = BlockHeader.parse(header)
    if parsed.prevhash != template.prevhash:
        raise BlockError("header prevhash is not the template's previous block")
    try:
        coinbase_tx = parse_transaction(coinbase)
    except SerializationError as exc:
        raise BlockError(f"coinbase does not parse: {exc}") from None
    if coinbase_tx.has_witness:
        raise BlockError("pass the coinbase in its non-witness form; the witness is added here")
    root = fold_branch(sha256d(coinbase), template.merkle_branch)
    if root != parsed.merkle_root:
        raise BlockError(
            f"header merkle root {parsed.merkle_root[::-1].hex()} does not match this coinbase "
            f"and template ({root[::-1].hex()})"
        )
    if template.has_witness_commitment:
        try:
            coinbase = coinbase_with_witness(coinbase)
        except CoinbaseError as exc:
            raise BlockError(str(exc)) from None
    parts = [bytes(header), compact_size(1 + len(template.transactions)), bytes(coinbase)]
    parts += [tx.data for tx in template.transactions]
    return b"".join(parts)


def parse_block(block: bytes) -> tuple[BlockHeader, list[Transaction]]:
    """Decode a whole block strictly (no trailing bytes); the inverse of `assemble_block`."""
    reader = ByteReader(block)
    try:
        header = BlockHeader.parse(reader.read(HEADER_SIZE))
        txs = [read_transaction(reader) for _ in range(reader.compact_size())]
        reader.finish()
    except SerializationError as exc:
        raise BlockError(f"block does not parse: {exc}") from None
    if not txs:
        raise BlockError("block has no transactions")
    return header, txs
