"""`stratumkit bench pool`: N miners over real TCP against a `stratumkit serve` process.

The server runs as its own process (so its CPU time and resident memory are read from /proc);
the miners are this process's trio tasks, each a stratum client (the protocol's client role)
submitting valid shares at a chosen rate. Valid shares are cheap to make here because the server
is started with a tiny fixed share difficulty (about one nonce in four qualifies), while the
embedded chain's block difficulty stays high enough that blocks happen only when the bench mines
one on purpose, to time the fan-out.

Printed: accepted shares/s, server CPU seconds per 1,000 accepted shares (and µs per share),
p50/p99 submit-to-reply latency, server resident memory per connection, and notify fan-out time
(the block share is sent -> the last miner holds the new job).
"""

from __future__ import annotations

import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import trio

from stratumkit.agent.work import MinerJob
from stratumkit.hashing import scan_nonces
from stratumkit.percentile import percentile
from stratumkit.protocol.client import ClientConnection
from stratumkit.protocol.errors import RemoteProtocolError
from stratumkit.protocol.events import Notify, SetDifficulty, SubmitResult, SubscribeResult

SHARE_DIFFICULTY = 1e-9  # target ~ 2**254: about one nonce in four is a share
BLOCK_DIFFICULTY = 0.01  # ~43 M hashes per block: mined on purpose in ~2 s, never by accident


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime + stime


def _proc_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


@dataclass
class Miner:
    """One simulated miner: a ClientConnection on a real socket, submitting at a fixed rate."""

    index: int
    stream: trio.SocketStream
    conn: ClientConnection = field(default_factory=ClientConnection)
    extranonce1: bytes = b""
    extranonce2_size: int = 4
    difficulty: float = 1.0
    job: MinerJob | None = None
    header76: bytes = b""
    extranonce2: bytes = b""
    next_nonce: int = 0
    sent_at: dict[int, float] = field(default_factory=dict)
    got_work: trio.Event = field(default_factory=trio.Event)
    clean_seen_at: float | None = None
    watch_prevhash: bytes | None = None

    async def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            await self.stream.send_all(data)

    def set_job(self, job: MinerJob) -> None:
        self.job = job
        self.extranonce2 = self.index.to_bytes(self.extranonce2_size, "big")
        self.header76 = job.header76(self.extranonce1, self.extranonce2)
        self.next_nonce = 0

    def make_shares(self, n: int) -> list[int]:
        assert self.job is not None
        found = scan_nonces(self.header76, self.next_nonce, min(64 * n, (1 << 32) - self.next_nonce),
                            self.job.share_target, max_found=n)  # fmt: skip
        self.next_nonce = (found[-1] + 1) if found else self.next_nonce + 64 * n
        return found


class Load:
    def __init__(self) -> None:
        self.accepted = 0
        self.rejected = 0
        self.latencies: list[float] = []
        self.measuring = False


async def _reader(miner: Miner, load: Load) -> None:
    while True:
        try:
            data = await miner.stream.receive_some(65536)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return
        try:
            events = miner.conn.receive_data(data)
        except RemoteProtocolError:
            return
        now = time.perf_counter()
        for event in events:
            kind = type(event)
            if kind is SubmitResult:
                sent = miner.sent_at.pop(event.id, None)  # type: ignore[attr-defined]
                if load.measuring and sent is not None:
                    load.latencies.append(now - sent)
                    if event.accepted:  # type: ignore[attr-defined]
                        load.accepted += 1
                    else:
                        load.rejected += 1
            elif kind is Notify:
                assert isinstance(event, Notify)
                job = MinerJob.from_notify(event, miner.difficulty)
                if miner.watch_prevhash is not None and job.prevhash != miner.watch_prevhash and event.clean_jobs:
                    miner.clean_seen_at = now
                miner.set_job(job)
                miner.got_work.set()
            elif kind is SetDifficulty:
                miner.difficulty = event.difficulty  # type: ignore[attr-defined]
            elif kind is SubscribeResult:
                assert isinstance(event, SubscribeResult)
                miner.extranonce1 = bytes.fromhex(event.extranonce1)
                miner.extranonce2_size = event.extranonce2_size
        await miner.flush()
        if not data:
            return


