"""Leases end to end with real processes: a pool and three rig agents, all mining over stratum.

Two rigs (RTX 4090) are leased to a queue of 100 real embedding jobs (all-MiniLM-L6-v2 on the CPU);
the third (RTX 3060) does not match the lease, so it can neither be drafted as a replacement nor
stop mining. One leased agent is SIGKILLed while it holds jobs: they go back to the queue and
complete on the other rig, each with exactly one recorded result. When the lease ends, the
surviving rig is mining again (an accepted share). How fast it gets there is a figure of
`stratumkit bench lease`, not a bound here: wall time on a shared machine is not a test result.

The pool binds ports 0 and says which ports it got in its JSON log; the agents are told them.
"""

from __future__ import annotations

import signal
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import trio

from stratumkit.client import PoolClient
from tests.support.processes import ServeProcess, child_env, cli_command
from tests.support.waiting import wait_until_async

pytestmark = pytest.mark.slow

EMBED = {"kind": "embeddings", "model": "all-MiniLM-L6-v2"}


async def until(check: Any, timeout: float, interval: float = 0.05) -> Any:
    return await wait_until_async(check, timeout, interval=interval)


async def test_three_agents_a_lease_a_killed_rig_and_the_return(tmp_path: Path, nursery: trio.Nursery) -> None:
    env = child_env(PYTHONUNBUFFERED="1")
    logs = tmp_path / "logs"
    logs.mkdir()
    procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(name: str, args: list[str]) -> None:
        with (logs / f"{name}.log").open("wb") as out:  # the child keeps its own descriptor
            procs[name] = subprocess.Popen(cli_command(*args), env=env, stdout=out, stderr=subprocess.STDOUT)

    pool = await ServeProcess.start(
        nursery,
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--api-port",
        "0",
        "--data-dir",
        str(tmp_path / "pool"),
        "--start-difficulty",
        "0.0005",
        "--embedded-difficulty",
        "1",
        "--share-interval",
        "2",
        "--log-format",
        "json",
        log_copy=logs / "pool.log",
        timeout=60,
    )
    stratum, api = pool.port, await pool.api_port()
    try:
        async with PoolClient(f"http://127.0.0.1:{api}") as client:
            for name, gpu in (("rig-1", "RTX 4090:24576"), ("rig-2", "RTX 4090:24576"), ("rig-3", "RTX 3060:12288")):
                start(
                    name,
                    [
                        "agent",
                        "--pool",
                        f"127.0.0.1:{stratum}",
                        "--worker",
                        f"{name}.w",
                        "--rig-id",
                        name,
                        "--gpu",
                        gpu,
                        "--inference",
                        "minilm",
                        "--inference-threads",
                        "1",
                        "--duty",
                        "0.15",
                        "--claim-batch",
                        "4",
                    ],
                )

            async def shares() -> dict[str, int]:
                return {r["rig_id"]: r["accepted_shares"] for r in await client.rigs()}

            async def all_mining() -> bool:
                current = await shares()
                return len(current) == 3 and all(v > 0 for v in current.values())

            await until(all_mining, 60)

            lease = await client.create_lease(count=2, queue="embed", duration_s=600, gpu_model="RTX 4090")
            lease_id = lease["lease_id"]
            assert sorted(r["rig_id"] for r in lease["rigs"]) == ["rig-1", "rig-2"]

            async def serving() -> bool:
                return bool((await client.lease(lease_id))["state"] == "serving")

            await until(serving, 10)
            unleased_before = (await shares())["rig-3"]
            # several sentences a job, so the work lasts long enough to kill a rig in the middle of it
            ids = await client.submit_jobs(
                "embed",
                [
                    {**EMBED, "input": [f"job {i}, sentence {k}, about mining and inference" for k in range(8)]}
                    for i in range(100)
                ],
            )
            assert len(set(ids)) == 100

            async def victim_holds_jobs() -> bool:
                return any(r["rig_id"] == "rig-1" and r["jobs_in_flight"] > 0 for r in await client.rigs())

            await until(victim_holds_jobs, 60, interval=0.005)  # the victim is mid-job
            procs["rig-1"].send_signal(signal.SIGKILL)
            procs["rig-1"].wait(10)

            async def all_done() -> list[dict[str, Any]] | None:
                states = [await client.job(j) for j in ids]
                return states if all(s["status"] == "done" for s in states) else None

            results = await until(all_done, 120, interval=0.2)
            by_rig = Counter(r["rig"] for r in results)
            assert set(by_rig) <= {"rig-1", "rig-2"} and by_rig["rig-2"] > 0
            redelivered = [r for r in results if r["deliveries"] > 1]
            assert redelivered, "the killed rig held jobs: they must have been delivered again"
            assert all(r["rig"] == "rig-2" for r in redelivered)
            for r in results:
                vector = r["result"]["data"][0]["embedding"]
                assert len(vector) == 384
            # exactly one recorded result per job, and no job lost or dead-lettered
            stats = await client.stats()
            assert stats is not None
            view = await client.lease(lease_id)
            assert view["usage"]["jobs_done"] == 100
            # the unleased rig kept mining throughout: never leased, and its shares keep coming
            assert next(r for r in await client.rigs() if r["rig_id"] == "rig-3")["mode"] == "mining"

            async def unleased_mined() -> bool:
                return (await shares())["rig-3"] > unleased_before

            await until(unleased_mined, 15)

            # the lease ends: the surviving rig is back to accepted shares
            before = (await shares())["rig-2"]
            await client.cancel_lease(lease_id)

            async def mining_again() -> bool:
                return (await shares())["rig-2"] > before

            await until(mining_again, 20)
            assert (await client.lease(lease_id))["state"] == "cancelled"
            assert procs["rig-3"].poll() is None and procs["rig-2"].poll() is None
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs.values():
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
