"""A getblocktemplate result as a checked, precomputed value.

Rules:
- `BlockTemplate.from_gbt` is strict about the fields a pool relies on: each must be present
  (unless marked optional) and of the right JSON type, hex of the exact length, integers in
  range. Anything else raises `TemplateError` naming the field. Unknown keys are ignored: nodes
  add fields over time and a pool should not break on them.
- Optional: `default_witness_commitment` (absent on non-segwit chains), `coinbaseaux`, `target`
  (checked against `bits` when present) and each transaction's `hash` (its wtxid; nodes without
  segwit may omit it, and then it equals the txid).
- Hashes are stored as bytes in internal order; RPC hex is display order (reversed).
- What every job built from the template needs is computed once here: prevhash bytes, the
  prevhash as mining.notify sends it, the coinbase merkle branch, nbits and the network target.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from stratumkit.chain.errors import TargetError, TemplateError
from stratumkit.chain.merkle import WITNESS_COMMITMENT_HEADER, merkle_branch
from stratumkit.chain.targets import nbits_to_target

__all__ = [
    "MAX_MONEY",
    "BlockTemplate",
    "TemplateTransaction",
    "prevhash_from_stratum",
    "stratum_prevhash",
]

#: 21 million coins in satoshis: no coinbase may pay more.
MAX_MONEY = 21_000_000 * 100_000_000
_HEXDIGITS = frozenset(string.hexdigits)


def stratum_prevhash(prevhash: bytes) -> str:
    """The prevhash as mining.notify sends it: internal-order bytes, each 4-byte word reversed.

    This is the historical quirk of Stratum V1 (the first miners hashed the header as big-endian
    32-bit words); miners undo it before hashing.
    """
    if len(prevhash) != 32:
        raise TemplateError(f"prevhash must be 32 bytes, got {len(prevhash)}")
    return b"".join(prevhash[i : i + 4][::-1] for i in range(0, 32, 4)).hex()


def prevhash_from_stratum(value: str) -> bytes:
    """Inverse of `stratum_prevhash`: the internal-order prevhash bytes."""
    raw = _parse_hex("prevhash", value, 32)
    return b"".join(raw[i : i + 4][::-1] for i in range(0, 32, 4))


@dataclass(frozen=True, slots=True)
class TemplateTransaction:
    """One non-coinbase transaction of the template, put into the block verbatim."""

    data: bytes
    txid: bytes  # internal byte order
    wtxid: bytes  # internal byte order

    def __post_init__(self) -> None:
        if len(self.txid) != 32 or len(self.wtxid) != 32:
            raise TemplateError("txid and wtxid must be 32 bytes")
        if not self.data:
            raise TemplateError("transaction data is empty")


@dataclass(frozen=True, slots=True)
class BlockTemplate:
    version: int
    prevhash: bytes  # internal byte order
    transactions: tuple[TemplateTransaction, ...] = field(repr=False)
    coinbasevalue: int
    curtime: int
    mintime: int
    nbits: int
    height: int
    default_witness_commitment: bytes | None = None  # the whole output script
    coinbaseaux: tuple[tuple[str, bytes], ...] = ()
    target: int | None = None  # as the node sent it, if it did
    # Derived in __post_init__:
    prevhash_stratum: str = field(init=False)
    merkle_branch: tuple[bytes, ...] = field(init=False, repr=False)
    network_target: int = field(init=False, repr=False)

    def __post_init__(self) -> None:
        _check_uint("version", self.version, 0xFFFF_FFFF)
        if len(self.prevhash) != 32:
            raise TemplateError(f"prevhash must be 32 bytes, got {len(self.prevhash)}")
        _check_uint("coinbasevalue", self.coinbasevalue, MAX_MONEY)
        _check_uint("curtime", self.curtime, 0xFFFF_FFFF)
        _check_uint("mintime", self.mintime, 0xFFFF_FFFF)
        _check_uint("height", self.height, 0x7FFF_FFFF)
        try:
            network_target = nbits_to_target(self.nbits)
        except TargetError as exc:
            raise TemplateError(f"bits: {exc}") from None
        if self.target is not None and self.target != network_target:
            raise TemplateError(
                f"target {self.target:064x} disagrees with bits {self.nbits:08x} ({network_target:064x})"
            )
        commitment = self.default_witness_commitment
        if commitment is not None and (len(commitment) != 38 or not commitment.startswith(WITNESS_COMMITMENT_HEADER)):
            raise TemplateError(f"default_witness_commitment is not a BIP141 commitment script: {commitment.hex()}")
        object.__setattr__(self, "prevhash_stratum", stratum_prevhash(self.prevhash))
        branch = merkle_branch([tx.txid for tx in self.transactions])
        object.__setattr__(self, "merkle_branch", tuple(branch))
        object.__setattr__(self, "network_target", network_target)

    @classmethod
    def from_gbt(cls, result: Mapping[str, Any]) -> BlockTemplate:
        """Parse the `result` object of a getblocktemplate call."""
        if not isinstance(result, Mapping):
            raise TemplateError(f"template must be a JSON object, not {type(result).__name__}")
        raw_txs = _require(result, "transactions", list)
        transactions = tuple(_parse_transaction(i, tx) for i, tx in enumerate(raw_txs))
        commitment = result.get("default_witness_commitment")
        target = result.get("target")
        return cls(
            version=_uint_field(result, "version", 0xFFFF_FFFF),
            prevhash=_parse_hex("previousblockhash", _require(result, "previousblockhash", str), 32)[::-1],
            transactions=transactions,
            coinbasevalue=_uint_field(result, "coinbasevalue", MAX_MONEY),
            curtime=_uint_field(result, "curtime", 0xFFFF_FFFF),
            mintime=_uint_field(result, "mintime", 0xFFFF_FFFF),
            nbits=int.from_bytes(_parse_hex("bits", _require(result, "bits", str), 4), "big"),
            height=_uint_field(result, "height", 0x7FFF_FFFF),
            default_witness_commitment=(
                None
                if commitment is None
                else _parse_hex(
                    "default_witness_commitment",
                    _typed("default_witness_commitment", commitment, str),
                )
            ),
            coinbaseaux=_parse_coinbaseaux(result.get("coinbaseaux")),
            target=(
                None
                if target is None
                else int.from_bytes(_parse_hex("target", _typed("target", target, str), 32), "big")
            ),
        )

    # -- views -----------------------------------------------------------------------------

    @property
    def previousblockhash(self) -> str:
        """The previous block's hash in display (RPC) hex."""
        return self.prevhash[::-1].hex()

    @property
    def bits(self) -> str:
        return f"{self.nbits:08x}"

    @property
    def has_witness_commitment(self) -> bool:
        return self.default_witness_commitment is not None

    @property
    def stratum_merkle_branch(self) -> list[str]:
        """The merkle branch as mining.notify sends it: hex of the internal-order hashes."""
        return [h.hex() for h in self.merkle_branch]

    @property
    def merkle_branch_bytes(self) -> bytes:
        """The branch concatenated, the form `stratumkit.hashing.check_share` takes."""
        return b"".join(self.merkle_branch)

    @property
    def txids(self) -> list[bytes]:
        return [tx.txid for tx in self.transactions]

    @property
    def wtxids(self) -> list[bytes]:
        return [tx.wtxid for tx in self.transactions]


