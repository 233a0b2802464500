"""`stratumkit bench pool`: N miners over real TCP against a `stratumkit serve` process.

The server runs as its own process (so its CPU time and resident memory are read from /proc);
the miners live in this process, each a stratum client (the protocol's client role) on its own
socket, all driven by one epoll loop, submitting valid shares at a chosen rate. Valid shares are
cheap to make here because the server is started with a tiny fixed share difficulty (about one
nonce in four qualifies), while the embedded chain's block difficulty stays high enough that
blocks happen only when the bench mines one on purpose, to time the fan-out.

Printed: accepted shares/s, server CPU seconds per 1,000 accepted shares (and µs per share),
p50/p99 submit-to-reply latency, server resident memory per connection, and notify fan-out time
(the block share is sent -> the last miner holds the new job).
"""

from __future__ import annotations

import json
import os
import resource
import select
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from stratumkit.agent.work import MinerJob
from stratumkit.chain.template import stratum_prevhash
from stratumkit.hashing import scan_nonces, sha256d
from stratumkit.percentile import percentile
from stratumkit.protocol.client import ClientConnection
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


def _start_server(port: int, api_port: int, data_dir: str, filler: int) -> subprocess.Popen[bytes]:
    config = Path(data_dir) / "bench.toml"
    config.write_text(
        f'host = "127.0.0.1"\nport = {port}\napi_port = {api_port}\ndata_dir = "{data_dir}/pool"\n'
        f"start_difficulty = {SHARE_DIFFICULTY}\nmin_difficulty = {SHARE_DIFFICULTY}\n"
        f"max_difficulty = {SHARE_DIFFICULTY}\nembedded_difficulty = {BLOCK_DIFFICULTY}\n"
        f"embedded_filler_transactions = {filler}\nmax_connections_per_ip = 1000000\n"
        f"send_queue = 1024\nidle_timeout = 3600.0\nhandshake_timeout = 600.0\n"
        f'template_refresh = 3600.0\nlog_level = "warning"\n'
    )
    return subprocess.Popen([sys.executable, "-m", "stratumkit.cli", "serve", "--config", str(config)])


