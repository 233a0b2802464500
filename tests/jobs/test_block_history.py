"""Block history's pure parts: facts read from a block's own bytes, effort, summaries, cursors."""

from __future__ import annotations

import pytest

from stratumkit.hashing import sha256d
from stratumkit.jobs.block_history import (
    BlockFacts,
    CursorError,
    block_facts,
    block_view,
    cursor,
    effort,
    parse_cursor,
    summaries,
)
from stratumkit.jobs.blocks import FoundBlock
from stratumkit.shares.history import Round
from tests.chain.test_chain_block import GENESIS_HEADER

GENESIS_COINBASE = bytes.fromhex(
    "01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff4d04ffff001d01"
    "04455468652054696d65732030332f4a616e2f32303039204368616e63656c6c6f72206f6e206272696e6b206f66207365"
    "636f6e64206261696c6f757420666f722062616e6b73ffffffff0100f2052a01000000434104678afdb0fe5548271967f1"
    "a67130b7105cd6a828e03909a67962e0ea1f61deb649f6bc3f4cef38c4f35504e51ec112de5c384df7ba0b8d578a4c702b"
    "6bf11d5fac00000000"
)
GENESIS_BLOCK = GENESIS_HEADER + b"\x01" + GENESIS_COINBASE
DAY = 86400.0


def found(name: str, at: float, status: str = "confirmed") -> FoundBlock:
    return FoundBlock(sha256d(name.encode()).hex(), 1, "a.1", at, status, "", 1)


def test_facts_come_from_the_blocks_own_header_and_coinbase() -> None:
    assert sha256d(GENESIS_COINBASE)[::-1].hex().startswith("4a5e1e4b")  # the genesis coinbase
    assert block_facts(GENESIS_BLOCK) == BlockFacts(1.0, 50 * 100_000_000)
    assert block_facts(GENESIS_BLOCK[:120]) == BlockFacts(1.0, None)  # coinbase cut off


def test_effort_and_the_view() -> None:
    facts = BlockFacts(4.0, 625_000_000)
    block = found("x", 10.0, "pending")
    view = block_view(block, facts, Round(block.hash, 10.0, 3.0, 12))
    assert view["effort"] == 0.75 and view["round_shares"] == 12
    assert view["status"] == "submitted"  # pending at the node: what the API calls submitted
    assert {"height", "hash", "worker", "time", "status", "reward_sats", "network_difficulty"} <= set(view)
    assert effort(None, facts) is None
    assert block_view(block, facts, None)["effort"] is None


def test_summaries_count_each_window_and_average_known_efforts() -> None:
    now = 100 * DAY
    blocks = [
        found("a", now - 1 * DAY),
        found("b", now - 8 * DAY, "orphaned"),
        found("c", now - 20 * DAY),
        found("d", now - 21 * DAY, "rejected"),
    ]
    facts = {b.hash: BlockFacts(2.0, None) for b in blocks}
    rounds = {b.hash: Round(b.hash, 0, d, 1) for b, d in zip(blocks, (1.0, 5.0, 0.0, 0.0), strict=True) if d}
    rounds[blocks[3].hash] = Round(blocks[3].hash, 0, 0.0, 0)
    out = summaries(blocks, facts, rounds, now)
    assert out["7d"] == {"blocks": 1, "confirmed": 1, "average_effort": 0.5}
    # c's round is unknown; d was rejected: counted, not averaged
    assert out["30d"] == {"blocks": 4, "confirmed": 2, "average_effort": 1.5}
    assert summaries([], {}, {}, now)["7d"] == {"blocks": 0, "confirmed": 0, "average_effort": None}


def test_cursors_round_trip_and_refuse_anything_else() -> None:
    block = found("x", 1796166493.648368)
    assert parse_cursor(cursor(block)) == (block.found_at, block.hash)
    for bad in ("", "12.5", "abc:" + "00" * 32, "12.5:" + "zz" * 32, "12.5:00"):
        with pytest.raises(CursorError):
            parse_cursor(bad)
