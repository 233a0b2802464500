"""`stratumkit bench mining`: the pool's accounting held against what a miner knows it did.

Each figure runs a `stratumkit serve` child on the embedded chain (its block difficulty set high,
so every share is credited at the difficulty the pool asked for and none is also a block) and one
closed-loop miner in this process: it scans nonces in a worker thread with the native core,
submits each share it finds and waits for the verdict, as real miners do.

- ``hashrate``: fixed share difficulty; after ``seconds`` the pool's estimate for the worker
  (``GET /v1/stats``) beside the rate the miner counted itself (nonces scanned / time mined).
  The estimate is a count of shares, so it can only be as good as ``1/sqrt(shares)``; that band
  is printed beside it.
- ``credit``: vardiff ramps the miner from a low start difficulty; per job id, the difficulty the
  share log credited beside the difficulty the miner was asked for (the last
  ``mining.set_difficulty`` before that job's ``mining.notify``). It must match exactly.
- ``reconnect``: the pool is stopped with SIGTERM and started again on the same port; the miner
  follows ``client.reconnect`` (waits what it is told, then connects, retrying every
  ``RETRY_INTERVAL``). Printed: restart time, and time from the pool listening again to the
  miner's first accepted share on it.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import trio

from stratumkit.agent.stratum import StratumClient, StratumClientError
from stratumkit.agent.work import MinerJob
from stratumkit.client import PoolClient
from stratumkit.hashing import scan_nonces
from stratumkit.protocol.events import Event, Notify, Reconnect, SetDifficulty, SubmitResult
from stratumkit.shares.log import read_records

from .ports import free_ports, serve_on_free_ports

WORKER = "bench.miner"
#: Nonces per scan call: a few milliseconds, so a new job is picked up quickly.
CHUNK = 1 << 16
#: How often a miner that was told to reconnect tries again while the pool is not back yet.
RETRY_INTERVAL = 0.1
#: Block difficulty of the embedded chain in these runs: far above any share difficulty used.
EMBEDDED_DIFFICULTY = 1e6


@dataclass
class ShareSent:
    job_id: str
    job_difficulty: float  # the difficulty in force when the job's notify arrived
    current_difficulty: float  # the last set_difficulty when the share was found
    accepted: bool


@dataclass
class BenchMiner:
    """A closed-loop miner: one share in flight, the job and difficulty as the pool last sent."""

    difficulty: float = 1.0
    job: MinerJob | None = None
    job_difficulty: dict[str, float] = field(default_factory=dict)
    shares: list[ShareSent] = field(default_factory=list)
    hashes: int = 0
    reconnect: Reconnect | None = None
    new_job: trio.Event = field(default_factory=trio.Event)
    extranonce2: itertools.count[int] = field(default_factory=itertools.count)

    def on_event(self, event: Event) -> None:
        if isinstance(event, SetDifficulty):
            self.difficulty = event.difficulty
        elif isinstance(event, Notify):
            self.job = MinerJob.from_notify(event, self.difficulty)
            self.job_difficulty[event.job_id] = self.difficulty
            self.new_job.set()
        elif isinstance(event, Reconnect):
            self.reconnect = event

    async def mine(self, client: StratumClient, extranonce1: bytes, extranonce2_size: int, until: float) -> None:
        """Scan and submit until `until` (monotonic) or the connection ends."""
        while time.monotonic() < until and not client.closed.is_set():
            job = self.job
            if job is None:
                self.new_job = trio.Event()
                with trio.move_on_after(0.5):
                    await self.new_job.wait()
                continue
            extranonce2 = next(self.extranonce2).to_bytes(extranonce2_size, "big")
            header76 = job.header76(extranonce1, extranonce2)
            for start in range(0, 1 << 32, CHUNK):
                if self.job is not job or time.monotonic() >= until or client.closed.is_set():
                    break
                found = await trio.to_thread.run_sync(scan_nonces, header76, start, CHUNK, job.share_target, 64)
                self.hashes += CHUNK
                for nonce in found:
                    current = self.difficulty
                    try:
                        reply = await client.call(
                            client.conn.submit,
                            WORKER,
                            job.job_id,
                            extranonce2.hex(),
                            f"{job.ntime:08x}",
                            f"{nonce:08x}",
                        )
                    except StratumClientError:
                        return
                    accepted = isinstance(reply, SubmitResult) and reply.accepted
                    self.shares.append(ShareSent(job.job_id, self.job_difficulty[job.job_id], current, accepted))


def _launch(data_dir: Path, config: Path, *flags: str) -> tuple[subprocess.Popen[bytes], int, int]:
    def launch(ports: list[int]) -> subprocess.Popen[bytes]:
        return _serve(data_dir, config, ports[0], ports[1], *flags)

    proc, (stratum, api) = serve_on_free_ports(launch, 2)
    return proc, stratum, api


def _serve(data_dir: Path, config: Path, stratum: int, api: int, *flags: str) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "stratumkit.cli", "serve", "--config", str(config)]
    cmd += ["--host", "127.0.0.1", "--port", str(stratum), "--api-port", str(api), "--data-dir", str(data_dir)]
    cmd += ["--embedded-difficulty", str(EMBEDDED_DIFFICULTY), "--log-level", "warning", *flags]
    return subprocess.Popen(cmd, env=dict(os.environ, PYTHONUNBUFFERED="1"))


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _scan_rate() -> float:
    """This machine's single-thread scan rate (hashes/s), to choose difficulties from."""
    n, t0 = 0, time.monotonic()
    while time.monotonic() - t0 < 0.3:
        scan_nonces(bytes(76), n, CHUNK, 0)
        n += CHUNK
    return n / (time.monotonic() - t0)