def _wait_port(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class Miner:
    """One simulated miner: a ClientConnection on a non-blocking socket."""

    __slots__ = (
        "conn",
        "difficulty",
        "extranonce1",
        "extranonce2",
        "extranonce2_size",
        "header76",
        "index",
        "job",
        "new_job_at",
        "next_nonce",
        "notify",
        "owed",
        "pending_out",
        "sent_at",
        "sock",
    )

    def __init__(self, index: int, sock: socket.socket) -> None:
        self.index = index
        self.sock = sock
        self.conn = ClientConnection()
        self.extranonce1 = b""
        self.extranonce2_size = 4
        self.extranonce2 = b""
        self.difficulty = 1.0
        self.job: MinerJob | None = None
        self.notify: Notify | None = None
        self.header76 = b""
        self.next_nonce = 0
        self.owed = 0.0
        self.sent_at: dict[int, float] = {}
        self.pending_out = b""
        self.new_job_at: float | None = None

    def set_job(self, job: MinerJob) -> None:
        self.job = job
        self.extranonce2 = self.index.to_bytes(self.extranonce2_size, "big")
        self.header76 = job.header76(self.extranonce1, self.extranonce2)
        self.next_nonce = 0

    def current_job(self) -> MinerJob | None:
        if self.job is None and self.notify is not None:
            self.set_job(MinerJob.from_notify(self.notify, self.difficulty))
        return self.job

    def make_shares(self, n: int) -> list[int]:
        assert self.job is not None
        found = scan_nonces(
            self.header76, self.next_nonce, min(64 * n, (1 << 32) - self.next_nonce), self.job.share_target, max_found=n
        )
        self.next_nonce = (found[-1] + 1) if found else self.next_nonce + 64 * n
        return found

    def send(self) -> None:
        data = self.pending_out + self.conn.data_to_send()
        if not data:
            return
        try:
            sent = self.sock.send(data)
        except BlockingIOError:
            sent = 0
        self.pending_out = data[sent:]


class Load:
    """The load generator: every miner in one epoll loop, no per-connection tasks, so that the
    generator stays cheap next to the server it measures."""

    def __init__(self, port: int, connections: int) -> None:
        self.port = port
        self.connections = connections
        self.epoll = select.epoll()
        self.miners: dict[int, Miner] = {}
        self.accepted = 0
        self.rejected = 0
        self.latencies: list[float] = []
        self.measuring = False

    def connect_all(self) -> None:
        for i in range(self.connections):
            sock = socket.create_connection(("127.0.0.1", self.port))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setblocking(False)
            miner = Miner(i, sock)
            self.miners[sock.fileno()] = miner
            self.epoll.register(sock.fileno(), select.EPOLLIN)
            miner.conn.subscribe("stratumkit-bench/0.1")
            miner.conn.authorize("bench.worker", "x")
            miner.send()
            if i % 256 == 255:
                self.poll(0)

    def poll(self, timeout: float) -> None:
        for fd, _ in self.epoll.poll(timeout):
            miner = self.miners[fd]
            try:
                data = miner.sock.recv(262144)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:
                raise RuntimeError(f"the server closed miner {miner.index}'s connection")
            now = time.perf_counter()
            for event in miner.conn.receive_data(data):
                kind = type(event)
                if kind is SubmitResult:
                    sent = miner.sent_at.pop(event.id, None)  # type: ignore[attr-defined]
                    if self.measuring and sent is not None:
                        self.latencies.append(now - sent)
                        if event.accepted:  # type: ignore[attr-defined]
                            self.accepted += 1
                        else:
                            self.rejected += 1
                elif kind is Notify:
                    assert isinstance(event, Notify)
                    # arrival is what the fan-out measures; building the job waits until the
                    # miner next submits, so 10,000 notifies are read as fast as they arrive
                    if miner.notify is not None and event.prevhash != miner.notify.prevhash:
                        miner.new_job_at = now
                    miner.notify = event
                    miner.job = None
                elif kind is SetDifficulty:
                    miner.difficulty = event.difficulty  # type: ignore[attr-defined]
                elif kind is SubscribeResult:
                    assert isinstance(event, SubscribeResult)
                    miner.extranonce1 = bytes.fromhex(event.extranonce1)
                    miner.extranonce2_size = event.extranonce2_size
            miner.send()

    def run_until(self, done: Callable[[], bool], timeout: float) -> None:
        deadline = time.perf_counter() + timeout
        while not done():
            if time.perf_counter() > deadline:
                raise TimeoutError("the bench waited too long for the server")
            self.poll(0.01)

    def watch_fanout(self, prevhash: bytes, timeout: float) -> float:
        """When the last miner received a notify for the new block: arrival times are taken at the
        read, looking for the new prevhash in the raw bytes, so no parsing delays the count."""
        waiting = set(self.miners)
        last = 0.0
        deadline = time.perf_counter() + timeout
        while waiting:
            if time.perf_counter() > deadline:
                raise TimeoutError(f"{len(waiting)} miners never got the new job")
            for fd, _ in self.epoll.poll(0.01):
                try:
                    data = self.miners[fd].sock.recv(262144)
                except BlockingIOError:
                    continue
                if fd in waiting and prevhash in data:
                    last = time.perf_counter()
                    waiting.discard(fd)
        return last

    def offer(self, rate: float, seconds: float, period: float = 0.05, slices: int = 10) -> None:
        """Each miner sends the shares it owes at `rate` in total once per `period`, the miners
        spread over `slices` evenly spaced moments of the period (real miners are not in step)."""
        miners = list(self.miners.values())
        groups = [miners[i::slices] for i in range(slices)]
        per_visit = rate * period / len(miners)
        step = period / slices
        end = time.perf_counter() + seconds
        next_step = time.perf_counter()
        turn = 0
        while (now := time.perf_counter()) < end:
            if now >= next_step:
                next_step += step
                for miner in groups[turn]:
                    miner.owed += per_visit
                    n = int(miner.owed)
                    if not n:
                        continue
                    job = miner.current_job()
                    if job is None:
                        continue
                    miner.owed -= n
                    en2, ntime = miner.extranonce2.hex(), f"{job.ntime:08x}"
                    for nonce in miner.make_shares(n):
                        request_id = miner.conn.submit("bench.worker", job.job_id, en2, ntime, f"{nonce:08x}")
                        miner.sent_at[request_id] = time.perf_counter()
                    miner.send()
                turn = (turn + 1) % slices
            self.poll(max(0.0, min(next_step - time.perf_counter(), end - time.perf_counter())))


def _mine_block(job: MinerJob, extranonce1: bytes, extranonce2: bytes) -> tuple[int, float]:
    header76 = job.header76(extranonce1, extranonce2)
    t0 = time.perf_counter()
    start = 0
    while True:
        found = scan_nonces(header76, start, 1 << 22, job.network_target, max_found=1)
        if found:
            return found[0], time.perf_counter() - t0
        start += 1 << 22


def bench(connections: int, rate: float, duration: float, filler: int) -> dict[str, float]:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if connections + 64 > hard:
        raise SystemExit(f"{connections} connections need more than the {hard} file descriptors allowed")
    port, api_port = _free_port(), _free_port()
    with tempfile.TemporaryDirectory(prefix="stratumkit-bench-") as data_dir:
        proc = _start_server(port, api_port, data_dir, filler)
        try:
            _wait_port(port, proc)
            time.sleep(0.5)
            rss0 = _proc_rss(proc.pid)
            load = Load(port, connections)
            t0 = time.perf_counter()
            load.connect_all()
            load.run_until(lambda: all(m.notify is not None for m in load.miners.values()), 120)
            connect_s = time.perf_counter() - t0
            load.poll(0.5)
            rss1 = _proc_rss(proc.pid)

            load.offer(rate, min(2.0, duration / 4))  # warm up
            load.measuring = True
            probe = subprocess.Popen(
                [sys.executable, "-m", "stratumkit.bench.probe", str(port), str(duration)], stdout=subprocess.PIPE
            )
            cpu0, w0, own0 = _proc_cpu(proc.pid), time.perf_counter(), time.process_time()
            load.offer(rate, duration)
            cpu1, w1, own1 = _proc_cpu(proc.pid), time.perf_counter(), time.process_time()
            load.measuring = False
            probe_out, _ = probe.communicate(timeout=60)
            probed = json.loads(probe_out)
            # every reply in flight lands first, so the fan-out is timed on a server that is idle
            load.run_until(lambda: not any(m.sent_at for m in load.miners.values()), 120)

            # fan-out: one miner solves a block; time until every miner holds the new job
            finder = next(iter(load.miners.values()))
            job = finder.current_job()
            assert job is not None
            nonce, mine_s = _mine_block(job, finder.extranonce1, finder.extranonce2)
            block_hash = sha256d(job.header76(finder.extranonce1, finder.extranonce2) + nonce.to_bytes(4, "little"))
            finder.conn.submit("bench.worker", job.job_id, finder.extranonce2.hex(), f"{job.ntime:08x}", f"{nonce:08x}")
            sent = time.perf_counter()
            finder.send()
            fanout = load.watch_fanout(stratum_prevhash(block_hash).encode(), 60) - sent
            with urllib.request.urlopen(f"http://127.0.0.1:{api_port}/v1/stats", timeout=10) as reply:
                server_fanout = json.load(reply)["pool"].get("last_fanout_ms")
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
        "probe_p50_ms": probed["p50_ms"],
        "probe_p99_ms": probed["p99_ms"],
        "probe_n": probed["n"],
        "rss_per_connection_kb": (rss1 - rss0) / connections / 1024,
        "fanout_ms": 1000 * fanout,
        "server_fanout_ms": server_fanout if server_fanout is not None else float("nan"),
        "block_mined_in_s": mine_s,
    }


