"""`stratumkit bench lease`: how fast rigs switch, measured from the integrator's side of the API.

A `stratumkit serve` process and `--rigs` `stratumkit agent` processes (real stratum, real HTTP).
Each round leases one rig and times:
- API call -> rig serving: POST /v1/leases until the lease reads `serving` (the agent has paused
  mining, woken its inference backend and said so over stratum);
- lease end -> first valid share: POST /v1/leases/{id}/cancel until the rig's accepted-share count
  grows (the agent gave back its jobs, the pool sent fresh work, the rig found a share and the pool
  accepted it).
Both are polled every 2 ms, so each figure carries up to that much of polling delay.

With ``--restarts N`` it then leases every rig and restarts the pool N times under that lease,
alternately with SIGKILL and SIGTERM, on the same ports and data directory, and times:
- pool back -> rigs serving again: from the restarted pool's first answer on /health until every
  leased rig is connected again and bound to the lease in the serving phase (the agent reconnected,
  registered with its resume token, and the pool sent it its divert again). How soon an agent tries
  again after losing its pool is the agent's own backoff, and is part of this figure;
- of that, the pool's own part: from the moment every rig is registered again (seen in /v1/rigs)
  until all serve the lease (the rest is the agents' reconnect backoff and start-up);
- the outage itself (signal -> /health answers), for context.

With ``--front-ends N`` (``run_front_ends``) it runs N serve processes sharing one lease plane
(``lease_plane``) on a private redis-server, the rigs spread over them; round n leases rig
n mod rigs alone (so the front ends take turns), through the API of a front end that does not
lead the plane, and times the same two figures.
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import trio

from stratumkit.client import PoolClient
from stratumkit.percentile import percentile

from .ports import serve_on_free_ports


async def _until(predicate_coro, timeout: float = 30.0, interval: float = 0.002) -> None:  # type: ignore[no-untyped-def]
    with trio.fail_after(timeout):
        while not await predicate_coro():
            await trio.sleep(interval)


def _row(label: str, seconds: list[float], note: str) -> str:
    return (
        f"{label:<32} p50 {1000 * percentile(seconds, 0.5):7.1f} ms   p99 {1000 * percentile(seconds, 0.99):7.1f} ms"
        f"   max {1000 * max(seconds):7.1f} ms   (n={len(seconds)}, {note})"
    )


async def _all_mining(client: PoolClient, rigs: int) -> bool:
    """Every one of the `rigs` agents is registered and has had a share accepted."""
    listed = await client.rigs()
    return len(listed) == rigs and all(r["accepted_shares"] > 0 for r in listed)


async def _switch(client: PoolClient, selector: dict[str, Any]) -> tuple[float, float]:
    """One round: lease one rig (API call -> serving), then cancel (-> its next accepted share)."""
    t0 = time.perf_counter()
    lease = await client.create_lease(count=1, queue="bench", duration_s=3600, **selector)
    lease_id, rig_id = str(lease["lease_id"]), str(lease["rigs"][0]["rig_id"])

    async def serving() -> bool:
        return bool((await client.lease(lease_id))["state"] == "serving")

    await _until(serving)
    to_serving = time.perf_counter() - t0

    async def shares() -> int:
        return int(next(r["accepted_shares"] for r in await client.rigs() if r["rig_id"] == rig_id))

    before = await shares()
    t1 = time.perf_counter()
    await client.cancel_lease(lease_id)

    async def mined() -> bool:
        return await shares() > before

    await _until(mined)
    return to_serving, time.perf_counter() - t1


async def bench(rounds: int, rigs: int, inference: str | None, restarts: int = 0) -> dict[str, list[float]]:
    with tempfile.TemporaryDirectory(prefix="stratumkit-bench-lease-") as tmp:
        env = dict(os.environ, PYTHONUNBUFFERED="1")

        def launch(ports: list[int]) -> subprocess.Popen[bytes]:
            stratum, api = ports
            return subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "stratumkit.cli",
                    "serve",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(stratum),
                    "--api-port",
                    str(api),
                    "--data-dir",
                    str(Path(tmp) / "pool"),
                    "--start-difficulty",
                    "0.0005",
                    "--embedded-difficulty",
                    "1",
                    "--log-level",
                    "warning",
                ],
                env=env,
            )

        server, (stratum, api) = await trio.to_thread.run_sync(serve_on_free_ports, launch, 2)
        agents: list[subprocess.Popen[bytes]] = []
        try:
            async with PoolClient(f"http://127.0.0.1:{api}") as client:
                await _until(lambda: _healthy(client), timeout=30, interval=0.05)
                for i in range(rigs):
                    cmd = [
                        sys.executable,
                        "-m",
                        "stratumkit.cli",
                        "agent",
                        "--pool",
                        f"127.0.0.1:{stratum}",
                        "--worker",
                        f"bench{i}.rig",
                        "--rig-id",
                        f"bench-rig-{i}",
                        "--gpu",
                        "RTX 4090:24576",
                        "--duty",
                        "0.2",
                        "--log-level",
                        "warning",
                    ]
                    if inference:
                        cmd += ["--inference", inference]
                    agents.append(subprocess.Popen(cmd, env=env))

                await _until(functools.partial(_all_mining, client, rigs), timeout=60, interval=0.1)
                divert: list[float] = []
                back: list[float] = []
                for _ in range(rounds):
                    to_serving, to_share = await _switch(client, {})
                    divert.append(to_serving)
                    back.append(to_share)
                server_side = (await client.stats()).get("leases", {})
            resumed: list[float] = []
            outages: list[float] = []
            pool_side: list[float] = []
            url = f"http://127.0.0.1:{api}"
            for n in range(restarts):
                lease_id = await _lease_everything(url, rigs)
                stopped_at = time.perf_counter()
                server.send_signal(signal.SIGKILL if n % 2 == 0 else signal.SIGTERM)
                await trio.to_thread.run_sync(server.wait)
                server = launch([stratum, api])
                resume_s, outage_s, pool_side_s = await _time_resume(url, lease_id, rigs, stopped_at)
                resumed.append(resume_s)
                outages.append(outage_s)
                pool_side.append(pool_side_s)
        finally:
            for proc in agents:
                proc.send_signal(signal.SIGINT)
            server.send_signal(signal.SIGTERM)
            for proc in [*agents, server]:
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
    return {
        "divert": divert,
        "back": back,
        "resumed": resumed,
        "outage": outages,
        "pool_side": pool_side,
        "server": [server_side],
    }


async def _lease_everything(url: str, rigs: int) -> str:
    """A lease of every rig, once it serves: its id."""
    async with PoolClient(url) as client:
        lease_id = str((await client.create_lease(count=rigs, queue="bench", duration_s=3600))["lease_id"])

        async def serving() -> bool:
            return bool((await client.lease(lease_id))["state"] == "serving")

        await _until(serving)
    return lease_id


async def _time_resume(url: str, lease_id: str, rigs: int, stopped_at: float) -> tuple[float, float, float]:
    """(pool back -> every rig serving the lease again, signal -> pool back, last rig registered
    again -> all serving), then the lease ends."""
    async with PoolClient(url) as client:
        await _until(lambda: _healthy(client), timeout=60, interval=0.002)
        back_at = time.perf_counter()
        registered_at: float | None = None

        async def resumed() -> bool:
            nonlocal registered_at
            listed = await client.rigs()
            if registered_at is None and sum(1 for r in listed if r["connected"]) == rigs:
                registered_at = time.perf_counter()
            lease = await client.lease(lease_id)
            bound = [r for r in listed if r["connected"] and r["lease_id"] == lease_id]
            return len(bound) == rigs and sum(1 for a in lease["rigs"] if a["phase"] == "serving") == rigs

        await _until(resumed, timeout=120)
        serving_at = time.perf_counter()
        await client.cancel_lease(lease_id)
    assert registered_at is not None
    return serving_at - back_at, back_at - stopped_at, serving_at - registered_at


async def _healthy(client: PoolClient) -> bool:
    try:
        await client.health()
        return True
    except Exception:
        return False


def run(rounds: int = 30, rigs: int = 2, inference: str | None = None, restarts: int = 0) -> None:
    print(
        f"stratumkit bench lease — {rounds} rounds, {rigs} agent processes, inference backend: {inference or 'none'}, "
        f"{restarts} pool restarts"
    )
    r = trio.run(bench, rounds, rigs, inference, restarts)
    for name, label in (("divert", "API call -> rig serving"), ("back", "lease end -> first valid share")):
        print(_row(label, r[name], "target p99 <= 1000 ms"))
    if restarts:
        for name, label, target in (
            ("resumed", "pool back -> rigs serving again", "target <= 2000 ms"),
            ("pool_side", "rigs registered -> serving", "the pool's part of it"),
            ("outage", "signal -> pool back (outage)", "context"),
        ):
            print(_row(label, r[name], target))


# ---------------------------------------------------------------------------- several front ends


def _redis_server(directory: Path) -> tuple[subprocess.Popen[bytes], int]:
    """A private redis-server (no persistence) on a free loopback port, for the plane."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("stratumkit bench lease --front-ends needs redis-server on PATH")

    def launch(ports: list[int]) -> subprocess.Popen[bytes]:
        (port,) = ports
        return subprocess.Popen(
            [
                binary,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(directory),
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
        )

    proc, (port,) = serve_on_free_ports(launch, 1)
    return proc, port


async def bench_front_ends(rounds: int, rigs: int, inference: str | None, front_ends: int) -> dict[str, Any]:
    """Like `bench`, with `front_ends` serve processes on one lease plane: rig i connects to front
    end i mod N first (the others after it, for failover) and has a GPU model of its own, so round
    n can lease rig n mod rigs alone (the front ends take turns). The lease calls go through the
    API of a front end that does not lead the plane (they are forwarded), and each round times,
    as `bench` does, API call -> the lease serving and cancel -> the rig's next accepted share."""
    with tempfile.TemporaryDirectory(prefix="stratumkit-bench-lease-") as tmp:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        redis, redis_port = await trio.to_thread.run_sync(_redis_server, Path(tmp))
        url = f"redis://127.0.0.1:{redis_port}/0"
        servers: list[subprocess.Popen[bytes]] = []
        ports: list[tuple[int, int]] = []
        agents: list[subprocess.Popen[bytes]] = []
        try:
            for n in range(front_ends):

                def launch(pair: list[int], n: int = n) -> subprocess.Popen[bytes]:
                    stratum, api = pair
                    return subprocess.Popen(
                        [sys.executable, "-m", "stratumkit.cli", "serve", "--host", "127.0.0.1",
                         "--port", str(stratum), "--api-port", str(api), "--data-dir", str(Path(tmp) / f"fe{n}"),
                         "--queue-url", url, "--lease-plane", "bench", "--instance-id", str(n + 1),
                         "--start-difficulty", "0.0005", "--embedded-difficulty", "1", "--log-level", "warning"],
                        env=env,
                    )  # fmt: skip

                server, (stratum, api) = await trio.to_thread.run_sync(serve_on_free_ports, launch, 2)
                servers.append(server)
                ports.append((stratum, api))
            for i in range(rigs):
                order = [ports[(i + k) % front_ends][0] for k in range(front_ends)]
                cmd = [sys.executable, "-m", "stratumkit.cli", "agent"]
                for stratum in order:
                    cmd += ["--pool", f"127.0.0.1:{stratum}"]
                cmd += ["--worker", f"bench{i}.rig", "--rig-id", f"bench-rig-{i}", "--gpu", f"BenchGPU-{i}:24576",
                        "--duty", "0.2", "--log-level", "warning"]  # fmt: skip
                if inference:
                    cmd += ["--inference", inference]
                agents.append(subprocess.Popen(cmd, env=env))
            clients = [PoolClient(f"http://127.0.0.1:{api}") for _, api in ports]
            for client in clients:
                await _until(lambda client=client: _healthy(client), timeout=60, interval=0.05)
            client = clients[0]

            await _until(functools.partial(_all_mining, client, rigs), timeout=90, interval=0.1)
            planes = [(await c.stats())["leases"]["plane"] for c in clients]
            via = next((i for i, p in enumerate(planes) if not p["leader"]), 0)
            client = clients[via]
            divert: list[float] = []
            back: list[float] = []
            for n in range(rounds):
                rig = n % rigs  # round n leases rig n mod rigs alone: the front ends take turns
                to_serving, to_share = await _switch(client, {"gpu_model": f"BenchGPU-{rig}"})
                divert.append(to_serving)
                back.append(to_share)
            leader_side = (await clients[next((i for i, p in enumerate(planes) if p["leader"]), 0)].stats())["leases"]
            for c in clients:
                await c.aclose()
        finally:
            for proc in agents:
                proc.send_signal(signal.SIGINT)
            for proc in servers:
                proc.send_signal(signal.SIGTERM)
            for proc in [*agents, *servers]:
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
            redis.terminate()
            redis.wait(10)
    return {"divert": divert, "back": back, "via": [via], "leader": [leader_side]}


def run_front_ends(rounds: int = 30, rigs: int = 2, inference: str | None = None, front_ends: int = 2) -> None:
    print(
        f"stratumkit bench lease — {rounds} rounds, {rigs} agent processes over {front_ends} front ends "
        f"(one lease plane on a private redis-server), inference backend: {inference or 'none'}; "
        f"round n leases rig n mod {rigs} alone (rig i on front end i mod {front_ends})"
    )
    r = trio.run(bench_front_ends, rounds, rigs, inference, front_ends)
    role = "a follower: its lease calls are forwarded to the leader" if front_ends > 1 else "the leader"
    print(f"API calls through front end {r['via'][0] + 1} ({role})")
    for name, label, target in (
        ("divert", "API call -> rig serving", "target p99 <= 100 ms"),
        ("back", "lease end -> first valid share", "target p99 <= 500 ms"),
    ):
        print(_row(label, r[name], target))
    leader = r["leader"][0]
    for name, label in (
        ("divert_latency_s", "leader: divert -> serving ack"),
        ("return_latency_s", "leader: return -> first share"),
    ):
        figures = leader.get(name)
        if figures:
            print(
                f"{label:<32} p50 {1000 * figures['p50']:7.1f} ms   p99 {1000 * figures['p99']:7.1f} ms   "
                f"max {1000 * figures['max']:7.1f} ms   (n={figures['n']}, the pool's own view)"
            )
