"""`stratumkit bench curtail`: how fast an operator's curtailment stops rigs, and its release restarts them.

A `stratumkit serve` process (real stratum, real HTTP) and `--rigs` rig agents in this process
(each its own stratum connection and CPU miner, at a low duty so that many fit on one machine,
in short scans so that a paused or resumed miner follows within a duty pause),
each timestamping the pool's verdicts on its shares as they arrive. Each round:

- curtail: POST /v1/curtail {"all": true}, then per rig: the curtail command's arrival, and the
  last share the pool accepted from it (after a settling second: any share the pool accepted
  after the call counts; none after it reads as 0). The pool refuses a curtailed connection's
  shares, so a share accepted late is one the pool judged before it carried the order out.
- release: POST /v1/curtail/release, then per rig: the clean job's arrival, and the first share
  accepted after the call (the agent resumes on the command, the pool sends fresh work at a
  quick difficulty).

Times are from just before the HTTP call, on this process's monotonic clock.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import trio

from stratumkit.agent.rig import AgentConfig, RigAgent
from stratumkit.client import PoolClient
from stratumkit.percentile import percentile
from stratumkit.protocol import rig as wire
from stratumkit.protocol.events import Event, ExtensionNotification, Notify, SubmitResult

from .lease import _healthy, _until
from .ports import serve_on_free_ports, stop

__all__ = ["TimedAgent", "bench", "run"]

DUTY = 0.005
#: Nonces per scan: small, so that a duty pause (scan time x (1 - duty) / duty) stays well under a second.
CHUNK = 2048
SETTLE_S = 1.0

POOL_TOML = """
host = "127.0.0.1"
data_dir = "{data}"
start_difficulty = 0.0005
embedded_difficulty = 1.0
share_interval = 1.0
log_level = "warning"
max_connections_per_ip = 1000

[power]
power_usd_per_kwh = -0.01  # the policy says mine: only the operator curtails
hashprice_usd_per_th_day = 0.05
gpu_usd_per_hour = 0.3
policy_interval_s = 3600
"""


class TimedAgent(RigAgent):
    """A rig agent that notes when its shares are accepted and when curtail commands arrive."""

    def __init__(self, config: AgentConfig) -> None:
        super().__init__(config, None)
        self.accepted_at: list[float] = []
        self.curtail_at: list[float] = []
        self.clean_at: list[float] = []

    def _on_event(self, event: Event) -> None:
        if isinstance(event, SubmitResult) and event.accepted:
            self.accepted_at.append(time.monotonic())
        elif isinstance(event, ExtensionNotification) and event.method == wire.RigCurtail.METHOD:
            self.curtail_at.append(time.monotonic())
        elif isinstance(event, Notify) and event.clean_jobs:
            self.clean_at.append(time.monotonic())
        super()._on_event(event)


async def bench(rounds: int, rigs: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {
        "command": [],
        "last_share": [],
        "work": [],
        "first_share": [],
        "api": [],
        "shed_kw": [],
    }
    with tempfile.TemporaryDirectory(prefix="stratumkit-bench-curtail-") as tmp:
        config = Path(tmp) / "pool.toml"
        config.write_text(POOL_TOML.format(data=Path(tmp) / "pool"))

        def launch(ports: list[int]) -> subprocess.Popen[bytes]:
            stratum, api = ports
            command = [sys.executable, "-m", "stratumkit.cli", "serve", "--config", str(config),
                       "--port", str(stratum), "--api-port", str(api)]  # fmt: skip
            return subprocess.Popen(command, env=dict(os.environ, PYTHONUNBUFFERED="1"))

        server, (stratum, api) = await trio.to_thread.run_sync(serve_on_free_ports, launch, 2)
        try:
            async with PoolClient(f"http://127.0.0.1:{api}") as client, trio.open_nursery() as nursery:
                await _until(lambda: _healthy(client), timeout=30, interval=0.05)
                agents = []
                for i in range(rigs):
                    gpus = [("RTX 4090", 24576)]
                    cfg = AgentConfig("127.0.0.1", stratum, f"bench{i}.rig", rig_id=f"rig-{i:03d}",
                                      gpus=gpus, power_w=300.0 + i, duty=DUTY, chunk=CHUNK)  # fmt: skip
                    agent = TimedAgent(cfg)
                    await nursery.start(agent.run)
                    agents.append(agent)

                async def all_mining() -> bool:
                    listed = await client.rigs()
                    return len(listed) == rigs and all(r["accepted_shares"] > 0 for r in listed)

                await _until(all_mining, timeout=120, interval=0.1)
                for _ in range(rounds):
                    t0 = time.monotonic()
                    shed = await client.curtail(all=True)
                    out["api"].append(time.monotonic() - t0)
                    out["shed_kw"].append(float(shed["shed_kw"]))
                    await _until(lambda: _all_mode(agents, "curtailed"), timeout=30, interval=0.005)
                    await trio.sleep(SETTLE_S)  # shares the pool judged before the order, arriving late
                    for agent in agents:
                        out["command"].append(max(t for t in agent.curtail_at) - t0)
                        late = [t for t in agent.accepted_at if t >= t0]
                        out["last_share"].append(max(late) - t0 if late else 0.0)
                    t1 = time.monotonic()
                    await client.release_curtailment()
                    out["api"].append(time.monotonic() - t1)

                    async def all_back(t1: float = t1) -> bool:
                        # the lists grow in time order: the last entry says it, in O(1) per rig
                        # (a scan of every share so far, 200 times a second, took this process's
                        # loop from the agents it times)
                        return all(a.accepted_at and a.accepted_at[-1] >= t1 for a in agents)

                    await _until(all_back, timeout=60, interval=0.005)
                    for agent in agents:
                        out["first_share"].append(min(t for t in agent.accepted_at if t >= t1) - t1)
                        out["work"].append(min(t for t in agent.clean_at if t >= t1) - t1)
                nursery.cancel_scope.cancel()
        finally:
            stop(server)
    return out


async def _all_mode(agents: list[TimedAgent], mode: str) -> bool:
    return all(a.mode == mode for a in agents)


def run(rounds: int = 5, rigs: int = 100) -> None:
    print(f"stratumkit bench curtail — {rounds} rounds, {rigs} rig agents in one process (duty {DUTY})")
    r = trio.run(bench, rounds, rigs)
    print(f"shed per round: {sorted(set(r['shed_kw']))} kW; API answer p50 {1000 * percentile(r['api'], 0.5):.1f} ms")
    for name, label in (
        ("command", "curtail call -> command at the rig"),
        ("last_share", "curtail call -> last accepted share"),
        ("work", "release call -> clean job at the rig"),
        ("first_share", "release call -> first accepted share"),
    ):
        v = r[name]
        print(
            f"{label:<38} p50 {1000 * percentile(v, 0.5):7.1f} ms   p99 {1000 * percentile(v, 0.99):7.1f} ms   "
            f"max {1000 * max(v):7.1f} ms   (n={len(v)}, target p99 <= 1000 ms)"
        )
