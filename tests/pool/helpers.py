"""Test helpers: a pool on a free port, miners over real TCP, and shares found by the native scan.

Difficulties are chosen so that work is cheap: at share difficulty 1e-6 one nonce in ~4096 is a
share (well under a millisecond of scanning); the embedded chain's block difficulty decides how
rare blocks are (0.02: one share in ~20,000 is a block; 1e-4: one in ~100).

Shares found here avoid the network target unless a block is asked for, so a test never extends
the chain (and turns its jobs stale) by accident.
"""

from __future__ import annotations

import itertools
import json
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from stratumkit.agent.stratum import StratumClient
from stratumkit.agent.work import MinerJob
from stratumkit.chain.targets import difficulty_to_target
from stratumkit.hashing import hash_to_int, scan_nonces, sha256d
from stratumkit.protocol.events import (
    ConnectionClosed,
    Event,
    Notify,
    SetDifficulty,
    SubmitResult,
    SubscribeResult,
)
from stratumkit.server.config import PoolConfig
from stratumkit.server.pool import Pool
from stratumkit.server.run import make_source
from stratumkit.shares.log import ShareLog

#: Upper bound on any single wait in these tests (they finish in milliseconds when all is well).
TIMEOUT = 10.0


def pool_config(data_dir: Path, **overrides: Any) -> PoolConfig:
    """A loopback pool on a free port. Vardiff never raises (start = max) and lowers a quiet miner
    only after retarget_time (5 s), longer than any test here, unless overridden."""
    values: dict[str, Any] = dict(
        host="127.0.0.1",
        port=0,
        data_dir=str(data_dir),
        start_difficulty=1e-6,
        min_difficulty=1e-9,
        max_difficulty=1e-6,
        embedded_difficulty=0.02,
        share_interval=1.0,
        retarget_time=5.0,
    )
    values.update(overrides)
    return PoolConfig(**values)


async def start_pool(nursery: trio.Nursery, config: PoolConfig) -> Pool:
    """The pool as `stratumkit serve` builds it (embedded source from the config), started."""
    pool: Pool = await nursery.start(Pool(config, make_source(config)).run)
    return pool


async def close_when_cancelled(stream: trio.abc.AsyncResource) -> None:
    """Run in the test's nursery: closes a client socket when the test ends (no ResourceWarning)."""
    try:
        await trio.sleep_forever()
    finally:
        await trio.aclose_forcefully(stream)


async def wait_until(predicate: Callable[[], bool], timeout: float = TIMEOUT) -> None:
    """Poll server-side state that has no event to wait on (sessions coming and going)."""
    with trio.fail_after(timeout):
        while not predicate():
            await trio.sleep(0.005)


async def reopen_share_log(directory: Path) -> int:
    """Open a share log as a restarting pool would (repairing a torn tail); its record count."""
    log = ShareLog(directory)
    async with trio.open_nursery() as nursery:
        await nursery.start(log.run)
        nursery.cancel_scope.cancel()
    return log.records


# -------------------------------------------------------------------------------- shares


@dataclass(frozen=True)
class Share:
    job_id: str
    extranonce2: str
    ntime: str
    nonce: str
    version_bits: str | None
    hash: bytes  # internal byte order, as the pool logs it

    def key(self, extranonce1: bytes) -> tuple[bytes, bytes, int, int]:
        """How the share log identifies the work: (extranonce1, extranonce2, ntime, nonce)."""
        return (
            extranonce1,
            bytes.fromhex(self.extranonce2),
            int(self.ntime, 16),
            int(self.nonce, 16),
        )

    def params(self, worker: str) -> list[str]:
        tail = [] if self.version_bits is None else [self.version_bits]
        return [worker, self.job_id, self.extranonce2, self.ntime, self.nonce, *tail]


def header_hash(header76: bytes, nonce: int) -> bytes:
    return sha256d(header76 + struct.pack("<I", nonce))


def find_nonce(
    header76: bytes,
    target: int,
    *,
    above: int | None = None,
    start: int = 0,
) -> int:
    """The first nonce from `start` whose hash meets `target` and, if given, misses `above`."""
    while True:
        for nonce in scan_nonces(header76, start, 1 << 16, target):
            if above is None or hash_to_int(header_hash(header76, nonce)) > above:
                return nonce
        start += 1 << 16


def find_low_nonce(header76: bytes, target: int, start: int = 0) -> int:
    """The first nonce from `start` whose hash does NOT meet `target`."""
    nonce = start
    while hash_to_int(header_hash(header76, nonce)) <= target:
        nonce += 1
    return nonce


def make_share(
    job: MinerJob,
    extranonce1: bytes,
    extranonce2: bytes,
    *,
    target: int,
    above: int | None = None,
    low: bool = False,
    version: int | None = None,
    version_bits: int | None = None,
    ntime: int | None = None,
) -> Share:
    """A share of `job`: meeting `target` (and missing `above`), or missing `target` if `low`."""
    header76 = job.header76(extranonce1, extranonce2, version=version, ntime=ntime)
    nonce = find_low_nonce(header76, target) if low else find_nonce(header76, target, above=above)
    return Share(
        job_id=job.job_id,
        extranonce2=extranonce2.hex(),
        ntime=f"{job.ntime if ntime is None else ntime:08x}",
        nonce=f"{nonce:08x}",
        version_bits=None if version_bits is None else f"{version_bits:08x}",
        hash=header_hash(header76, nonce),
    )


# -------------------------------------------------------------------------------- miners