async def _submitter(miner: Miner, rate: float, stop: trio.Event) -> None:
    """Send `rate` shares per second, in small bursts every 50 ms (as a busy miner would)."""
    period = 0.05
    per_tick = rate * period
    owed = 0.0
    next_tick = trio.current_time()
    while not stop.is_set():
        owed += per_tick
        n = int(owed)
        if n and miner.job is not None:
            owed -= n
            for nonce in miner.make_shares(n):
                request_id = miner.conn.submit(
                    "bench.worker", miner.job.job_id, miner.extranonce2.hex(), f"{miner.job.ntime:08x}", f"{nonce:08x}"
                )
                miner.sent_at[request_id] = time.perf_counter()
            await miner.flush()
        next_tick += period
        await trio.sleep_until(next_tick)


def _start_server(port: int, data_dir: str, filler: int) -> subprocess.Popen[bytes]:
    config = Path(data_dir) / "bench.toml"
    config.write_text(
        f'host = "127.0.0.1"\nport = {port}\napi_port = 0\ndata_dir = "{data_dir}/pool"\n'
        f"start_difficulty = {SHARE_DIFFICULTY}\nmin_difficulty = {SHARE_DIFFICULTY}\n"
        f"max_difficulty = {SHARE_DIFFICULTY}\nembedded_difficulty = {BLOCK_DIFFICULTY}\n"
        f"embedded_filler_transactions = {filler}\nmax_connections_per_ip = 1000000\n"
        f"send_queue = 1024\nidle_timeout = 3600.0\nhandshake_timeout = 600.0\n"
        f"template_refresh = 3600.0\nlog_level = \"warning\"\n"
    )
    prefix = ["-m", "cProfile", "-o", os.environ["SK_PROFILE"]] if os.environ.get("SK_PROFILE") else []
    return subprocess.Popen([sys.executable, *prefix, "-m", "stratumkit.cli", "serve", "--config", str(config)])


async def _wait_port(port: int, proc: subprocess.Popen[bytes]) -> None:
    with trio.fail_after(30):
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the server exited with {proc.returncode}")
            try:
                stream = await trio.open_tcp_stream("127.0.0.1", port)
                await stream.aclose()
                return
            except OSError:
                await trio.sleep(0.05)


async def _connect(index: int, port: int, miners: list[Miner], load: Load, nursery: trio.Nursery,
                   limiter: trio.CapacityLimiter) -> None:  # fmt: skip
    async with limiter:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        miner = Miner(index, stream)
        miners.append(miner)
        nursery.start_soon(_reader, miner, load)
        miner.conn.subscribe("stratumkit-bench/0.1")
        miner.conn.authorize("bench.worker", "x")
        await miner.flush()
        with trio.fail_after(60):
            await miner.got_work.wait()


def _mine_block(job: MinerJob, extranonce1: bytes, extranonce2: bytes) -> tuple[int, float]:
    header76 = job.header76(extranonce1, extranonce2)
    t0 = time.perf_counter()
    start = 0
    while True:
        found = scan_nonces(header76, start, 1 << 22, job.network_target, max_found=1)
        if found:
            return found[0], time.perf_counter() - t0
        start += 1 << 22