def _difficulty_for(rate: float, shares_per_s: float) -> float:
    return rate / shares_per_s / 2**32


async def _session(miner: BenchMiner, port: int, seconds: float) -> None:
    async with trio.open_nursery() as nursery:
        client = await StratumClient.connect(nursery, "127.0.0.1", port, on_event=miner.on_event)
        sub = await client.handshake(WORKER)
        await miner.mine(client, bytes.fromhex(sub.extranonce1), sub.extranonce2_size, time.monotonic() + seconds)
        nursery.cancel_scope.cancel()


async def hashrate(seconds: float, shares_per_s: float) -> dict[str, float]:
    rate = _scan_rate()
    difficulty = _difficulty_for(rate, shares_per_s)
    with tempfile.TemporaryDirectory(prefix="stratumkit-bench-mining-") as tmp:
        config = Path(tmp) / "pool.toml"
        config.write_text("")
        d = f"{difficulty:.9g}"
        flags = ["--start-difficulty", d, "--min-difficulty", d, "--max-difficulty", d]
        proc, stratum, api = await trio.to_thread.run_sync(lambda: _launch(Path(tmp) / "pool", config, *flags))
        try:
            miner = BenchMiner()
            started = time.monotonic()
            await _session(miner, stratum, seconds)
            mined = time.monotonic() - started
            async with PoolClient(f"http://127.0.0.1:{api}") as client:
                stats = await client.stats()
        finally:
            await trio.to_thread.run_sync(_stop, proc)
    worker = stats["pool"]["workers"][WORKER]
    accepted = sum(s.accepted for s in miner.shares)
    known = miner.hashes / mined
    return {
        "seconds": mined,
        "difficulty": difficulty,
        "shares": accepted,
        "miner_hps": known,
        "pool_hps": float(worker["hashrate"]),
        "error": float(worker["hashrate"]) / known - 1,
        "noise": 1 / math.sqrt(max(accepted, 1)),
    }


async def credit(seconds: float) -> dict[str, float]:
    rate = _scan_rate()
    start = _difficulty_for(rate, 50.0)  # vardiff has to ramp it up to one share a second
    with tempfile.TemporaryDirectory(prefix="stratumkit-bench-mining-") as tmp:
        config = Path(tmp) / "pool.toml"
        config.write_text("")
        data = Path(tmp) / "pool"
        flags = ["--start-difficulty", f"{start:.9g}", "--min-difficulty", f"{start / 100:.9g}"]
        flags += ["--share-interval", "1"]
        proc, stratum, _ = await trio.to_thread.run_sync(lambda: _launch(data, config, *flags))
        try:
            miner = BenchMiner()
            await _session(miner, stratum, seconds)
        finally:
            await trio.to_thread.run_sync(_stop, proc)
        logged: defaultdict[str, float] = defaultdict(float)
        logged_count: defaultdict[str, int] = defaultdict(int)
        for record in read_records(data / "shares"):
            logged[record.job_id] += record.difficulty
            logged_count[record.job_id] += 1
    asked: defaultdict[str, float] = defaultdict(float)
    at_once: defaultdict[str, float] = defaultdict(float)
    asked_count: defaultdict[str, int] = defaultdict(int)
    for share in miner.shares:
        if share.accepted:
            asked[share.job_id] += share.job_difficulty
            at_once[share.job_id] += share.current_difficulty
            asked_count[share.job_id] += 1
    jobs = set(asked) | set(logged)
    mismatched = [
        j for j in jobs if not math.isclose(asked[j], logged[j], rel_tol=1e-12) or asked_count[j] != logged_count[j]
    ]
    return {
        "seconds": seconds,
        "jobs": len(jobs),
        "difficulties": len(set(miner.job_difficulty.values())),
        "shares": sum(asked_count.values()),
        "rejected": sum(not s.accepted for s in miner.shares),
        "miner_target_sum": sum(asked.values()),
        "credited_sum": sum(logged.values()),
        "at_once_sum": sum(at_once.values()),
        "jobs_mismatched": len(mismatched),
    }


async def _first_accepted(miner: BenchMiner, port: int) -> None:
    """Connect (retrying while refused), then mine until one share is accepted."""
    while True:
        try:
            stream = await trio.open_tcp_stream("127.0.0.1", port)
        except OSError:
            await trio.sleep(RETRY_INTERVAL)
            continue
        try:
            async with trio.open_nursery() as nursery:
                client = StratumClient(stream, on_event=miner.on_event)
                nursery.start_soon(client.read_loop)
                sub = await client.handshake(WORKER)
                before = sum(s.accepted for s in miner.shares)
                extranonce1 = bytes.fromhex(sub.extranonce1)
                while sum(s.accepted for s in miner.shares) == before:
                    await miner.mine(client, extranonce1, sub.extranonce2_size, time.monotonic() + 0.05)
                nursery.cancel_scope.cancel()
                return
        except* (OSError, StratumClientError, trio.BrokenResourceError):
            await trio.sleep(RETRY_INTERVAL)


