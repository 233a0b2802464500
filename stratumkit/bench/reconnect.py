"""`python -m stratumkit.bench.reconnect`: how fast a rig agent is back on a restarted pool, and how
fast an external miner under the agent stops on a divert and mines again on a return.

Real processes: a `stratumkit serve` and a `stratumkit agent` (JSON logs read as they arrive; each
line is timed when this process reads it, on one monotonic clock).

- **graceful**: SIGTERM the pool (it sends `client.reconnect` with its `reconnect_wait`, 2 s by
  default), start it again on the same port; the figure is from the new pool's "pool listening"
  line to the agent's next "pool connected" (its handshake done and its rig registered). The agent
  waits the pool's `reconnect_wait` from the goodbye, so a pool back sooner than that is waited for.
- **kill9**: the same with SIGKILL (no `client.reconnect`: the agent's own backoff decides).
- **switch** (``--switch``, with `stratumkit mine` run by the agent as its ``--miner-cmd``): lease
  the rig (POST /v1/leases), then end the lease; then curtail it (POST /v1/curtail) and release
  it. Every figure starts when this process sends the API request. Divert/curtail -> last share:
  to the last "miner share" the agent logged before both its halt line and "serving lease" /
  "curtailed" (0: none came); -> halted: to "miner stopped" (the process has exited), "miner
  frozen" (SIGSTOP sent) or "local miner disconnected"; return/release -> accepted share: to the
  first accepted "miner share" after "back to mining" / "curtailment over: mining".
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import trio

from stratumkit.client import PoolClient

from .ports import free_ports

TIMEOUT = 60.0


class LoggedChild:
    """A child whose stderr is a JSON log; every record with the monotonic time it was read."""

    def __init__(self, process: trio.Process) -> None:
        self.process = process
        self.records: list[tuple[float, dict[str, Any]]] = []
        self._changed = trio.Event()

    @classmethod
    async def start(cls, nursery: trio.Nursery, args: list[str]) -> LoggedChild:
        process = await trio.lowlevel.open_process(
            [sys.executable, "-m", "stratumkit.cli", *args, "--log-format", "json"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        child = cls(process)
        nursery.start_soon(child._read)
        return child

    async def _read(self) -> None:
        assert self.process.stderr is not None
        buffer = b""
        async for chunk in self.process.stderr:
            now = trio.current_time()
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if isinstance(record, dict):
                    self.records.append((now, record))
            self._changed.set()
            self._changed = trio.Event()

    def count(self, name: str) -> int:
        return sum(1 for _, r in self.records if r.get("event") == name)

    async def wait(self, name: str, after: int = 0, **fields: Any) -> tuple[float, dict[str, Any]]:
        """The first `name` record (with these fields) after the first `after` of them."""
        with trio.fail_after(TIMEOUT):
            while True:
                seen = [(t, r) for t, r in self.records if r.get("event") == name]
                for t, r in seen[after:]:
                    if all(r.get(k) == v for k, v in fields.items()):
                        return t, r
                await self._changed.wait()

    def stop(self, signum: int) -> None:
        if self.process.returncode is None:
            self.process.send_signal(signum)


def _pool_args(port: int, api: int, data: Path) -> list[str]:
    return ["serve", "--host", "127.0.0.1", "--port", str(port), "--api-port", str(api), "--data-dir", str(data),
            "--start-difficulty", "0.0005", "--embedded-difficulty", "1", "--share-interval", "2"]  # fmt: skip


Figures = tuple[list[float], list[float], list[float], list[float], list[float], list[tuple[float, float, float]]]


async def _restarts(rounds: int, signum: int, miner_cmd: str | None, extra: list[str]) -> Figures:
    with tempfile.TemporaryDirectory(prefix="stratumkit-bench-reconnect-") as tmp:
        port, api = free_ports(2)
        async with trio.open_nursery() as nursery:
            pool = await LoggedChild.start(nursery, _pool_args(port, api, Path(tmp) / "pool"))
            await pool.wait("pool listening")
            flags = ["agent", "--pool", f"127.0.0.1:{port}", "--worker", "bench.rig", "--rig-id", "bench",
                     "--gpu", "RTX 4090:24576", "--duty", "0.1",
                     "--inference", "minilm", "--inference-threads", "1"]  # fmt: skip
            if miner_cmd:
                flags += ["--miner-cmd", miner_cmd, *extra]
            agent = await LoggedChild.start(nursery, flags)
            await agent.wait("pool connected")
            back: list[float] = []
            curtails: list[tuple[float, float, float]] = []
            down: list[float] = []
            pauses: list[float] = []
            halts: list[float] = []
            returns: list[float] = []
            for _ in range(rounds):
                if miner_cmd:
                    pause, halt, ret = await _switch(agent, api, extra[-1])
                    pauses.append(pause)
                    halts.append(halt)
                    returns.append(ret)
                    curtails.append(await _curtail(agent, api, extra[-1]))
                connected = agent.count("pool connected")
                stopped = trio.current_time()
                pool.stop(signum)
                await pool.process.wait()
                pool = await LoggedChild.start(nursery, _pool_args(port, api, Path(tmp) / "pool"))
                listening, _ = await pool.wait("pool listening")
                registered, _ = await agent.wait("pool connected", connected)
                back.append(registered - listening)
                down.append(listening - stopped)
            pool.stop(signal.SIGTERM)
            agent.stop(signal.SIGTERM)
            await pool.process.wait()
            await agent.process.wait()
        return back, down, pauses, halts, returns, curtails


#: What the agent logs once the miner is really not hashing, per --miner-stop.
HALTED = {"stop": "miner stopped", "signal": "miner frozen", "withhold": "local miner disconnected"}


def _last_share(agent: LoggedChild, since: float, until: float) -> float:
    """Seconds from ``since`` to the last "miner share" read up to ``until`` (0: none came)."""
    shares = [t for t, r in agent.records if r.get("event") == "miner share" and since <= t <= until]
    return (max(shares) - since) if shares else 0.0


async def _first_accepted(agent: LoggedChild, line: str, seen: int, since: float) -> float:
    """Seconds from ``since`` to the first accepted "miner share" after the agent's ``line``."""
    at, _ = await agent.wait(line, seen)
    after = sum(1 for t, r in agent.records if r.get("event") == "miner share" and t <= at)
    accepted, _ = await agent.wait("miner share", after, accepted=True)
    return accepted - since


