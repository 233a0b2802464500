"""A rig that runs both an external miner and its own inference server under the agent, end to end:
real `serve`, `agent`, `stratumkit mine` (--miner-cmd) and `stratumkit infer serve` (--inference-cmd,
the MiniLM CPU model) processes. The server is started on divert, serving is said only once it
lists its model, a killed server is restarted mid-lease, and the return stops it and resumes mining.
Then the pool's power layer curtails the rig (POST /v1/curtail): the miner process is stopped, and
the release starts it again; a killed miner is restarted and a killed pool is waited for; the agent
lives through all of it.
"""

from __future__ import annotations

import os
import shlex
import signal
import sys
from pathlib import Path

import pytest
import trio

from stratumkit.bench.ports import free_ports
from stratumkit.client import PoolClient
from tests.agent.conftest import kill9, start_agent, start_pool, wait_new_event
from tests.agent.test_external_miner import EMBED, MINE, next_accepted, wait_done

pytestmark = pytest.mark.slow


async def test_the_agent_starts_its_inference_server_on_divert_and_stops_it_on_return(
    tmp_path: Path, nursery: trio.Nursery
) -> None:
    (port,) = free_ports(1)
    server = shlex.join(
        [sys.executable, "-m", "stratumkit.cli", "infer", "serve", "--port", str(port), "--threads", "1"]
    )
    pool = await start_pool(nursery, tmp_path / "pool")
    agent = await start_agent(
        nursery, "--pool", f"127.0.0.1:{pool.port}", "--worker", "rig1.w", "--rig-id", "rig1",
        "--gpu", "RTX 4090:24576", "--miner-cmd", MINE,
        "--inference", f"http://127.0.0.1:{port}", "--inference-cmd", server, "--inference-model", "all-MiniLM-L6-v2",
    )  # fmt: skip
    registered = await agent.wait_event("rig registered", 60)
    assert registered["models"] == ["all-MiniLM-L6-v2"]
    await next_accepted(agent)
    assert not agent.find_events("inference server started")  # nothing runs while the rig mines
    async with PoolClient(f"http://127.0.0.1:{await pool.api_port()}") as client:
        lease = await client.create_lease(count=1, queue="embed", duration_s=600, model="all-MiniLM-L6-v2")
        started = await agent.wait_event("inference server started", 30)
        serving = await agent.wait_event("serving lease", 120)
        ready = agent.find_events("inference backend ready")
        assert ready and agent.events.index(ready[0]) < agent.events.index(serving)
        (job_id,) = await client.submit_jobs("embed", [EMBED])
        assert len((await wait_done(client, job_id))["result"]["data"][0]["embedding"]) == 384
        os.killpg(int(started["pid"]), signal.SIGKILL)  # the server dies mid-lease
        await agent.wait_event("inference server exited: restarting")
        await wait_new_event(agent, "inference server started", 1, 30)
        (job_id,) = await client.submit_jobs("embed", [EMBED])
        assert len((await wait_done(client, job_id))["result"]["data"][0]["embedding"]) == 384
        await client.cancel_lease(lease["lease_id"])
        await agent.wait_event("inference server stopped")
        await agent.wait_event("back to mining")
        await next_accepted(agent)

        miner = agent.find_events("miner started")[-1]
        starts, stops = len(agent.find_events("miner started")), len(agent.find_events("miner stopped"))
        shed = await client.curtail(rigs=["rig1"])
        assert shed["curtailed"] == ["rig1"]
        await agent.wait_event("curtailed")
        halted = await wait_new_event(agent, "miner stopped", stops)
        assert not os.path.exists(f"/proc/{miner['pid']}"), "the curtailed miner's process still runs"
        assert (await client.release_curtailment())["released"] == ["rig1"]
        over = await agent.wait_event("curtailment over: mining")
        between = agent.events[agent.events.index(halted) : agent.events.index(over)]
        assert not [e for e in between if e.get("event") == "miner share"], "shares came while curtailed"
        restarted = await wait_new_event(agent, "miner started", starts)
        assert restarted["pid"] != miner["pid"]
        await next_accepted(agent)

    os.kill(int(agent.find_events("miner started")[-1]["pid"]), signal.SIGKILL)  # the miner dies
    await agent.wait_event("miner exited: restarting")
    await next_accepted(agent)
    connected = len(agent.find_events("pool connected"))
    await kill9(pool)  # the pool dies, and comes back on its port
    await start_pool(nursery, tmp_path / "pool2", pool.port)
    await wait_new_event(agent, "pool connected", connected, 60)
    await next_accepted(agent)
    assert agent.running
