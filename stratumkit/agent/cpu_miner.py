"""A CPU miner on the native nonce scan: the rig agent's built-in mining backend.

It takes jobs from a StratumClient's notifications, scans nonce ranges in a worker thread (the C
scan releases the GIL, so the event loop stays responsive), and submits every nonce that meets the
share target. A new job or `pause()` takes effect at the next chunk boundary (`chunk` nonces:
a few milliseconds of work), which bounds how fast the miner follows clean_jobs and leases. Below
full duty the miner rests after each chunk (its shares sent first) for what is left of a cycle of
the fastest chunk scan seen / duty: at duty x this machine's scan rate, the rate it declares. A
scan slowed down by a busy machine (its thread preempted, a wait for a worker thread) eats into
the rest instead of lengthening it: scaling the rest by each scan's own time made one scan slowed
100-fold, when many miners resume at once, buy a rest of seconds without hashing. A new job or
`resume()` ends the rest.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable

import trio

from stratumkit.hashing import scan_nonces
from stratumkit.protocol.events import Event, Notify, SetDifficulty, SetExtranonce, SubmitResult

from .stratum import StratumClient
from .work import MinerJob


def _timed_scan(header76: bytes, start: int, count: int, target: int, limit: int) -> tuple[list[int], float]:
    """The scan and how long it took in its thread (a wait for a free thread is not hashing)."""
    t0 = time.perf_counter()
    found = scan_nonces(header76, start, count, target, limit)
    return found, time.perf_counter() - t0


def duty_rest(fastest_scan: float, duty: float, cycle_elapsed: float) -> float:
    """Seconds to rest after a chunk: what is left of a cycle of ``fastest_scan / duty`` once
    ``cycle_elapsed`` (the wait for a thread, the scan, the shares' send) has gone by."""
    return max(0.0, fastest_scan / duty - cycle_elapsed)


class CpuMiner:
    def __init__(
        self,
        client: StratumClient,
        worker: str,
        *,
        chunk: int = 1 << 17,
        duty: float = 1.0,
        max_per_chunk: int = 64,
        on_result: Callable[[SubmitResult], None] | None = None,
        lane: int = 0,
        lanes: int = 1,
    ) -> None:
        """``lane`` of ``lanes``: miners sharing one connection (threads) take every ``lanes``-th
        extranonce2 from ``lane`` on, so no two of them ever hash the same header."""
        if not 0 < duty <= 1:
            raise ValueError("duty must be in (0, 1]")
        self.client = client
        self.worker = worker
        self.chunk = chunk
        #: Fraction of the time spent hashing (1.0: flat out); lower it to share a small machine.
        self.duty = duty
        #: Shares submitted per chunk at most (1: one share, then the next chunk or job).
        self.max_per_chunk = max_per_chunk
        self.on_result = on_result
        self.difficulty = 1.0
        self.job: MinerJob | None = None
        self.extranonce1 = b""
        self.extranonce2_size = 4
        self.accepted = 0
        self.rejected = 0
        self.rejections: list[tuple[int | None, str | None]] = []
        self.hashes = 0
        self.paused = False
        self._fastest_scan: float | None = None  # seconds: the least a chunk's scan has taken
        self._work = trio.Event()
        self._en2 = itertools.count(lane, lanes)

    def attach(self, extranonce1: str, extranonce2_size: int) -> None:
        self.extranonce1 = bytes.fromhex(extranonce1)
        self.extranonce2_size = extranonce2_size

    def on_event(self, event: Event) -> None:
        """Feed the client's notifications here (StratumClient(on_event=miner.on_event))."""
        if isinstance(event, SetDifficulty):
            self.difficulty = event.difficulty
        elif isinstance(event, Notify):
            self.job = MinerJob.from_notify(event, self.difficulty)
            self._work.set()
        elif isinstance(event, SetExtranonce):
            self.attach(event.extranonce1, event.extranonce2_size)
        elif isinstance(event, SubmitResult):
            if event.accepted:
                self.accepted += 1
            else:
                self.rejected += 1
                self.rejections.append((event.code, event.message))
            if self.on_result is not None:
                self.on_result(event)

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        self.paused = False
        self._work.set()

    def measure_hashrate(self, seconds: float = 0.2) -> float:
        """This machine's scan rate in hashes/s (times duty): what the rig declares to the pool."""
        n, t0 = 0, time.monotonic()
        while time.monotonic() - t0 < seconds:
            scan_nonces(bytes(76), n, self.chunk, 0)
            n += self.chunk
        return n / (time.monotonic() - t0) * self.duty

    async def run(self) -> None:
        while True:
            job = self.job
            if job is None or self.paused:
                self._work = trio.Event()
                await self._work.wait()
                continue
            extranonce2 = (next(self._en2) % (1 << (8 * self.extranonce2_size))).to_bytes(self.extranonce2_size, "big")
            header76 = job.header76(self.extranonce1, extranonce2)
            for start in range(0, 1 << 32, self.chunk):
                if self.job is not job or self.paused:
                    break
                cycle = time.perf_counter()
                found, took = await trio.to_thread.run_sync(
                    _timed_scan, header76, start, self.chunk, job.share_target, self.max_per_chunk
                )
                self.hashes += self.chunk
                if self.job is not job or self.paused:
                    break  # the work changed while scanning: these nonces are stale now
                for nonce in found:
                    self.client.conn.submit(
                        self.worker, job.job_id, extranonce2.hex(), f"{job.ntime:08x}", f"{nonce:08x}"
                    )
                if found:
                    await self.client.flush()
                if self.duty < 1:
                    fastest = took if self._fastest_scan is None else min(self._fastest_scan, took)
                    self._fastest_scan = fastest
                    rest = duty_rest(fastest, self.duty, time.perf_counter() - cycle)
                    self._work = trio.Event()
                    with trio.move_on_after(rest):
                        await self._work.wait()
