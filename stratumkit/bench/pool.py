"""`stratumkit bench pool`: N miners over real TCP (or TLS) against a `stratumkit serve` process.

The server runs as its own process (so its CPU time and resident memory are read from /proc);
the miners live in this process, each a stratum client (the protocol's client role) on its own
socket, all driven by one epoll loop. Two load shapes: open (shares on a timer at a chosen total
rate, whatever the replies: one server read often carries several shares) and closed (each miner
keeps K shares outstanding and sends the next on each reply, as real miners do; see `loadgen`).
Valid shares are cheap to make here because the server is started with a tiny fixed share
difficulty (about one nonce in four qualifies), while the embedded chain's block difficulty stays
high enough that blocks happen only when the bench mines one on purpose, to time the fan-out.

One table row per run: accepted shares/s, rejected, server CPU µs per accepted share (measured
window only), server resident memory per connection, submit-to-reply p50/p99. Then the notify
fan-out (the block share is sent -> the last miner holds the new job) beside the single-thread
send floor: one thread sending as many lines of the notify's size to as many loopback sockets.
"""

from __future__ import annotations

import json
import os
import resource
import select
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stratumkit.agent.work import MinerJob
from stratumkit.bench.loadgen import (
    ClosedLoop,
    client_context,
    handshake,
    make_cert,
    open_socket,
    recv_ready,
    send_floor,
    send_some,
)
from stratumkit.chain.template import stratum_prevhash
from stratumkit.hashing import scan_nonces, sha256d
from stratumkit.percentile import percentile
from stratumkit.protocol.client import ClientConnection
from stratumkit.protocol.events import Notify, SetDifficulty, SubmitResult, SubscribeResult

from .ports import free_port as _free_port

SHARE_DIFFICULTY = 1e-9  # target ~ 2**254: about one nonce in four is a share
BLOCK_DIFFICULTY = 0.01  # ~43 M hashes per block: mined on purpose in ~2 s, never by accident


def _proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime + stime


def _proc_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


class ServerRefused(RuntimeError):
    """`serve` exited during start-up (for instance: it does not know a config key yet)."""


def _server_config(port: int, api_port: int, data_dir: str, filler: int, tls: tuple[int, str, str] | None) -> Path:
    config = Path(data_dir) / "bench.toml"
    text = (
        f'host = "127.0.0.1"\nport = {port}\napi_port = {api_port}\ndata_dir = "{data_dir}/pool"\n'
        f"start_difficulty = {SHARE_DIFFICULTY}\nmin_difficulty = {SHARE_DIFFICULTY}\n"
        f"max_difficulty = {SHARE_DIFFICULTY}\nembedded_difficulty = {BLOCK_DIFFICULTY}\n"
        f"embedded_filler_transactions = {filler}\nmax_connections_per_ip = 1000000\n"
        f"send_queue = 1024\nidle_timeout = 3600.0\nhandshake_timeout = 600.0\n"
        f'template_refresh = 3600.0\nlog_level = "warning"\n'
    )
    if tls is not None:
        text += f'tls_port = {tls[0]}\ntls_cert = "{tls[1]}"\ntls_key = "{tls[2]}"\n'
    config.write_text(text)
    return config


def _cpu_pressure() -> float | None:
    """The share of the last 10 s in which some task waited for a CPU (Linux PSI): a run taken
    while other work held the cores says so in its row."""
    try:
        first = Path("/proc/pressure/cpu").read_text().splitlines()[0]
    except (OSError, IndexError):
        return None
    return float(first.split()[1].removeprefix("avg10="))


