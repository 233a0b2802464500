"""Block history as operators read it: each found block with its reward and its effort (luck).

Pure: the rows come from the block ledger (`stratumkit.jobs.blocks`), the rounds from the share
history (`stratumkit.shares.history`); this module turns them into the `/v1/blocks` answer.

Rules:
* effort = the accepted shares' difficulty in the block's round ÷ the block's network difficulty
  (1.0 is an average round, below 1 is luck); None when the round is not known.
* A block's network difficulty is read from its own header's nBits, its reward from its own
  coinbase's outputs (subsidy plus fees), so both are right for blocks found before a restart.
* The ledger's `pending` (written, not yet answered by the node) is shown as `submitted`.
* Pages run newest first; `next` is the cursor of the last block shown (or None at the end).
* Summaries (7 and 30 days) count every block found in the window, whatever its status, and
  average the efforts known of those the node did not reject (a rejected block, most often a
  sibling that lost a race for its height, still ends its round).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from stratumkit.chain.block import HEADER_SIZE, BlockHeader
from stratumkit.chain.errors import SerializationError
from stratumkit.chain.serialize import ByteReader
from stratumkit.chain.targets import network_difficulty
from stratumkit.chain.transaction import read_transaction
from stratumkit.shares.history import Round

from .blocks import FoundBlock

#: Bytes read of a stored block for its facts: the header and a coinbase (a few hundred bytes
#: with a witness commitment; the pool's own stay far below this).
HEAD_BYTES = 16_384
#: Summary windows: name -> seconds.
WINDOWS = {"7d": 7 * 86400, "30d": 30 * 86400}
_STATUS = {"pending": "submitted"}


class CursorError(ValueError):
    """A `before` cursor that no page of this API gave."""


@dataclass(frozen=True, slots=True)
class BlockFacts:
    network_difficulty: float
    reward_sats: int | None


def block_facts(head: bytes) -> BlockFacts:
    """Network difficulty (from nBits) and reward (the coinbase's outputs) from a block's head;
    the reward is None if the coinbase does not fit in `head` or does not parse."""
    header = BlockHeader.parse(head[:HEADER_SIZE])
    difficulty = network_difficulty(header.nbits)
    reader = ByteReader(head[HEADER_SIZE:])
    try:
        reader.compact_size()
        coinbase = read_transaction(reader)
    except SerializationError:
        return BlockFacts(difficulty, None)
    return BlockFacts(difficulty, sum(out.value for out in coinbase.outputs))


def effort(round_: Round | None, facts: BlockFacts) -> float | None:
    if round_ is None or facts.network_difficulty <= 0:
        return None
    return round_.difficulty / facts.network_difficulty


def block_view(block: FoundBlock, facts: BlockFacts, round_: Round | None) -> dict[str, object]:
    return {
        "height": block.height,
        "hash": block.hash,
        "worker": block.worker,
        "time": block.found_at,
        "status": _STATUS.get(block.status, block.status),
        "reward_sats": facts.reward_sats,
        "network_difficulty": facts.network_difficulty,
        "effort": effort(round_, facts),
        "round_shares": None if round_ is None else round_.shares,
        "detail": block.detail,
    }


def summaries(
    recent: Iterable[FoundBlock], facts: Mapping[str, BlockFacts], rounds: Mapping[str, Round], now: float
) -> dict[str, dict[str, object]]:
    """{"7d": {"blocks", "confirmed", "average_effort"}, "30d": {...}} over `recent` blocks."""
    blocks = list(recent)
    out: dict[str, dict[str, object]] = {}
    for name, seconds in WINDOWS.items():
        inside = [b for b in blocks if b.found_at >= now - seconds]
        efforts = [
            e for b in inside if b.status != "rejected" and (e := effort(rounds.get(b.hash), facts[b.hash])) is not None
        ]
        out[name] = {
            "blocks": len(inside),
            "confirmed": sum(1 for b in inside if b.status == "confirmed"),
            "average_effort": sum(efforts) / len(efforts) if efforts else None,
        }
    return out


def cursor(block: FoundBlock) -> str:
    return f"{block.found_at!r}:{block.hash}"


def parse_cursor(text: str) -> tuple[float, str]:
    found_at, sep, block_hash = text.partition(":")
    try:
        value = float(found_at)
        bytes.fromhex(block_hash)
    except ValueError:
        raise CursorError(f"not a cursor of /v1/blocks: {text!r}") from None
    if not sep or len(block_hash) != 64:
        raise CursorError(f"not a cursor of /v1/blocks: {text!r}")
    return value, block_hash


__all__ = [
    "HEAD_BYTES",
    "WINDOWS",
    "BlockFacts",
    "CursorError",
    "block_facts",
    "block_view",
    "cursor",
    "effort",
    "parse_cursor",
    "summaries",
]