def run(connections: int = 1000, rate: float = 20000, duration: float = 10.0, filler: int = 2500) -> None:
    print(
        f"stratumkit bench pool — {connections} miners, {rate:g} shares/s offered for {duration:g} s, "
        f"{filler} template transactions (merkle branch of {max(filler, 1).bit_length()} levels)"
    )
    r = bench(connections, rate, duration, filler)
    print(f"connected and got work in      {r['connect_s']:.2f} s")
    print(f"accepted shares/s              {r['accepted_per_s']:,.0f}  (rejected: {r['rejected']})")
    print(
        f"server CPU per 1,000 shares    {r['server_cpu_s_per_1000']:.4f} s  "
        f"({1000 * r['server_cpu_s_per_1000']:.1f} µs/share; server used {r['server_cpu_share_of_core']:.2f} of a core)"
    )
    print(f"load generator CPU             {r['client_cpu_share_of_core']:.2f} of a core")
    print(
        f"submit -> reply, probe miner   p50 {r['probe_p50_ms']:.2f} ms, p99 {r['probe_p99_ms']:.2f} ms "
        f"({r['probe_n']} shares from a separate process, one at a time)"
    )
    print(
        f"submit -> reply, load miners   p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms "
        "(includes the generator's own queueing across all its sockets)"
    )
    print(f"server memory per connection   {r['rss_per_connection_kb']:.1f} KB")
    print(
        f"notify fan-out (block -> last) {r['fanout_ms']:.1f} ms  "
        f"(the server's broadcast loop itself: {r['server_fanout_ms']:.1f} ms)"
    )
