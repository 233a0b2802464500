"""BlockSubmitter's decisions, against a scripted source (the real node runs in tests/e2e_node)."""

from __future__ import annotations

from collections import deque
from pathlib import Path

import trio

from stratumkit.jobs.blocks import BlockLedger, BlockSubmitter
from stratumkit.jobs.sources import SourceUnavailable


class ScriptedSource:
    """Answers submit_block and block_status from scripts; counts what it was asked."""

    name = "scripted"

    def __init__(self, submits: list[object], statuses: list[str]) -> None:
        self.submits = deque(submits)
        self.statuses = deque(statuses)
        self.submitted = 0

    async def submit_block(self, block: bytes) -> str | None:
        self.submitted += 1
        answer = self.submits.popleft() if len(self.submits) > 1 else self.submits[0]
        if isinstance(answer, Exception):
            raise answer
        return answer  # type: ignore[return-value]

    async def block_status(self, block_hash: str) -> str:
        return self.statuses.popleft() if len(self.statuses) > 1 else self.statuses[0]

    async def run(self, updates: object, *, task_status: object = None) -> None:  # pragma: no cover
        raise NotImplementedError


async def submitter(tmp_path: Path, source: ScriptedSource) -> tuple[BlockSubmitter, BlockLedger]:
    ledger = BlockLedger(tmp_path / "blocks.sqlite")
    sub = BlockSubmitter(ledger, source, retry_delay=0.5, confirm_delay=1.0, confirm_checks=3)  # type: ignore[arg-type]
    await sub.record("ab" * 32, 7, "w.1", b"block")
    return sub, ledger


async def test_a_block_the_node_forgot_is_sent_again_until_confirmed(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    source = ScriptedSource([None], ["unknown", "unknown", "unknown", "in-chain"])
    sub, ledger = await submitter(tmp_path, source)
    assert await sub.submit("ab" * 32, b"block") == "confirmed"
    assert source.submitted == 2
    assert ledger.list()[0].status == "confirmed"


async def test_inconclusive_then_orphaned(tmp_path: Path, autojump_clock: trio.testing.MockClock) -> None:
    source = ScriptedSource(["inconclusive"], ["unknown", "orphaned"])
    sub, ledger = await submitter(tmp_path, source)
    assert await sub.submit("ab" * 32, b"block") == "orphaned"
    assert ledger.list()[0].status == "orphaned"


async def test_rejection_is_final(tmp_path: Path, autojump_clock: trio.testing.MockClock) -> None:
    source = ScriptedSource(["high-hash"], ["unknown"])
    sub, ledger = await submitter(tmp_path, source)
    assert await sub.submit("ab" * 32, b"block") == "rejected"
    assert source.submitted == 1
    assert (ledger.list()[0].status, ledger.list()[0].detail) == ("rejected", "high-hash")


async def test_node_unreachable_is_retried_and_the_block_stays_pending_meanwhile(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    source = ScriptedSource([SourceUnavailable("down"), SourceUnavailable("down"), None], ["in-chain"])
    sub, ledger = await submitter(tmp_path, source)
    assert await sub.submit("ab" * 32, b"block") == "confirmed"
    assert ledger.list()[0].attempts == 3


async def test_resubmit_pending_settles_every_block_from_before_a_restart(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    source = ScriptedSource([None], ["in-chain"])
    sub, ledger = await submitter(tmp_path, source)
    await sub.record("cd" * 32, 8, "w.2", b"other")
    await sub.resubmit_pending()
    assert sorted(b.status for b in ledger.list()) == ["confirmed", "confirmed"]
