"""A lease survives its pool: kill -9, then SIGTERM, of a real `stratumkit serve` process.

Two rig agents (all-MiniLM-L6-v2 on the CPU) serve a two-rig lease with 40 jobs queued. The pool
is killed with SIGKILL while the rigs hold jobs, and started again on the same ports and data
directory: the lease is there under its id, still serving, its remaining time and GPU-seconds not
charged for the outage; the agents reconnect with their resume token and serve it again; every job
ends with exactly one recorded result. Then a SIGTERM restart: the lease is kept again (a shutdown
is not the end of a lease), and when it is cancelled the rigs go back to mining. Run with the
queue and the lease store in SQLite (the default) and on a private redis-server (``queue_url``).

The agents run in this test's trio loop over real loopback TCP, each in a loop that connects
again whenever its connection ends however it ends: the pool side is what is under test here.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

from stratumkit.agent.rig import AgentConfig, RigAgent
from stratumkit.client import PoolClient
from stratumkit.inference.minilm import MiniLMBackend
from tests.queue.queue_harness import RedisServer, find_redis_server
from tests.support.processes import ServeProcess
from tests.support.waiting import wait_until, wait_until_async

pytestmark = pytest.mark.slow

EMBED = {"kind": "embeddings", "model": "all-MiniLM-L6-v2"}
RIGS = ("rig-1", "rig-2")


async def start_pool(
    nursery: trio.Nursery, data: Path, logs: Path, queue: list[str], stratum: int = 0, api: int = 0
) -> ServeProcess:
    return await ServeProcess.start(
        nursery,
        *("--host", "127.0.0.1", "--port", str(stratum), "--api-port", str(api), "--data-dir", str(data)),
        *queue,
        *("--start-difficulty", "0.0005", "--embedded-difficulty", "1", "--share-interval", "2"),
        *("--log-format", "json"),
        log_copy=logs / "pool.log",
        timeout=60,
    )


class Reconnecting:
    """A rig agent that connects again whenever its pool connection ends; counts failed connects."""

    def __init__(self, agent: RigAgent) -> None:
        self.agent = agent
        self.failed_connects = 0

    async def run(self) -> None:
        while True:
            try:
                await self.agent.run()
            except* OSError:
                self.failed_connects += 1
            except* Exception:  # the connection ended under a call in flight
                pass
            await trio.sleep(0.1)


@pytest.fixture(params=["sqlite", "redis"])
def queue_flags(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[list[str]]:
    """SQLite queue and lease store in the data directory, or both on a private redis-server."""
    if request.param == "sqlite":
        yield []
        return
    directory = tmp_path / "redis"
    directory.mkdir()
    server = RedisServer(find_redis_server(), directory)
    server.start()
    yield ["--queue-url", server.url]
    server.stop()


async def test_a_lease_survives_kill_9_and_sigterm_of_its_pool(
    tmp_path: Path, nursery: trio.Nursery, queue_flags: list[str]
) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    data = tmp_path / "pool"
    pool = await start_pool(nursery, data, logs, queue_flags)
    stratum, api = pool.port, await pool.api_port()
    url = f"http://127.0.0.1:{api}"
    assert (data / "leases.sqlite").exists() == (not queue_flags)  # on Redis, leases are kept there
    backend = MiniLMBackend(threads=1)
    await backend.start()
    agents = []
    for name in RIGS:
        config = AgentConfig("127.0.0.1", stratum, f"{name}.w", rig_id=name, gpus=[("RTX 4090", 24576)], duty=0.15)
        config.claim_batch = 2
        agents.append(Reconnecting(RigAgent(config, backend)))
        nursery.start_soon(agents[-1].run)
    try:
        async with PoolClient(url) as client:

            async def all_mining() -> bool:
                rigs = await client.rigs()
                return len(rigs) == 2 and all(r["accepted_shares"] > 0 for r in rigs)

            await wait_until_async(all_mining, 60)
            lease_id = (await client.create_lease(count=2, queue="embed", duration_s=600))["lease_id"]

            async def serving() -> bool:
                return bool((await client.lease(lease_id))["state"] == "serving")

            await wait_until_async(serving, 20)
            sentences = [f"sentence {k} about mining and inference" for k in range(8)]
            ids = await client.submit_jobs("embed", [{**EMBED, "input": [f"job {i}", *sentences]} for i in range(40)])

            async def rigs_hold_jobs() -> bool:
                return all(r["jobs_in_flight"] > 0 for r in await client.rigs())

            await wait_until_async(rigs_hold_jobs, 60, interval=0.005)
            before = await client.lease(lease_id)
        pool.process.kill()  # kill -9, with both rigs in the middle of jobs
        await pool.wait_exit()
        killed_at = time.monotonic()
        # the outage lasts until each agent has failed to reconnect ten times, 0.1 s apart: over a
        # second, long enough that billing it would show in the checks below
        await wait_until(lambda: all(a.failed_connects >= 10 for a in agents), 30, what="failed reconnects")

        pool = await start_pool(nursery, data, logs, queue_flags, stratum, api)
        restored = await pool.wait_event("leases restored")
        assert restored["live"] == [lease_id]
        up_at = time.monotonic()
        assert await pool.api_port() == api
        async with PoolClient(url) as client:
            view = await client.lease(lease_id)
            assert view["state"] == "serving"
            since_up = time.monotonic() - up_at
            outage = up_at - killed_at
            assert outage > 1.0
            # lease time ran on only while a pool ran: not for the outage
            assert view["remaining_s"] >= before["remaining_s"] - since_up - 0.5
            assert view["usage"]["gpu_seconds"] <= before["usage"]["gpu_seconds"] + 2 * (since_up + 0.5)

            async def resumed() -> bool:  # the same two stints serving again: none ended, none added
                rigs = {r["rig_id"]: r for r in await client.rigs()}
                lease = await client.lease(lease_id)
                return all(rigs[n]["connected"] and rigs[n]["lease_id"] == lease_id for n in RIGS) and [
                    r["phase"] for r in lease["rigs"]
                ] == ["serving", "serving"]

            await wait_until_async(resumed, 60)

            async def all_done() -> list[dict[str, Any]]:
                states = [await client.job(j) for j in ids]
                return states if all(s["status"] == "done" for s in states) else []

            results = await wait_until_async(all_done, 180, interval=0.2)
            assert all(len(r["result"]["data"][0]["embedding"]) == 384 for r in results)
            assert any(r["deliveries"] > 1 for r in results), "the jobs held at the kill were delivered again"
            jobs_done = (await client.lease(lease_id))["usage"]["jobs_done"]
            # one recorded result per job; a count whose save the kill cut short may be missing
            assert 40 - 4 <= jobs_done <= 40

        assert await pool.stop() == 0  # SIGTERM: a clean shutdown keeps the lease as it is
        pool = await start_pool(nursery, data, logs, queue_flags, stratum, api)
        assert (await pool.wait_event("leases restored"))["live"] == [lease_id]
        assert await pool.api_port() == api
        async with PoolClient(url) as client:
            await wait_until_async(resumed, 60)
            shares = {r["rig_id"]: r["accepted_shares"] for r in await client.rigs()}
            await client.cancel_lease(lease_id)

            async def mining_again() -> bool:
                rigs = await client.rigs()
                return all(r["lease_id"] is None and r["accepted_shares"] > shares[r["rig_id"]] for r in rigs)

            await wait_until_async(mining_again, 30)
            assert (await client.lease(lease_id))["state"] == "cancelled"
    finally:
        await backend.close()
