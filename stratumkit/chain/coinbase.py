"""The pool's coinbase transaction, split around the extranonce for Stratum.

Layout of the NON-witness serialization (what the txid and so the merkle root commit to):

    coinb1 = version | 01 | 00*32 ffffffff | len(scriptSig) | scriptSig prefix | push(n)
    then     extranonce1 | extranonce2                        (n bytes, the end of the scriptSig)
    coinb2 = ffffffff | output count | payout output | [witness commitment output] | 00000000

Rules:
- The scriptSig starts with the BIP34 height push (consensus checks it), then the template's
  coinbaseaux values and the pool tag as data pushes, then the extranonce as one data push, so the
  whole scriptSig stays a readable push-only script. Its length byte counts the extranonce.
- The scriptSig must be 2..100 bytes (consensus). The pool tag is cosmetic, so it is cut short to
  fit; a height + aux + extranonce that does not fit is an error.
- The witness commitment output (value 0) is added iff the template carries
  `default_witness_commitment`; a block for such a template must then carry the coinbase witness
  (`coinbase_with_witness`), and a block for a template without one must not.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from stratumkit.chain.errors import CoinbaseError, SerializationError
from stratumkit.chain.merkle import WITNESS_RESERVED_VALUE
from stratumkit.chain.serialize import compact_size, push_data, push_height, u32le, u64le
from stratumkit.chain.template import BlockTemplate
from stratumkit.chain.transaction import TxIn, parse_transaction

__all__ = [
    "MAX_SCRIPT_SIG",
    "MIN_SCRIPT_SIG",
    "CoinbaseParts",
    "build_coinbase",
    "coinbase_with_witness",
]

#: Consensus bounds on a coinbase scriptSig's length (Bitcoin's bad-cb-length rule).
MIN_SCRIPT_SIG = 2
MAX_SCRIPT_SIG = 100
#: A payout script longer than this is not a standard output script (MAX_SCRIPT_SIZE is 10,000).
_MAX_PAYOUT_SCRIPT = 10_000
_NULL_PREVOUT = bytes(32) + b"\xff\xff\xff\xff"
_FINAL_SEQUENCE = b"\xff\xff\xff\xff"
_LOCKTIME_ZERO = bytes(4)


@dataclass(frozen=True, slots=True)
class CoinbaseParts:
    """coinb1 | extranonce1 | extranonce2 | coinb2 is the serialized non-witness coinbase."""

    coinb1: bytes
    coinb2: bytes

    def join(self, extranonce1: bytes, extranonce2: bytes) -> bytes:
        """The full non-witness coinbase for one pair of extranonces (sizes are the caller's)."""
        return self.coinb1 + extranonce1 + extranonce2 + self.coinb2


def build_coinbase(
    template: BlockTemplate,
    payout_script: bytes,
    *,
    extranonce1_size: int,
    extranonce2_size: int,
    pool_tag: bytes = b"",
    tx_version: int = 1,
) -> CoinbaseParts:
    """Build the split coinbase paying the whole `coinbasevalue` to `payout_script`."""
    if not isinstance(payout_script, bytes) or not 0 < len(payout_script) <= _MAX_PAYOUT_SCRIPT:
        raise CoinbaseError("payout_script must be 1..10000 bytes")
    if not isinstance(pool_tag, bytes):
        raise CoinbaseError(f"pool_tag must be bytes, not {type(pool_tag).__name__}")
    for name, size in (
        ("extranonce1_size", extranonce1_size),
        ("extranonce2_size", extranonce2_size),
    ):
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise CoinbaseError(f"{name} must be a non-negative int, got {size!r}")
    extranonce_size = extranonce1_size + extranonce2_size
    if extranonce_size > 75:  # one direct push opcode
        raise CoinbaseError(f"extranonce of {extranonce_size} bytes does not fit one push")

    prefix = push_height(template.height)
    for key, value in template.coinbaseaux:
        if value:
            try:
                prefix += push_data(value)
            except SerializationError as exc:
                raise CoinbaseError(f"coinbaseaux {key!r}: {exc}") from None
    extranonce_push = bytes((extranonce_size,)) if extranonce_size else b""
    fixed = len(prefix) + len(extranonce_push) + extranonce_size
    if fixed > MAX_SCRIPT_SIG:
        raise CoinbaseError(
            f"height, coinbaseaux and extranonce take {fixed} bytes; a scriptSig holds {MAX_SCRIPT_SIG}"
        )
    prefix += _fitted_tag_push(pool_tag, MAX_SCRIPT_SIG - fixed)
    script_sig_len = len(prefix) + len(extranonce_push) + extranonce_size
    if script_sig_len < MIN_SCRIPT_SIG:
        raise CoinbaseError(
            f"scriptSig of {script_sig_len} byte(s) is below the consensus minimum of "
            f"{MIN_SCRIPT_SIG}; use an extranonce or a pool tag"
        )

    outputs = [(template.coinbasevalue, payout_script)]
    if template.default_witness_commitment is not None:
        outputs.append((0, template.default_witness_commitment))

    coinb1 = b"".join(
        [
            u32le(tx_version),
            b"\x01",
            _NULL_PREVOUT,
            compact_size(script_sig_len),
            prefix,
            extranonce_push,
        ]
    )
    coinb2 = b"".join(
        [
            _FINAL_SEQUENCE,
            compact_size(len(outputs)),
            *(u64le(value) + compact_size(len(script)) + script for value, script in outputs),
            _LOCKTIME_ZERO,
        ]
    )
    return CoinbaseParts(coinb1, coinb2)


def _fitted_tag_push(tag: bytes, room: int) -> bytes:
    """The longest push of a prefix of `tag` that takes at most `room` bytes (b"" if none)."""
    for length in range(min(len(tag), room), 0, -1):
        push = push_data(tag[:length])
        if len(push) <= room:
            return push
    return b""


def coinbase_with_witness(nonwitness_tx: bytes) -> bytes:
    """The coinbase as a segwit block carries it: marker, flag and the 32-zero-byte reserved value.

    Its txid is unchanged (the txid never covers the witness); only its wtxid differs, and the
    witness commitment defines the coinbase's wtxid as zeros anyway.
    """
    try:
        tx = parse_transaction(nonwitness_tx)
    except SerializationError as exc:
        raise CoinbaseError(f"not a transaction: {exc}") from None
    if tx.has_witness:
        raise CoinbaseError("coinbase already carries a witness")
    if not tx.is_coinbase:
        raise CoinbaseError("not a coinbase transaction (needs one input spending the null outpoint)")
    (txin,) = tx.inputs
    witnessed = TxIn(txin.prevout, txin.script_sig, txin.sequence, (WITNESS_RESERVED_VALUE,))
    return replace(tx, inputs=(witnessed,)).serialize(witness=True)