async def bench(connections: int, rate: float, duration: float, filler: int) -> dict[str, float]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if connections + 64 > hard:
        raise SystemExit(f"{connections} connections need more than the {hard} file descriptors allowed")
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="stratumkit-bench-") as data_dir:
        proc = _start_server(port, data_dir, filler)
        try:
            await _wait_port(port, proc)
            await trio.sleep(0.5)
            rss0 = _proc_rss(proc.pid)
            load = Load()
            miners: list[Miner] = []
            async with trio.open_nursery() as nursery:
                t0 = time.perf_counter()
                limiter = trio.CapacityLimiter(256)
                async with trio.open_nursery() as connecting:
                    for i in range(connections):
                        connecting.start_soon(_connect, i, port, miners, load, nursery, limiter)
                connect_s = time.perf_counter() - t0
                await trio.sleep(1.0)
                rss1 = _proc_rss(proc.pid)

                stop = trio.Event()
                async with trio.open_nursery() as submitting:
                    for miner in miners:
                        submitting.start_soon(_submitter, miner, rate / connections, stop)
                    await trio.sleep(min(2.0, duration / 4))  # warm up
                    load.measuring = True
                    cpu0, w0, own0 = _proc_cpu(proc.pid), time.perf_counter(), time.process_time()
                    await trio.sleep(duration)
                    cpu1, w1, own1 = _proc_cpu(proc.pid), time.perf_counter(), time.process_time()
                    load.measuring = False
                    stop.set()
                await trio.sleep(1.0)  # let replies in flight land

                # fan-out: one miner solves a block; time until every miner holds the new job
                finder = miners[0]
                assert finder.job is not None
                job = finder.job
                nonce, mine_s = await trio.to_thread.run_sync(_mine_block, job, finder.extranonce1, finder.extranonce2)
                for miner in miners:
                    miner.watch_prevhash = job.prevhash
                    miner.clean_seen_at = None
                finder.conn.submit("bench.worker", job.job_id, finder.extranonce2.hex(), f"{job.ntime:08x}", f"{nonce:08x}")
                sent = time.perf_counter()
                await finder.flush()
                with trio.fail_after(30):
                    while any(m.clean_seen_at is None for m in miners):
                        await trio.sleep(0.005)
                fanout = max(m.clean_seen_at for m in miners if m.clean_seen_at is not None) - sent
                nursery.cancel_scope.cancel()
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
    elapsed = w1 - w0
    lat = load.latencies
    return {
        "connections": connections,
        "connect_s": connect_s,
        "accepted_per_s": load.accepted / elapsed,
        "rejected": load.rejected,
        "server_cpu_s_per_1000": (cpu1 - cpu0) / max(load.accepted, 1) * 1000,
        "server_cpu_share_of_core": (cpu1 - cpu0) / elapsed,
        "client_cpu_share_of_core": (own1 - own0) / elapsed,
        "p50_ms": 1000 * percentile(lat, 0.5) if lat else float("nan"),
        "p99_ms": 1000 * percentile(lat, 0.99) if lat else float("nan"),
        "rss_per_connection_kb": (rss1 - rss0) / connections / 1024,
        "fanout_ms": 1000 * fanout,
        "block_mined_in_s": mine_s,
    }


def run(connections: int = 1000, rate: float = 20000, duration: float = 10.0, filler: int = 2500) -> None:
    print(f"stratumkit bench pool — {connections} miners, {rate:g} shares/s offered for {duration:g} s, "
          f"{filler} template transactions (merkle branch of {max(filler, 1).bit_length()} levels)")  # fmt: skip
    r = trio.run(bench, connections, rate, duration, filler)
    print(f"connected and got work in      {r['connect_s']:.2f} s")
    print(f"accepted shares/s              {r['accepted_per_s']:,.0f}  (rejected: {r['rejected']})")
    print(f"server CPU per 1,000 shares    {r['server_cpu_s_per_1000']:.4f} s  "
          f"({1000 * r['server_cpu_s_per_1000']:.1f} µs/share; server used {r['server_cpu_share_of_core']:.2f} of a core)")
    print(f"load generator CPU             {r['client_cpu_share_of_core']:.2f} of a core")
    print(f"submit -> reply latency        p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms")
    print(f"server memory per connection   {r['rss_per_connection_kb']:.1f} KB")
    print(f"notify fan-out (block -> last) {r['fanout_ms']:.1f} ms")
