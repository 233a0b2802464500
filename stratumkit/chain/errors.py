"""The exceptions of stratumkit.chain.

Every one is a `ValueError` raised for bad input (bytes, JSON, addresses, numbers), and all share
`ChainError`, so a caller that only wants "this input is not usable" catches one class. None is
raised for a bug of ours: those stay `AssertionError`/`TypeError`.
"""

from __future__ import annotations


class ChainError(ValueError):
    """Base class: some Bitcoin data handed to stratumkit.chain is malformed or out of range."""


class SerializationError(ChainError):
    """Bytes that do not decode as the structure asked for (short, trailing or non-canonical)."""


class TargetError(ChainError):
    """An nbits, target or difficulty that has no meaning (negative, zero, overflowing)."""


class AddressError(ChainError):
    """An address that cannot be paid to on the chosen network."""


class MerkleError(ChainError):
    """Hashes of the wrong length or an empty leaf list."""


class TemplateError(ChainError):
    """A getblocktemplate result with a missing or mistyped field."""


class CoinbaseError(ChainError):
    """A coinbase that cannot be built as asked (scriptSig too long, bad payout script)."""


class BlockError(ChainError):
    """A header or block that cannot be assembled from the parts given."""
