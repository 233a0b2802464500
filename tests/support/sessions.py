"""A MiningSession on the real work port, with a recorder for its share, block and stats ports:
lines in, lines out, time passed in (for tests that drive one session with no I/O)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from stratumkit.jobs.job import Job
from stratumkit.session.mining import MiningSession
from stratumkit.shares.log import LogBatch, ShareRecord


@dataclass
class Recorder:
    """The share, block and stats ports: everything the session hands them."""

    batch: LogBatch = field(default_factory=LogBatch)
    shares: list[ShareRecord] = field(default_factory=list)
    blocks: list[tuple[str, str]] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    started: list[str] = field(default_factory=list)

    def append(self, frame: bytes) -> LogBatch:
        self.shares.append(ShareRecord.unpack(frame[8:]))
        return self.batch

    def found(self, job: Job, block_hash: bytes, block: bytes, worker: str) -> None:
        self.blocks.append((block_hash[::-1].hex(), worker))

    def on_accepted(self, worker: str, difficulty: float, now: float, block: bool) -> None:
        pass

    def on_worker_started(self, worker: str, now: float) -> None:
        self.started.append(worker)

    def on_rejected(self, worker: str, reason: str) -> None:
        self.rejected.append(reason)


def lines(session: MiningSession) -> list[dict[str, Any]]:
    """What the session has queued for the miner, parsed."""
    return [json.loads(line) for line in session.data_to_send().splitlines()]
