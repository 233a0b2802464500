"""Miners over real TCP on our own StratumClient, recording what the pool sends them.

- `Miner`: submits shares the test builds (`miner.share(...)`), for tests that decide what each
  share is (valid, low, stale, a block, rolled version bits).
- `CpuMiner`-driven `ScanningMiner`: mines by itself with the agent's CPU miner, for tests that
  only care that real work gets found and judged (blocks on a regtest node).
Both record every event, and wait on that record with `wait_for` (no polling).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import trio

from stratumkit.agent.cpu_miner import CpuMiner
from stratumkit.agent.stratum import StratumClient
from stratumkit.agent.work import MinerJob
from stratumkit.chain.targets import difficulty_to_target
from stratumkit.chain.template import prevhash_from_stratum
from stratumkit.protocol.client import ClientConnection
from stratumkit.protocol.events import (
    ConnectionClosed,
    Event,
    Notify,
    SetDifficulty,
    SubmitResult,
    SubscribeResult,
)

from .shares import Share, make_share
from .waiting import TIMEOUT, Changed, close_when_cancelled


class RecordingMiner:
    """What both miners share: the client, every event it got, and waits on them."""

    client: StratumClient

    def __init__(self, worker: str) -> None:
        self.worker = worker
        self.events: list[Event] = []
        self._changed = Changed()

    def _record(self, event: Event) -> None:
        self.events.append(event)
        self._changed.notify()

    async def wait_for(self, predicate: Callable[[], object], timeout: float = TIMEOUT, what: str = "") -> None:
        """Until `predicate()` holds, re-checked on each event; fails if the pool hangs up first."""
        with trio.move_on_after(timeout):
            while not predicate():
                if self.client.closed.is_set():
                    raise AssertionError(f"{self.worker}: the pool closed the connection")
                await self._changed.wait()
            return
        raise AssertionError(f"{self.worker}: timed out after {timeout:g} s waiting for {what or predicate}")

    async def wait_closed(self, timeout: float = TIMEOUT) -> None:
        with trio.fail_after(timeout):
            await self.client.closed.wait()

    def notifies(self) -> list[Notify]:
        return [e for e in self.events if isinstance(e, Notify)]

    @property
    def closed_by_pool(self) -> bool:
        return any(isinstance(e, ConnectionClosed) for e in self.events)


class Miner(RecordingMiner):
    """A miner whose shares the test makes: `share()` builds one, `submit()` sends it."""

    subscription: SubscribeResult

    def __init__(self, worker: str) -> None:
        super().__init__(worker)
        self.jobs: dict[str, MinerJob] = {}
        self.job: MinerJob | None = None
        self.difficulty: float | None = None
        self.difficulties: list[float] = []
        self.results: list[SubmitResult] = []  # replies to pipelined submits (no waiter)
        self._extranonce2 = itertools.count(1)

    @classmethod
    async def connect(
        cls,
        nursery: trio.Nursery,
        port: int | None,
        worker: str = "w.1",
        *,
        handshake: bool = True,
        version_rolling: bool = False,
        session_id: str | None = None,
        host: str = "127.0.0.1",
        stream: trio.abc.Stream | None = None,
    ) -> Miner:
        """A miner on a new TCP connection to `port`, or on `stream` (TLS, in-memory) if given."""
        miner = cls(worker)
        if stream is None:
            assert port is not None, "the pool is not listening"
            miner.client = await StratumClient.connect(nursery, host, port, on_event=miner._on_event)
        else:
            miner.client = StratumClient(stream, on_event=miner._on_event)
            nursery.start_soon(miner.client.read_loop)
        nursery.start_soon(close_when_cancelled, miner.client.stream)
        if handshake:
            with trio.fail_after(TIMEOUT):
                miner.subscription = await miner.client.handshake(
                    worker, version_rolling=version_rolling, session_id=session_id
                )
            await miner.wait_for(lambda: miner.job is not None, what="a first job")
        return miner

    def _on_event(self, event: Event) -> None:
        if isinstance(event, SetDifficulty):
            self.difficulty = event.difficulty
            self.difficulties.append(event.difficulty)
        elif isinstance(event, Notify):
            assert self.difficulty is not None, "mining.notify before mining.set_difficulty"
            self.job = self.jobs[event.job_id] = MinerJob.from_notify(event, self.difficulty)
        elif isinstance(event, SubmitResult):
            self.results.append(event)
        self._record(event)

    @property
    def extranonce1(self) -> bytes:
        assert self.client.conn.extranonce1 is not None
        return bytes.fromhex(self.client.conn.extranonce1)

    def next_extranonce2(self) -> bytes:
        size = self.client.conn.extranonce2_size
        assert size is not None
        return next(self._extranonce2).to_bytes(size, "big")

    def share(
        self,
        job: MinerJob | None = None,
        *,
        difficulty: float | None = None,
        block: bool = False,
        low: bool = False,
        above_difficulty: float | None = None,
        version_bits: int | None = None,
        version: int | None = None,
        ntime: int | None = None,
    ) -> Share:
        """A fresh share (new extranonce2) of `job` (default: the newest).

        Default: meets the job's difficulty and is not a block. `block`: meets the network
        target. `low`: misses the share target. `above_difficulty`: misses that difficulty.
        """
        job = job or self.job
        assert job is not None
        target = difficulty_to_target(difficulty if difficulty is not None else job.difficulty)
        above: int | None = job.network_target
        if block:
            target, above = job.network_target, None
        if above_difficulty is not None:
            above = min(job.network_target, difficulty_to_target(above_difficulty))
        if version is None and version_bits is not None:
            mask = self.client.conn.version_rolling_mask or 0
            version = (job.version & ~mask) | version_bits
        return make_share(
            job,
            self.extranonce1,
            self.next_extranonce2(),
            target=target,
            above=above,
            low=low,
            version=version,
            version_bits=version_bits,
            ntime=ntime,
        )

    async def submit(self, share: Share, worker: str | None = None) -> SubmitResult:
        with trio.fail_after(TIMEOUT):
            reply = await self.client.call(
                self.client.conn.send_request, "mining.submit", share.params(worker or self.worker)
            )
        assert isinstance(reply, SubmitResult), reply
        return reply

    async def submit_params(self, params: Any) -> SubmitResult:
        """A mining.submit with any params at all (bad widths, wrong types)."""
        with trio.fail_after(TIMEOUT):
            reply = await self.client.call(self.client.conn.send_request, "mining.submit", params)
        assert isinstance(reply, SubmitResult), reply
        return reply

    async def submit_many(self, shares: list[Share]) -> list[SubmitResult]:
        """Pipelined: every share written at once, then the replies collected in order."""
        ids = [self.client.conn.send_request("mining.submit", share.params(self.worker)) for share in shares]
        await self.client.flush()
        wanted = set(ids)
        await self.wait_for(lambda: wanted <= {r.id for r in self.results}, what="replies to pipelined shares")
        by_id = {r.id: r for r in self.results}
        return [by_id[i] for i in ids]


async def assert_served(miner: Miner) -> None:
    """The miner still gets work judged: a fresh valid share is accepted."""
    result = await miner.submit(miner.share())
    assert result.accepted, result


class _RecordingConnection(ClientConnection):
    """The client role, telling its miner about each share it submits."""

    def __init__(self, on_submit: Callable[[int, str], None]) -> None:
        super().__init__()
        self.on_submit = on_submit

    def submit(
        self, worker: str, job_id: str, extranonce2: str, ntime: str, nonce: str, version_bits: str | None = None
    ) -> int:
        request_id = super().submit(worker, job_id, extranonce2, ntime, nonce, version_bits)
        self.on_submit(request_id, job_id)
        return request_id


class ScanningMiner(RecordingMiner):
    """Our StratumClient + the agent's CpuMiner, recording what it submits and what the pool answers.

    one_share_per_job: pause after a submit until the pool sends a clean job (the next block).
    `mining` False: hold still (no scan) until `start_mining()`.
    """

    cpu: CpuMiner

    def __init__(self, worker: str, *, mining: bool = True, one_share_per_job: bool = True) -> None:
        super().__init__(worker)
        self.mining = mining
        self.one_share_per_job = one_share_per_job
        self.submitted: dict[int, str] = {}  # request id -> job id
        self.results: dict[int, SubmitResult] = {}
        self._cancel = trio.CancelScope()

    @classmethod
    async def connect(
        cls, nursery: trio.Nursery, port: int, worker: str, *, mine: bool = True, one_share_per_job: bool = True
    ) -> ScanningMiner:
        """Connect and hand-shake; then mine in `nursery` (unless mine=False) once work comes."""
        miner = cls(worker, mining=mine, one_share_per_job=one_share_per_job)
        miner.client = await StratumClient.connect(nursery, "127.0.0.1", port, on_event=miner._on_event)
        miner.client.conn = _RecordingConnection(miner._on_submit)  # before any byte moves
        miner.cpu = CpuMiner(miner.client, worker, chunk=1 << 16, max_per_chunk=1 if one_share_per_job else 64)
        with trio.fail_after(TIMEOUT):
            sub = await miner.client.handshake(worker)
        miner.cpu.attach(sub.extranonce1, sub.extranonce2_size)
        if not mine:
            miner.cpu.pause()
        nursery.start_soon(miner._mine)
        return miner

    async def _mine(self) -> None:
        try:
            with self._cancel:
                await self.cpu.run()
        finally:
            await trio.aclose_forcefully(self.client.stream)

    def _on_submit(self, request_id: int, job_id: str) -> None:
        self.submitted[request_id] = job_id
        if self.one_share_per_job:
            self.cpu.pause()

    def _on_event(self, event: Event) -> None:
        self.cpu.on_event(event)
        if isinstance(event, SubmitResult) and isinstance(event.id, int):
            self.results[event.id] = event
        elif isinstance(event, Notify) and event.clean_jobs and self.mining:
            self.cpu.resume()
        self._record(event)

    def start_mining(self) -> None:
        self.mining = True
        self.cpu.resume()

    async def quiesce(self) -> None:
        """Stop mining and wait for the answers to every share already sent."""
        self.mining = False
        self.cpu.pause()
        await self.wait_for(lambda: not self.unanswered, what="answers to the shares sent")

    def close(self) -> None:
        self._cancel.cancel()

    # -- what it saw --------------------------------------------------------------------------

    @property
    def unanswered(self) -> set[int]:
        return set(self.submitted) - set(self.results)

    def clean_tips(self) -> list[str]:
        """The previous block (display hex) of each clean job, in order received."""
        return [display_prevhash(n) for n in self.notifies() if n.clean_jobs]

    @property
    def job(self) -> Notify | None:
        notifies = self.notifies()
        return notifies[-1] if notifies else None

    def has_accepted(self) -> bool:
        return any(r.accepted for r in self.results.values())

    def accepted_on(self, job_ids: set[str]) -> list[SubmitResult]:
        return [r for i, r in self.results.items() if r.accepted and self.submitted[i] in job_ids]


def display_prevhash(notify: Notify) -> str:
    """A notify's previous block hash as explorers and the node show it."""
    return prevhash_from_stratum(notify.prevhash)[::-1].hex()