def _start_server(config: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as err:
        return subprocess.Popen([sys.executable, "-m", "stratumkit.cli", "serve", "--config", str(config)], stderr=err)


def _wait_port(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            lines = log.read_text(errors="replace").strip().splitlines()
            raise ServerRefused(lines[-1] if lines else f"the server exited with {proc.returncode}")
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
        "handshaking",
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
        self.handshaking = isinstance(sock, ssl.SSLSocket)
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
        if not data or self.handshaking:
            self.pending_out = data
            return
        self.pending_out = data[send_some(self.sock, data) :]


class Load:
    """The load generator: every miner in one epoll loop, no per-connection tasks, so that the
    generator stays cheap next to the server it measures."""

    def __init__(self, port: int, connections: int, tls: ssl.SSLContext | None = None) -> None:
        self.port = port
        self.connections = connections
        self.tls = tls
        self.notify_line_bytes = 0
        self.epoll = select.epoll()
        self.miners: dict[int, Miner] = {}
        self.accepted = 0
        self.rejected = 0
        self.latencies: list[float] = []
        self.measuring = False

    def connect_all(self) -> None:
        for i in range(self.connections):
            sock = open_socket(self.port, self.tls)
            miner = Miner(i, sock)
            self.miners[sock.fileno()] = miner
            self.epoll.register(sock.fileno(), select.EPOLLIN)
            miner.conn.subscribe("stratumkit-bench/0.1")
            miner.conn.authorize("bench.worker", "x")
            if miner.handshaking:
                miner.handshaking = not handshake(sock)
            miner.send()
            if i % 256 == 255:
                self.poll(0)

    def poll(self, timeout: float) -> None:
        for fd, _ in self.epoll.poll(timeout):
            miner = self.miners[fd]
            if miner.handshaking:
                try:
                    miner.handshaking = not handshake(miner.sock)
                except OSError as exc:
                    raise RuntimeError(f"TLS handshake of miner {miner.index} failed: {exc}") from None
                miner.send()
                continue
            try:
                data = recv_ready(miner.sock)
            except OSError:
                raise RuntimeError(f"the server closed miner {miner.index}'s connection") from None
            if not data:
                continue
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
                data = recv_ready(self.miners[fd].sock)
                if fd in waiting and (at := data.find(prevhash)) >= 0:
                    last = time.perf_counter()
                    waiting.discard(fd)
                    if not self.notify_line_bytes:  # the real notify line's size, for the send floor
                        end = data.find(b"\n", at)
                        self.notify_line_bytes = (end if end >= 0 else len(data)) - data.rfind(b"\n", 0, at)
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


def _mine_block(job: MinerJob, extranonce1: bytes, extranonce2: bytes, start: int) -> tuple[int, float]:
    """A block-solving nonce, searched from `start` so that no share already sent is found again."""
    header76 = job.header76(extranonce1, extranonce2)
    t0 = time.perf_counter()
    while True:
        found = scan_nonces(header76, start, 1 << 22, job.network_target, max_found=1)
        if found:
            return found[0], time.perf_counter() - t0
        start += 1 << 22


@dataclass(frozen=True, slots=True)
class Run:
    """One row of the table: a load shape at one connection count, over plain TCP or TLS."""

    shape: str  # "closed" | "open"
    connections: int
    in_flight: int = 1
    rate: float = 20000.0
    tls: bool = False

    def words(self) -> str:
        if self.shape == "closed":
            return f"closed loop: each miner keeps {self.in_flight} share(s) out, the next sent on each reply"
        return f"open loop: {self.rate:g} shares/s in total on a timer, whatever the replies"


def bench(spec: Run, duration: float, filler: int, fanout: bool = True) -> dict[str, object]:
    """Start a server, connect `spec.connections` miners, load it, then (with `fanout`) time one block's
    notify to every miner and the single-thread send floor for the same number of lines."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if spec.connections + 64 > hard:
        raise SystemExit(f"{spec.connections} connections need more than the {hard} file descriptors allowed")
    port, api_port = _free_port(), _free_port()
    result: dict[str, object] = {
        "shape": spec.shape,
        "transport": "tls" if spec.tls else "tcp",
        "connections": spec.connections,
        "in_flight": spec.in_flight if spec.shape == "closed" else None,
        "offered_per_s": spec.rate if spec.shape == "open" else None,
        "shape_words": spec.words(),
    }
    with tempfile.TemporaryDirectory(prefix="stratumkit-bench-") as data_dir:
        tls = None
        if spec.tls:
            tls_port = _free_port()
            tls = (tls_port, *make_cert(data_dir))
        config = _server_config(port, api_port, data_dir, filler, tls)
        log = Path(data_dir) / "server.log"
        proc = _start_server(config, log)
        miner_port = tls[0] if tls else port
        load: Load | None = None
        try:
            _wait_port(miner_port, proc, log)
            time.sleep(0.5)
            rss0 = _proc_rss(proc.pid)
            load = Load(miner_port, spec.connections, client_context() if tls else None)
            t0 = time.perf_counter()
            load.connect_all()
            load.run_until(lambda: all(m.notify is not None for m in load.miners.values()), 300)
            result["connect_s"] = time.perf_counter() - t0
            load.poll(0.5)
            result["rss_per_connection_kb"] = (_proc_rss(proc.pid) - rss0) / spec.connections / 1024
            result.update(_load(spec, load, proc.pid, port, api_port, duration))
            if fanout:
                result.update(_fanout(load, api_port))
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
            if load is not None:
                for miner in load.miners.values():
                    miner.sock.close()
                load.epoll.close()
    if fanout and load is not None:
        # on a machine that is quiet again: the same number of lines, as big as the notify the miners got
        floor = send_floor(spec.connections, load.notify_line_bytes)
        result["notify_line_bytes"] = load.notify_line_bytes
        result["send_floor_ms"] = 1000 * floor
    return result


def _server_stats(api_port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{api_port}/v1/stats", timeout=10) as reply:
        stats: dict[str, Any] = json.load(reply)["pool"]
        return stats


def _load(spec: Run, load: Load, pid: int, plain_port: int, api_port: int, duration: float) -> dict[str, object]:
    """The measured window: server CPU from /proc at its edges only (start-up and connect excluded)."""
    marks: dict[str, float] = {}
    reasons: dict[str, int] = {}  # the server's reasons for its rejections

    def start() -> None:
        marks.update(batches0=_server_stats(api_port)["share_log"]["batches"])
        marks.update(cpu0=_proc_cpu(pid), own0=time.process_time())

    def stop() -> None:
        marks.update(cpu1=_proc_cpu(pid), own1=time.process_time())
        stats = _server_stats(api_port)
        marks.update(batches1=stats["share_log"]["batches"], blocks=len(stats["blocks_found"]))
        reasons.update(stats["rejected"])
        psi = _cpu_pressure()
        if psi is not None:
            marks["psi"] = psi

    probed: dict[str, float] = {}
    if spec.shape == "closed":
        loop = ClosedLoop(load, spec.in_flight)
        elapsed = loop.run(min(2.0, duration / 4), duration, start, stop)
        accepted, rejected, lat = loop.accepted, loop.rejected, loop.latencies
    else:
        load.offer(spec.rate, min(2.0, duration / 4))  # warm up
        load.measuring = True
        probe = subprocess.Popen(
            [sys.executable, "-m", "stratumkit.bench.probe", str(plain_port), str(duration)], stdout=subprocess.PIPE
        )
        start()
        w0 = time.perf_counter()
        load.offer(spec.rate, duration)
        elapsed = time.perf_counter() - w0
        stop()
        load.measuring = False
        probe_out, _ = probe.communicate(timeout=60)
        probed = json.loads(probe_out)
        # every reply in flight lands first, so the fan-out is timed on a server that is idle
        load.run_until(lambda: not any(m.sent_at for m in load.miners.values()), 120)
        accepted, rejected, lat = load.accepted, load.rejected, load.latencies
    server_cpu = marks["cpu1"] - marks["cpu0"]
    out: dict[str, object] = {
        "seconds": elapsed,
        "accepted_per_s": accepted / elapsed,
        "rejected": rejected,
        "rejected_reasons": reasons,
        "blocks_found": marks["blocks"],
        "server_cpu_us_per_share": 1e6 * server_cpu / max(accepted, 1),
        "server_cpu_share_of_core": server_cpu / elapsed,
        "shares_per_sync": accepted / max(marks["batches1"] - marks["batches0"], 1),
        "client_cpu_share_of_core": (marks["own1"] - marks["own0"]) / elapsed,
        "p50_ms": 1000 * percentile(lat, 0.5) if lat else float("nan"),
        "p99_ms": 1000 * percentile(lat, 0.99) if lat else float("nan"),
        "cpu_pressure_pct": marks.get("psi"),
    }
    if probed:
        out.update(probe_p50_ms=probed["p50_ms"], probe_p99_ms=probed["p99_ms"], probe_n=probed["n"])
    return out


def _fanout(load: Load, api_port: int) -> dict[str, object]:
    """One miner solves a block; the time from its send until every miner holds the new job."""
    finder = next(iter(load.miners.values()))
    job = finder.current_job()
    assert job is not None
    nonce, mine_s = _mine_block(job, finder.extranonce1, finder.extranonce2, finder.next_nonce)
    block_hash = sha256d(job.header76(finder.extranonce1, finder.extranonce2) + nonce.to_bytes(4, "little"))
    finder.conn.submit("bench.worker", job.job_id, finder.extranonce2.hex(), f"{job.ntime:08x}", f"{nonce:08x}")
    sent = time.perf_counter()
    finder.send()
    fanout = load.watch_fanout(stratum_prevhash(block_hash).encode(), 60) - sent
    with urllib.request.urlopen(f"http://127.0.0.1:{api_port}/v1/stats", timeout=10) as reply:
        server_fanout = json.load(reply)["pool"].get("last_fanout_ms")
    return {
        "fanout_ms": 1000 * fanout,
        "server_fanout_ms": server_fanout if server_fanout is not None else float("nan"),
        "block_mined_in_s": mine_s,
    }


_COLUMNS = (
    ("shape", "shape", "{}"),
    ("transport", "tls", "{}"),
    ("connections", "conns", "{:,}"),
    ("in_flight", "in-flight", "{}"),
    ("offered_per_s", "offered/s", "{:,.0f}"),
    ("accepted_per_s", "accepted/s", "{:,.0f}"),
    ("rejected", "rejected", "{}"),
    ("server_cpu_us_per_share", "srv µs/share", "{:.1f}"),
    ("server_cpu_share_of_core", "srv cores", "{:.2f}"),
    ("shares_per_sync", "per sync", "{:.1f}"),
    ("client_cpu_share_of_core", "gen cores", "{:.2f}"),
    ("rss_per_connection_kb", "KB/conn", "{:.1f}"),
    ("p50_ms", "p50 ms", "{:.2f}"),
    ("p99_ms", "p99 ms", "{:.2f}"),
    ("cpu_pressure_pct", "cpu psi %", "{:.0f}"),
)


def _cell(result: dict[str, object], key: str, fmt: str) -> str:
    value = result.get(key)
    return "-" if value is None else fmt.format(value)


def run(
    connections: Sequence[int] = (1000,),
    rate: float = 20000,
    duration: float = 10.0,
    filler: int = 2500,
    shape: str = "open",
    in_flight: int = 1,
    tls: bool = False,
    fanout: bool = True,
    as_json: bool = False,
) -> None:
    """One run per connection count (and per transport with `tls`): a table row each, or a JSON line."""
    specs = [Run(shape, n, in_flight, rate, t) for n in connections for t in ((False, True) if tls else (False,))]
    widths = [max(len(title), 10) for _, title, _ in _COLUMNS]
    if not as_json:
        print(
            f"stratumkit bench pool — {duration:g} s per run, {filler} template transactions "
            f"(merkle branch of {max(filler, 1).bit_length()} levels); the load generator and the server "
            f"share this machine's {os.cpu_count()} cores"
        )
        print("  ".join(title.rjust(w) for (_, title, _), w in zip(_COLUMNS, widths, strict=True)), flush=True)
    notes: list[str] = []
    tls_refused: str | None = None
    for spec in specs:
        if spec.tls and tls_refused is not None:
            continue
        try:
            r = bench(spec, duration, filler, fanout)
        except ServerRefused as exc:
            if not spec.tls:
                raise
            tls_refused = str(exc)
            note = f"TLS runs skipped: the server refused the TLS config (tls_port/tls_cert/tls_key): {exc}"
            print(json.dumps({"tls_skipped": tls_refused}) if as_json else note, flush=True)
            continue
        if as_json:
            print(json.dumps(r), flush=True)
            continue
        cells = [_cell(r, key, fmt) for key, _, fmt in _COLUMNS]
        print("  ".join(c.rjust(w) for c, w in zip(cells, widths, strict=True)), flush=True)
        if r.get("rejected") or r.get("blocks_found"):
            notes.append(
                f"{spec.connections:,} {r['transport']} {spec.shape}: the server's reasons for rejecting: "
                f"{r.get('rejected_reasons') or 'none'}; blocks found during the run: {r.get('blocks_found')}"
            )
        if "probe_p50_ms" in r:
            notes.append(
                f"{spec.connections:,} {r['transport']} {spec.shape}: probe miner (own process, one share at a time) "
                f"p50 {r['probe_p50_ms']:.2f} ms, p99 {r['probe_p99_ms']:.2f} ms over {r['probe_n']} shares"
            )
        if "fanout_ms" in r:
            notes.append(
                f"{r['transport']} fan-out to {spec.connections:,}: {r['fanout_ms']:.1f} ms "
                f"(server loop {r['server_fanout_ms']:.1f} ms); single-thread send floor: {r['send_floor_ms']:.1f} ms "
                f"({spec.connections:,} sends of {r['notify_line_bytes']} B, plain TCP)"
            )
    if not as_json:
        for spec in {s.shape: s for s in specs}.values():
            print(f"{spec.shape}: {spec.words()}")
        print("cpu psi %: of the last 10 s of the run, the share in which some task waited for a core (0 = quiet)")
        for note in notes:
            print(note)
