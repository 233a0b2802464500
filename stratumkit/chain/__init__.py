"""Pure Bitcoin primitives for the pool: no I/O, no clock, no logging.

Modules, lowest first: `errors`, `serialize` (integers, compact sizes, script pushes, BIP34),
`transaction`, `targets` (nbits, targets, difficulty), `address` (payout scripts), `merkle`
(roots, the Stratum branch, witness commitment), `template` (getblocktemplate results),
`coinbase` (the split coinbase) and `block` (headers and submitblock bytes).

Every hash is bytes in internal order; display (RPC) hex is the reverse. Every error is a
`ChainError` (a `ValueError`).
"""

from stratumkit.chain.address import Address, AddressKind, Network, address_to_script
from stratumkit.chain.block import BlockHeader, assemble_block, parse_block, serialize_header
from stratumkit.chain.coinbase import CoinbaseParts, build_coinbase, coinbase_with_witness
from stratumkit.chain.errors import (
    AddressError,
    BlockError,
    ChainError,
    CoinbaseError,
    MerkleError,
    SerializationError,
    TargetError,
    TemplateError,
)
from stratumkit.chain.merkle import merkle_branch, merkle_root, witness_commitment_script
from stratumkit.chain.targets import (
    difficulty_to_target,
    nbits_to_target,
    network_difficulty,
    target_to_difficulty,
    target_to_nbits,
)
from stratumkit.chain.template import BlockTemplate, TemplateTransaction
from stratumkit.chain.transaction import Transaction, parse_transaction

__all__ = [
    "Address",
    "AddressError",
    "AddressKind",
    "BlockError",
    "BlockHeader",
    "BlockTemplate",
    "ChainError",
    "CoinbaseError",
    "CoinbaseParts",
    "MerkleError",
    "Network",
    "SerializationError",
    "TargetError",
    "TemplateError",
    "TemplateTransaction",
    "Transaction",
    "address_to_script",
    "assemble_block",
    "build_coinbase",
    "coinbase_with_witness",
    "difficulty_to_target",
    "merkle_branch",
    "merkle_root",
    "nbits_to_target",
    "network_difficulty",
    "parse_block",
    "parse_transaction",
    "serialize_header",
    "target_to_difficulty",
    "target_to_nbits",
    "witness_commitment_script",
]