async def reconnect(restarts: int, wait: float) -> dict[str, list[float]]:
    rate = _scan_rate()
    difficulty = f"{_difficulty_for(rate, 20.0):.9g}"
    restart_s: list[float] = []
    back_to_share: list[float] = []
    told: list[float] = []
    with tempfile.TemporaryDirectory(prefix="stratumkit-bench-mining-") as tmp:
        config = Path(tmp) / "pool.toml"
        config.write_text(f"reconnect_wait = {wait}\n")
        data = Path(tmp) / "pool"
        flags = ["--start-difficulty", difficulty, "--min-difficulty", difficulty, "--max-difficulty", difficulty]
        stratum, api = free_ports(2)
        proc = _serve(data, config, stratum, api, *flags)
        try:
            await _until_listening(proc, stratum)
            miner = BenchMiner()
            await _first_accepted(miner, stratum)
            for _ in range(restarts):
                miner.reconnect = None
                async with trio.open_nursery() as nursery:
                    client = await StratumClient.connect(nursery, "127.0.0.1", stratum, on_event=miner.on_event)
                    await client.handshake(WORKER)
                    stopped = time.monotonic()
                    proc.send_signal(signal.SIGTERM)
                    await client.closed.wait()
                    nursery.cancel_scope.cancel()
                told.append(1.0 if miner.reconnect is not None else 0.0)
                await trio.to_thread.run_sync(proc.wait)
                proc = _serve(data, config, stratum, api, *flags)
                back_at: list[float] = []
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(_note_listening, proc, stratum, back_at)
                    pause = miner.reconnect.wait if miner.reconnect and miner.reconnect.wait is not None else 0.0
                    await trio.sleep(max(0.0, stopped + pause - time.monotonic()))
                    await _first_accepted(miner, stratum)
                    shared = time.monotonic()
                restart_s.append(back_at[0] - stopped)
                back_to_share.append(shared - back_at[0])
        finally:
            await trio.to_thread.run_sync(_stop, proc)
    return {"told_to_reconnect": told, "restart_s": restart_s, "back_to_first_share_s": back_to_share}


async def _note_listening(proc: subprocess.Popen[bytes], port: int, at: list[float]) -> None:
    await _until_listening(proc, port)
    at.append(time.monotonic())


async def _until_listening(proc: subprocess.Popen[bytes], port: int) -> None:
    with trio.fail_after(30):
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"stratumkit serve exited with {proc.returncode} at start")
            try:
                stream = await trio.open_tcp_stream("127.0.0.1", port)
            except OSError:
                await trio.sleep(0.01)
                continue
            await stream.aclose()
            return


def run(what: str, seconds: float, restarts: int, wait: float, as_json: bool) -> None:
    if what in ("all", "hashrate"):
        h = trio.run(hashrate, seconds, 20.0)
        _show("hashrate", h, as_json)
        if not as_json:
            print(
                f"hashrate over {h['seconds']:.0f} s at difficulty {h['difficulty']:.3g}:"
                f" miner {h['miner_hps'] / 1e6:.3f} MH/s,"
                f" pool {h['pool_hps'] / 1e6:.3f} MH/s ({h['error']:+.1%}; {h['shares']:.0f} shares:"
                f" noise ±{h['noise']:.1%})"
            )
    if what in ("all", "credit"):
        c = trio.run(credit, seconds)
        _show("credit", c, as_json)
        if not as_json:
            print(
                f"credit through a vardiff ramp ({c['difficulties']:.0f} difficulties, {c['jobs']:.0f} jobs,"
                f" {c['shares']:.0f} shares, {c['rejected']:.0f} rejected):"
                f" miner's targets {c['miner_target_sum']:.6g},"
                f" credited {c['credited_sum']:.6g}, jobs that differ {c['jobs_mismatched']:.0f}"
                f" (at the difficulty current when found: {c['at_once_sum']:.6g})"
            )
    if what in ("all", "reconnect"):
        r = trio.run(reconnect, restarts, wait)
        _show("reconnect", r, as_json)
        if not as_json:
            told = sum(r["told_to_reconnect"])
            print(
                f"graceful restart x{restarts} (reconnect_wait {wait:g} s, told {told:.0f}/{restarts}):"
                f" pool back after {_span(r['restart_s'])} s;"
                f" first accepted share {_span(r['back_to_first_share_s'])} s after it listens again"
            )


def _span(values: list[float]) -> str:
    return f"{min(values):.2f}-{max(values):.2f}" if values else "-"


def _show(name: str, figures: object, as_json: bool) -> None:
    if as_json:
        print(json.dumps({"figure": name, **figures} if isinstance(figures, dict) else figures), flush=True)