# --- JSON field parsing ------------------------------------------------------------------------


def _require(obj: Mapping[str, Any], key: str, kind: type) -> Any:
    if key not in obj:
        raise TemplateError(f"missing field {key!r}")
    return _typed(key, obj[key], kind)


def _typed(key: str, value: Any, kind: type) -> Any:
    # bool is an int in Python but never a number in a template.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise TemplateError(f"field {key!r} must be {kind.__name__}, not {type(value).__name__}")
    return value


def _check_uint(key: str, value: int, maximum: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TemplateError(f"field {key!r} must be int, not {type(value).__name__}")
    if not 0 <= value <= maximum:
        raise TemplateError(f"field {key!r} out of range [0, {maximum}]: {value}")
    return value


def _uint_field(obj: Mapping[str, Any], key: str, maximum: int) -> int:
    return _check_uint(key, _require(obj, key, int), maximum)


def _parse_hex(key: str, value: str, length: int | None = None) -> bytes:
    # bytes.fromhex would accept spaces; a template field never has any.
    if len(value) % 2 or not _HEXDIGITS.issuperset(value):
        raise TemplateError(f"field {key!r} is not hex: {value[:80]!r}")
    raw = bytes.fromhex(value)
    if length is not None and len(raw) != length:
        raise TemplateError(f"field {key!r} must be {length} bytes, got {len(raw)}")
    return raw


def _parse_transaction(index: int, tx: Any) -> TemplateTransaction:
    where = f"transactions[{index}]"
    if not isinstance(tx, Mapping):
        raise TemplateError(f"{where} must be an object, not {type(tx).__name__}")
    data = _parse_hex(f"{where}.data", _require(tx, "data", str))
    txid = _parse_hex(f"{where}.txid", _require(tx, "txid", str), 32)[::-1]
    wtxid_hex = tx.get("hash")
    wtxid = (
        txid if wtxid_hex is None else _parse_hex(f"{where}.hash", _typed(f"{where}.hash", wtxid_hex, str), 32)[::-1]
    )
    if not data:
        raise TemplateError(f"{where}.data is empty")
    return TemplateTransaction(data=data, txid=txid, wtxid=wtxid)


def _parse_coinbaseaux(value: Any) -> tuple[tuple[str, bytes], ...]:
    if value is None:
        return ()
    aux = _typed("coinbaseaux", value, Mapping)
    out = []
    for key in sorted(aux):
        if not isinstance(key, str):
            raise TemplateError("coinbaseaux keys must be strings")
        out.append((key, _parse_hex(f"coinbaseaux.{key}", _typed(f"coinbaseaux.{key}", aux[key], str))))
    return tuple(out)
