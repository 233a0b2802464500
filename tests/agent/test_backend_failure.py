"""A rig whose inference backend dies mid-lease, end to end: a real `stratumkit serve`, a real
`stratumkit agent` whose --inference is a real `stratumkit infer serve` process, killed with
SIGKILL while the rig serves. The agent releases each job it cannot run with the backend's error as
its cause; the pool's job view carries that cause, the pool marks the rig unhealthy after a few in
a row and replaces it with the idle rig, which runs the job; the first agent mines again.
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from stratumkit.bench.ports import free_ports
from stratumkit.client import PoolClient
from tests.agent.conftest import MINILM, start_agent, start_pool
from tests.agent.test_external_miner import EMBED, wait_done
from tests.support.processes import child_env, cli_command
from tests.support.waiting import wait_until_async

pytestmark = pytest.mark.slow

RIG = ["--gpu", "RTX 4090:24576", "--duty", "0.1"]


async def start_inference_server(nursery: trio.Nursery, port: int) -> trio.Process:
    """`stratumkit infer serve` (MiniLM, one thread), once it lists its model."""
    process = await trio.lowlevel.open_process(
        cli_command("infer", "serve", "--port", str(port), "--threads", "1"),
        env=child_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    nursery.start_soon(_reap, process)

    async def listed() -> bool:
        try:
            async with httpx.AsyncClient() as http:
                models = (await http.get(f"http://127.0.0.1:{port}/v1/models")).json()
        except httpx.HTTPError:
            return False
        return any(m.get("id") == "all-MiniLM-L6-v2" for m in models.get("data", []))

    await wait_until_async(listed, 120, what="the inference server's model list")
    return process


async def _reap(process: trio.Process) -> None:
    try:
        await process.wait()
    finally:
        if process.returncode is None:
            process.kill()


async def test_a_backend_killed_mid_lease_is_reported_with_its_cause_and_the_rig_replaced(
    tmp_path: Path, nursery: trio.Nursery
) -> None:
    (port,) = free_ports(1)
    server = await start_inference_server(nursery, port)
    pool = await start_pool(nursery, tmp_path / "pool")
    first = await start_agent(
        nursery, "--pool", f"127.0.0.1:{pool.port}", "--worker", "rig1.w", "--rig-id", "rig1", *RIG,
        "--inference", f"http://127.0.0.1:{port}",
    )  # fmt: skip
    await first.wait_event("rig registered", 60)
    async with PoolClient(f"http://127.0.0.1:{await pool.api_port()}") as client:
        await client.create_lease(count=1, queue="embed", duration_s=600)
        await first.wait_event("serving lease", 60)
        (job_id,) = await client.submit_jobs("embed", [EMBED])
        assert len((await wait_done(client, job_id))["result"]["data"][0]["embedding"]) == 384

        second = await start_agent(
            nursery, "--pool", f"127.0.0.1:{pool.port}", "--worker", "rig2.w", "--rig-id", "rig2", *RIG, *MINILM
        )
        await second.wait_event("rig registered", 60)  # idle: the lease has its one rig
        server.send_signal(signal.SIGKILL)  # the rig's backend dies while it serves
        await server.wait()
        (job_id,) = await client.submit_jobs("embed", [EMBED])
        failed = await first.wait_event("inference failed: job released", 60)
        assert failed["job"] == job_id

        async def caused() -> dict[str, Any] | None:
            job = await client.job(job_id)
            return job if "last_cause" in job else None

        job = await wait_until_async(caused, what="the job's cause")
        assert job is not None
        assert job["status"] == "pending"
        assert job["last_cause"].startswith("BackendUnavailableError: ") and str(port) in job["last_cause"]
        unhealthy = await pool.wait_event("rig unhealthy", 60)
        assert unhealthy["rig"] == "rig1" and unhealthy["cause"].startswith("BackendUnavailableError: ")
        await first.wait_event("back to mining", 60)  # the pool sent it back

        await second.wait_event("serving lease", 120)  # the replacement
        done = await wait_done(client, job_id)
        assert len(done["result"]["data"][0]["embedding"]) == 384
    assert first.running and second.running
