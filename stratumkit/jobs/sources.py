"""Template sources: where work comes from. A node over JSON-RPC, or the embedded chain.

A source runs as a task and pushes `TemplateUpdate`s into a channel; the pool turns each into a
job. It also takes found blocks: `submit_block` answers like bitcoind's submitblock (None when
accepted, else a reason string such as "duplicate" or "high-hash") and raises `SourceUnavailable`
when it cannot be reached at all, so the caller retries; `block_status` says whether a block
made it into the best chain.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import trio

from stratumkit.chain.block import BlockHeader
from stratumkit.chain.targets import difficulty_to_target, nbits_to_target, target_to_nbits
from stratumkit.chain.template import BlockTemplate, TemplateTransaction
from stratumkit.failures import damaged_file
from stratumkit.hashing import hash_to_int, sha256d


@dataclass(frozen=True, slots=True)
class TemplateUpdate:
    template: BlockTemplate
    reason: str  # "initial", "new-block", "refresh", "recovered"


#: Where a found block stands: in the best chain, known but off it (orphaned), or not known.
BlockStatus = Literal["in-chain", "orphaned", "unknown"]


class SourceUnavailable(Exception):
    """The template source cannot be reached right now (retry later)."""


class TemplateSource(Protocol):
    name: str

    async def run(
        self,
        updates: trio.MemorySendChannel[TemplateUpdate],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None: ...

    async def submit_block(self, block: bytes) -> str | None: ...

    async def block_status(self, block_hash: str) -> BlockStatus: ...


EMBEDDED_SUBSIDY = 50 * 100_000_000
EMBEDDED_HALVING = 210_000


class EmbeddedTemplateSource:
    """A small chain of our own at a low target, for a pool with no node configured.

    Miners pointed at a fresh `stratumkit serve` find shares and blocks against it and see the
    whole flow: a block it accepts extends its chain and triggers new work (clean_jobs). It checks
    what a node would check of the header (previous block, proof of work) and nothing of the
    transactions: it is a demonstration chain, not a ledger. Its tip survives restarts in
    `state_path` when one is given.
    """

    name = "embedded"

    def __init__(
        self,
        *,
        difficulty: float = 0.01,
        state_path: str | os.PathLike[str] | None = None,
        refresh_interval: float = 30.0,
        filler_transactions: int = 0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.nbits = target_to_nbits(difficulty_to_target(difficulty))
        self.state_path = Path(state_path) if state_path is not None else None
        self.refresh_interval = refresh_interval
        self.filler = tuple(_filler_tx(i) for i in range(filler_transactions))
        self.clock = clock
        self.tip = sha256d(b"stratumkit embedded chain")
        self.height = 0
        self.tip_time = int(clock())
        self.blocks: list[str] = []  # hashes accepted by this process, display order
        self._changed = trio.Event()
        self._load()

    def _load(self) -> None:
        if self.state_path is None or not self.state_path.exists():
            return
        try:
            state = json.loads(self.state_path.read_text())
            self.tip = bytes.fromhex(state["tip"])[::-1]
            self.height = int(state["height"])
            self.tip_time = int(state["time"])
        except (ValueError, KeyError, TypeError) as exc:
            raise damaged_file(self.state_path, "the embedded chain's state (JSON: tip, height, time)", exc) from None

    def _save(self) -> None:
        if self.state_path is None:
            return
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_suffix(".tmp")
        with tmp.open("w") as f:
            json.dump({"tip": self.tip[::-1].hex(), "height": self.height, "time": self.tip_time}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.state_path)

    def template(self) -> BlockTemplate:
        height = self.height + 1
        now = int(self.clock())
        return BlockTemplate(
            version=0x20000000,
            prevhash=self.tip,
            transactions=self.filler,
            coinbasevalue=EMBEDDED_SUBSIDY >> min(height // EMBEDDED_HALVING, 63),
            curtime=max(now, self.tip_time + 1),
            mintime=self.tip_time + 1,
            nbits=self.nbits,
            height=height,
        )

    async def run(
        self,
        updates: trio.MemorySendChannel[TemplateUpdate],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        await updates.send(TemplateUpdate(self.template(), "initial"))
        task_status.started()
        while True:
            with trio.move_on_after(self.refresh_interval):
                await self._changed.wait()
            reason = "new-block" if self._changed.is_set() else "refresh"
            self._changed = trio.Event()
            await updates.send(TemplateUpdate(self.template(), reason))

    async def submit_block(self, block: bytes) -> str | None:
        header = BlockHeader.parse(block[:80])
        block_hash = sha256d(block[:80])
        if block_hash == self.tip or block_hash[::-1].hex() in self.blocks:
            return "duplicate"
        if header.prevhash != self.tip:
            return "bad-prevblk"
        if header.nbits != self.nbits:
            return "bad-diffbits"
        if hash_to_int(block_hash) > nbits_to_target(self.nbits):
            return "high-hash"
        self.tip = block_hash
        self.height += 1
        self.tip_time = max(header.ntime, self.tip_time + 1)
        self.blocks.append(block_hash[::-1].hex())
        self._save()
        self._changed.set()
        return None

    async def block_status(self, block_hash: str) -> BlockStatus:
        # the embedded chain never reorganises: a block it accepted stays in it
        return "in-chain" if block_hash in self.blocks or block_hash == self.tip[::-1].hex() else "unknown"


def _filler_tx(i: int) -> TemplateTransaction:
    """A stand-in transaction so the embedded chain can have a realistic merkle branch (benches)."""
    data = b"stratumkit filler transaction " + i.to_bytes(4, "little")
    txid = sha256d(data)
    return TemplateTransaction(data=data, txid=txid, wtxid=txid)
