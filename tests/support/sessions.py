"""A MiningSession on the real work port, with a recorder for its share, block and stats ports:
lines in, lines out, time passed in (for tests that drive one session with no I/O), and the
replay of a real miner's captured connection through one (tests/protocol/vectors.py `Capture`)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from stratumkit.chain.address import Network
from stratumkit.jobs.extranonce import ExtranonceAllocator
from stratumkit.jobs.job import Job
from stratumkit.jobs.registry import JobRegistry
from stratumkit.jobs.sources import EmbeddedTemplateSource
from stratumkit.jobs.work import PoolWork
from stratumkit.server.config import PoolConfig
from stratumkit.server.pool import session_config
from stratumkit.session.mining import MiningSession, SessionPorts
from stratumkit.shares.log import LogBatch, ShareRecord
from tests.protocol.vectors import Capture


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


@dataclass
class Replay:
    capture: Capture
    session: MiningSession
    work: PoolWork
    recorder: Recorder
    ports: SessionPorts
    said: list[bytes]  # every line the session queued, in order

    @property
    def job(self) -> Job:
        job = self.work.get(self.capture.job_id, None)
        assert job is not None
        return job

    def messages(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.said]

    def sent_difficulties(self) -> dict[str, float]:
        """Job id -> the share difficulty the miner mines it at: the last set_difficulty before
        its notify (cpuminer's and bfgminer's rule: a new difficulty applies from the next job)."""
        difficulty, held = None, {}
        for message in self.messages():
            if message.get("method") == "mining.set_difficulty":
                difficulty = message["params"][0]
            elif message.get("method") == "mining.notify":
                assert difficulty is not None
                held[message["params"][0]] = difficulty
        return held


def first_job_work(capture: Capture, config: PoolConfig) -> PoolWork:
    """The work port of a fresh `stratumkit serve` on the embedded chain, holding the capture's
    first job: block 1 over the chain's fixed genesis, at the job's ntime, under its id."""
    registry = JobRegistry(
        payout_script=b"\x51",  # no payout_address: the embedded chain's anyone-can-spend
        extranonce1_size=4,
        extranonce2_size=config.extranonce2_size,
        pool_tag=config.pool_tag.encode(),
        id_seed=int(capture.job_id, 16) - 1,
    )
    source = EmbeddedTemplateSource(difficulty=config.embedded_difficulty, clock=lambda: capture.ntime - 1)
    registry.new_job(source.template(), 0.0)
    return PoolWork(registry, ExtranonceAllocator(size=4, prefix=config.instance_id), Network.REGTEST)


def replay(capture: Capture) -> Replay:
    """Feed the miner's lines at their times (wall clock: the job's ntime plus that) and collect
    everything the session says."""
    config = PoolConfig()
    work, recorder = first_job_work(capture, config), Recorder()
    ports = SessionPorts(work=work, shares=recorder, blocks=recorder, stats=recorder)
    session = MiningSession(session_config(config), ports, 0.0, "127.0.0.1:1")
    said: list[bytes] = []
    for at, line in capture.miner_lines():
        session.on_timer(at)
        session.receive_data(line, at, capture.ntime + at)
        said += session.data_to_send().splitlines(keepends=True)
        assert session.drop_reason is None
    return Replay(capture, session, work, recorder, ports, said)