async def _switch(agent: LoggedChild, api: int, method: str) -> tuple[float, float, float]:
    """One lease and its end: (divert -> last share, divert -> miner halted, return -> accepted
    share) in seconds, each from the moment the API request is sent."""
    await agent.wait("miner share", agent.count("miner share"), accepted=True)
    async with PoolClient(f"http://127.0.0.1:{api}") as client:
        serving_seen, halted_seen = agent.count("serving lease"), agent.count(HALTED[method])
        sent = trio.current_time()
        lease = await client.create_lease(count=1, queue="bench", duration_s=600)
        halted, _ = await agent.wait(HALTED[method], halted_seen)
        serving, _ = await agent.wait("serving lease", serving_seen)
        last_share = _last_share(agent, sent, max(halted, serving))
        returned_seen = agent.count("back to mining")
        ended = trio.current_time()
        await client.cancel_lease(lease["lease_id"])
        back = await _first_accepted(agent, "back to mining", returned_seen, ended)
    return last_share, halted - sent, back


async def _curtail(agent: LoggedChild, api: int, method: str) -> tuple[float, float, float]:
    """One curtailment of the rig and its release: (curtail -> last share, curtail -> miner halted,
    release -> accepted share) in seconds, each from the moment the API request is sent."""
    await agent.wait("miner share", agent.count("miner share"), accepted=True)
    async with PoolClient(f"http://127.0.0.1:{api}") as client:
        curtailed_seen, halted_seen = agent.count("curtailed"), agent.count(HALTED[method])
        sent = trio.current_time()
        await client.curtail(rigs=["bench"])
        halted, _ = await agent.wait(HALTED[method], halted_seen)
        curtailed, _ = await agent.wait("curtailed", curtailed_seen)
        last_share = _last_share(agent, sent, max(halted, curtailed))
        over_seen = agent.count("curtailment over: mining")
        released = trio.current_time()
        await client.release_curtailment()
        back = await _first_accepted(agent, "curtailment over: mining", over_seen, released)
    return last_share, halted - sent, back


def _line(name: str, values: list[float]) -> str:
    ms = sorted(v * 1000 for v in values)
    every = [round(v) for v in ms]
    return f"{name:<40} n={len(ms):<3} median {statistics.median(ms):6.0f} ms  max {ms[-1]:6.0f} ms  all {every}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m stratumkit.bench.reconnect", description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--switch", action="store_true", help="also time divert/return of `stratumkit mine` under the agent"
    )
    parser.add_argument("--miner-stop", choices=["stop", "signal", "withhold"], default="stop", help="with --switch")
    args = parser.parse_args(argv)
    miner_cmd = f"{sys.executable} -m stratumkit.cli mine -o {{url}} -u {{user}}" if args.switch else None
    stop = ["--miner-stop", args.miner_stop]

    async def run() -> None:
        graceful, graceful_down, pauses, halts, returns, curtails = await _restarts(
            args.rounds, signal.SIGTERM, miner_cmd, stop
        )
        killed, killed_down, *_ = await _restarts(args.rounds, signal.SIGKILL, None, [])
        print(_line("graceful: SIGTERM -> pool listening again", graceful_down))
        print(_line("graceful: pool back -> agent in", graceful))
        print(_line("kill -9: SIGKILL -> pool listening again", killed_down))
        print(_line("kill -9: pool back -> agent in", killed))
        if miner_cmd:
            print(_line(f"divert -> miner's last share ({args.miner_stop})", pauses))
            print(_line(f"divert -> {HALTED[args.miner_stop]}", halts))
            print(_line(f"return -> miner accepted share ({args.miner_stop})", returns))
            print(_line(f"curtail -> miner's last share ({args.miner_stop})", [c[0] for c in curtails]))
            print(_line(f"curtail -> {HALTED[args.miner_stop]}", [c[1] for c in curtails]))
            print(_line(f"release -> miner accepted share ({args.miner_stop})", [c[2] for c in curtails]))

    trio.run(run)


if __name__ == "__main__":
    main()
