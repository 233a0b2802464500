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
  the rig, then end the lease. Divert -> last share: from the agent's "miner paused" to the last
  "miner share" it logged before "serving lease" (0: none came); divert -> halted: to "miner
  stopped" (the process has exited), "miner frozen" (SIGSTOP sent) or "local miner disconnected";
  return -> accepted share: from "back to mining" to the next accepted "miner share". Both ends
  of each figure are lines of the agent's own log.
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


async def _restarts(
    rounds: int, signum: int, miner_cmd: str | None, extra: list[str]
) -> tuple[list[float], list[float], list[float], list[float], list[float]]:
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
        return back, down, pauses, halts, returns


#: What the agent logs once the miner is really not hashing, per --miner-stop.
HALTED = {"stop": "miner stopped", "signal": "miner frozen", "withhold": "local miner disconnected"}


async def _switch(agent: LoggedChild, api: int, method: str) -> tuple[float, float, float]:
    """One lease and its end: (divert -> last share, divert -> miner halted, return -> accepted
    share) in seconds."""
    await agent.wait("miner share", agent.count("miner share"), accepted=True)
    async with PoolClient(f"http://127.0.0.1:{api}") as client:
        paused_seen, serving_seen = agent.count("miner paused"), agent.count("serving lease")
        halted_seen = agent.count(HALTED[method])
        lease = await client.create_lease(count=1, queue="bench", duration_s=600)
        paused, _ = await agent.wait("miner paused", paused_seen)
        halted, _ = await agent.wait(HALTED[method], halted_seen)
        serving, _ = await agent.wait("serving lease", serving_seen)
        shares = [t for t, r in agent.records if r.get("event") == "miner share" and paused <= t <= serving]
        last_share = (max(shares) - paused) if shares else 0.0
        returned_seen = agent.count("back to mining")
        await client.cancel_lease(lease["lease_id"])
        returned, _ = await agent.wait("back to mining", returned_seen)
        after = sum(1 for t, r in agent.records if r.get("event") == "miner share" and t <= returned)
        accepted, _ = await agent.wait("miner share", after, accepted=True)
    return last_share, halted - paused, accepted - returned


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
        graceful, graceful_down, pauses, halts, returns = await _restarts(args.rounds, signal.SIGTERM, miner_cmd, stop)
        killed, killed_down, _, _, _ = await _restarts(args.rounds, signal.SIGKILL, None, [])
        print(_line("graceful: SIGTERM -> pool listening again", graceful_down))
        print(_line("graceful: pool back -> agent in", graceful))
        print(_line("kill -9: SIGKILL -> pool listening again", killed_down))
        print(_line("kill -9: pool back -> agent in", killed))
        if miner_cmd:
            print(_line(f"divert -> miner's last share ({args.miner_stop})", pauses))
            print(_line(f"divert -> {HALTED[args.miner_stop]}", halts))
            print(_line(f"return -> miner accepted share ({args.miner_stop})", returns))

    trio.run(run)


if __name__ == "__main__":
    main()
