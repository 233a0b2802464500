"""The agent outlives its pool: kill -9 mid-job, a graceful restart (client.reconnect), failover
between several --pool URLs, and stratum+ssl with and without verification. Real processes only."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from stratumkit.client import PoolClient
from tests.agent.conftest import MINILM, kill9, start_agent, start_pool, wait_new_event
from tests.support.certificates import make_certificate
from tests.support.ports import refused_port
from tests.support.processes import ServeProcess, cli_command
from tests.support.waiting import wait_until_async

pytestmark = pytest.mark.slow

RIG = ["--worker", "rig1.w", "--rig-id", "rig1", "--gpu", "RTX 4090:24576", "--duty", "0.1"]


async def test_kill_9_of_the_pool_mid_job_the_agent_reconnects_and_serves_again(
    tmp_path: Path, nursery: trio.Nursery
) -> None:
    pool = await start_pool(nursery, tmp_path / "pool")
    agent = await start_agent(nursery, "--pool", f"127.0.0.1:{pool.port}", *RIG, *MINILM)
    await agent.wait_event("rig registered", 60)
    async with PoolClient(f"http://127.0.0.1:{await pool.api_port()}") as client:
        lease = await client.create_lease(count=1, queue="embed", duration_s=600)
        await agent.wait_event("serving lease")
        text = ["a sentence about mining and inference, long enough to take a while"] * 64
        await client.submit_jobs(
            "embed", [{"kind": "embeddings", "model": "all-MiniLM-L6-v2", "input": text} for _ in range(20)]
        )

        async def holds_a_job() -> bool:
            return any(r["jobs_in_flight"] > 0 for r in await client.rigs())

        await wait_until_async(holds_a_job, 30, interval=0.005)
    await kill9(pool)
    lost = await agent.wait_event("pool lost")
    assert lost["pool"] == f"stratum+tcp://127.0.0.1:{pool.port}"
    # while the pool is away the agent keeps trying, with growing waits
    waits = []
    for seen in range(3):
        waits.append((await wait_new_event(agent, "connecting to the pool", seen))["wait"])
    assert waits == sorted(waits) and waits[-1] > waits[0], waits
    connected = len(agent.find_events("pool connected"))
    again = await start_pool(nursery, tmp_path / "pool", pool.port)
    back = await wait_new_event(agent, "pool connected", connected, 60)
    assert back["pool"] == f"stratum+tcp://127.0.0.1:{again.port}"
    assert agent.running
    async with PoolClient(f"http://127.0.0.1:{await again.api_port()}") as client:

        async def mining_again() -> bool:
            return any(r["rig_id"] == "rig1" for r in await client.rigs())

        await wait_until_async(mining_again, 30)
    assert lease["lease_id"]


async def test_a_graceful_restart_is_followed_by_client_reconnect(tmp_path: Path, nursery: trio.Nursery) -> None:
    pool = await start_pool(nursery, tmp_path / "pool")
    agent = await start_agent(nursery, "--pool", f"127.0.0.1:{pool.port}", *RIG)
    await agent.wait_event("pool connected", 60)
    assert await pool.stop() == 0  # SIGTERM: the pool says client.reconnect to everyone
    told = await agent.wait_event("pool asked us to reconnect")
    # it named the address the agent is connected to: the agent keeps the host it dialled (None)
    assert (told["host"], told["port"], told["wait"]) == (None, pool.port, 2)
    await start_pool(nursery, tmp_path / "pool", pool.port)
    back = await wait_new_event(agent, "pool connected", 1, 60)
    assert back["pool"] == f"stratum+tcp://127.0.0.1:{pool.port}"
    assert agent.running


async def test_several_pools_fail_over_in_order_and_go_back_to_the_first(tmp_path: Path, nursery: trio.Nursery) -> None:
    first = await start_pool(nursery, tmp_path / "first")
    second = await start_pool(nursery, tmp_path / "second")
    urls = [f"stratum+tcp://127.0.0.1:{first.port}", f"stratum+tcp://127.0.0.1:{second.port}"]
    agent = await start_agent(nursery, "--pool", urls[0], "--pool", urls[1], *RIG)
    assert (await agent.wait_event("pool connected", 60))["pool"] == urls[0]
    await kill9(first)
    assert (await wait_new_event(agent, "pool connected", 1))["pool"] == urls[1]
    await start_pool(nursery, tmp_path / "first", first.port)
    await agent.wait_event("first pool is back: switching to it")
    assert (await wait_new_event(agent, "pool connected", 2))["pool"] == urls[0]


async def test_stratum_ssl_verifies_the_pool_unless_insecure(
    tmp_path: Path, nursery: trio.Nursery, certificate: tuple[Path, Path]
) -> None:
    cert, key = certificate
    pool = await start_pool(nursery, tmp_path / "pool", 0, "--config", str(_tls_config(tmp_path, cert, key)))
    url = f"stratum+ssl://127.0.0.1:{pool.find_events('pool listening')[0]['tls_port']}"
    strict = await start_agent(nursery, "--pool", url, *RIG)
    refused = await strict.wait_event("pool unreachable", 60)
    assert "CERTIFICATE_VERIFY_FAILED" in str(refused["error"])
    insecure = await start_agent(nursery, "--pool", url, "--insecure", *RIG[:1], "rig2.w", *RIG[2:])
    assert (await insecure.wait_event("pool connected", 60))["pool"] == url
    trusted = await start_agent(nursery, "--pool", url, "--ca-file", str(cert), *RIG[:1], "rig3.w", *RIG[2:])
    assert (await trusted.wait_event("pool connected", 60))["pool"] == url


def _tls_config(folder: Path, cert: Path, key: Path, port: int = 0) -> Path:
    path = folder / "tls.toml"
    path.write_text(f'tls_port = {port}\ntls_cert = "{cert}"\ntls_key = "{key}"\n')
    return path


async def test_an_unreachable_backend_is_retried_and_serving_waits_for_it(
    tmp_path: Path, nursery: trio.Nursery
) -> None:
    pool = await start_pool(nursery, tmp_path / "pool")
    with refused_port() as port:
        backend_url = f"http://127.0.0.1:{port}"
        agent = await start_agent(nursery, "--pool", f"127.0.0.1:{pool.port}", *RIG, "--inference", backend_url)
        await agent.wait_event("inference backend unavailable at start", 60)
        await agent.wait_event("rig registered", 60)
        async with PoolClient(f"http://127.0.0.1:{await pool.api_port()}") as client:
            await client.create_lease(count=1, queue="embed", duration_s=600)
            for seen in range(3):
                await wait_new_event(agent, "inference backend unavailable", seen)
            delays = [e["retry_in"] for e in agent.find_events("inference backend unavailable")]
            assert delays[:3] == sorted(delays[:3]) and delays[2] > delays[0], delays
            assert not agent.find_events("serving lease")
    # the backend comes up where the agent looks for it: the agent serves, and was never gone
    await ServeProcess.spawn(nursery, cli_command("infer", "serve", "--port", str(port), "--threads", "1"))
    await agent.wait_event("inference backend ready", 60)
    await agent.wait_event("serving lease")
    assert agent.running


async def test_a_graceful_restart_over_tls_still_verifies_the_name_the_agent_dialled(
    tmp_path: Path, nursery: trio.Nursery
) -> None:
    cert, key = make_certificate(tmp_path, "DNS:localhost")  # no IP address in it: only the name verifies
    pool = await start_pool(nursery, tmp_path / "pool", 0, "--config", str(_tls_config(tmp_path, cert, key)))
    tls_port = int(pool.find_events("pool listening")[0]["tls_port"])
    url = f"stratum+ssl://localhost:{tls_port}"
    agent = await start_agent(nursery, "--pool", url, "--ca-file", str(cert), *RIG)
    assert (await agent.wait_event("pool connected", 60))["pool"] == url
    assert await pool.stop() == 0
    told = await agent.wait_event("pool asked us to reconnect")
    assert told["port"] == tls_port
    await start_pool(nursery, tmp_path / "pool", 0, "--config", str(_tls_config(tmp_path, cert, key, tls_port)))
    assert (await wait_new_event(agent, "pool connected", 1, 60))["pool"] == url
    assert not agent.find_events("pool unreachable")