class Miner:
    """A miner over real TCP: our StratumClient, plus a record of what the pool sent it."""

    client: StratumClient
    subscription: SubscribeResult

    def __init__(self, worker: str) -> None:
        self.worker = worker
        self.events: list[Event] = []
        self.jobs: dict[str, MinerJob] = {}
        self.job: MinerJob | None = None
        self.difficulty: float | None = None
        self.difficulties: list[float] = []
        self.results: list[SubmitResult] = []  # replies to pipelined submits (no waiter)
        self._changed = trio.Event()
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
    ) -> Miner:
        assert port is not None, "the pool is not listening"
        miner = cls(worker)
        miner.client = await StratumClient.connect(nursery, host, port, on_event=miner._on_event)
        nursery.start_soon(close_when_cancelled, miner.client.stream)
        if handshake:
            with trio.fail_after(TIMEOUT):
                miner.subscription = await miner.client.handshake(
                    worker, version_rolling=version_rolling, session_id=session_id
                )
                await miner.wait_for(lambda: miner.job is not None)
        return miner

    def _on_event(self, event: Event) -> None:
        self.events.append(event)
        if isinstance(event, SetDifficulty):
            self.difficulty = event.difficulty
            self.difficulties.append(event.difficulty)
        elif isinstance(event, Notify):
            assert self.difficulty is not None, "mining.notify before mining.set_difficulty"
            self.job = self.jobs[event.job_id] = MinerJob.from_notify(event, self.difficulty)
        elif isinstance(event, SubmitResult):
            self.results.append(event)
        changed, self._changed = self._changed, trio.Event()
        changed.set()

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = TIMEOUT) -> None:
        with trio.fail_after(timeout):
            while not predicate():
                if self.client.closed.is_set():
                    raise AssertionError("the pool closed the connection")
                await self._changed.wait()

    async def wait_closed(self, timeout: float = TIMEOUT) -> None:
        with trio.fail_after(timeout):
            await self.client.closed.wait()

    def notifies(self) -> list[Notify]:
        return [e for e in self.events if isinstance(e, Notify)]

    @property
    def closed_by_pool(self) -> bool:
        return any(isinstance(e, ConnectionClosed) for e in self.events)

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
        await self.wait_for(lambda: wanted <= {r.id for r in self.results})
        by_id = {r.id: r for r in self.results}
        return [by_id[i] for i in ids]


async def assert_served(miner: Miner) -> None:
    """The miner still gets work judged: a fresh valid share is accepted."""
    result = await miner.submit(miner.share())
    assert result.accepted, result


# -------------------------------------------------------------------------------- raw lines


class RawConnection:
    """A socket speaking raw bytes, for input no well-behaved client would send."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self._buffer = b""
        self.eof = False
        self.notifications: list[dict[str, Any]] = []

    @classmethod
    async def connect(
        cls,
        nursery: trio.Nursery,
        port: int | None,
        *,
        host: str = "127.0.0.1",
        source: str | None = None,
        rcvbuf: int | None = None,
    ) -> RawConnection:
        assert port is not None, "the pool is not listening"
        sock = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            if rcvbuf is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            if source is not None:
                await sock.bind((source, 0))
            await sock.connect((host, port))
        except BaseException:
            sock.close()
            raise
        stream = trio.SocketStream(sock)
        nursery.start_soon(close_when_cancelled, stream)
        return cls(stream)

    async def send(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def send_json(self, message: Any) -> None:
        await self.send(json.dumps(message).encode() + b"\n")

    async def read_message(self, timeout: float = TIMEOUT) -> dict[str, Any] | None:
        """The next JSON line from the pool, or None once it closed the connection."""
        with trio.fail_after(timeout):
            while b"\n" not in self._buffer:
                if self.eof:
                    return None
                try:
                    data = await self.stream.receive_some(65536)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    data = b""
                if not data:
                    self.eof = True
                self._buffer += data
        line, self._buffer = self._buffer.split(b"\n", 1)
        message: dict[str, Any] = json.loads(line)
        return message

    async def reply_to(self, request_id: Any, timeout: float = TIMEOUT) -> dict[str, Any]:
        """The reply with this id; notifications that arrive first are kept in `notifications`."""
        while True:
            message = await self.read_message(timeout)
            assert message is not None, f"connection closed before the reply to {request_id!r}"
            if "method" in message:
                self.notifications.append(message)
            elif message.get("id") == request_id:
                return message

    async def request(self, request_id: Any, method: str, params: Any) -> dict[str, Any]:
        await self.send_json({"id": request_id, "method": method, "params": params})
        return await self.reply_to(request_id)

    async def handshake(self, worker: str = "raw.1") -> dict[str, Any]:
        """Subscribe and authorize; returns the subscribe reply. Notifications are kept."""
        sub = await self.request(1, "mining.subscribe", ["raw/1.0"])
        auth = await self.request(2, "mining.authorize", [worker, "x"])
        assert auth["result"] is True, auth
        return sub

    async def next_notify(self) -> list[Any]:
        """The params of the next mining.notify (kept ones first)."""
        while True:
            message = self.notifications.pop(0) if self.notifications else await self.read_message()
            assert message is not None, "connection closed before a mining.notify"
            if message.get("method") == "mining.notify":
                params: list[Any] = message["params"]
                return params

    async def wait_closed(self, timeout: float = TIMEOUT) -> list[dict[str, Any]]:
        """Read until the pool closes the connection; returns what it sent meanwhile."""
        seen = []
        while (message := await self.read_message(timeout)) is not None:
            seen.append(message)
        return seen

    async def aclose(self) -> None:
        await self.stream.aclose()


def error_code(reply: dict[str, Any]) -> int | None:
    error = reply.get("error")
    return None if error is None else int(error[0])
