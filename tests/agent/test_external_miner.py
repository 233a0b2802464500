"""An external miner under the agent, end to end: a real `stratumkit serve`, a real `stratumkit agent`
and, as the agent's --miner-cmd, a real `stratumkit mine` process on the agent's local endpoint.

Leased: the miner stops hashing (by the configured method) and the rig serves embeddings; returned:
the miner has accepted shares again. Curtailed by the pool's power layer (POST /v1/curtail): the
miner halts by its method; released, it has accepted shares again. Killed: it is restarted. A
failover to a pool with another extranonce1 prefix: the miner, which subscribed to set_extranonce,
is told and keeps mining there.
"""

from __future__ import annotations

import os
import shlex
import signal
import sys
from pathlib import Path
from typing import Any

import pytest
import trio

from stratumkit.client import PoolClient
from tests.agent.conftest import MINILM, kill9, start_agent, start_pool, wait_new_event
from tests.support.processes import ServeProcess
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow

MINE = shlex.join(
    [sys.executable, "-m", "stratumkit.cli", "mine", "-o", "{url}", "-u", "{user}", "--log-format", "json"]
)
RIG = ["--worker", "rig1.w", "--rig-id", "rig1", "--gpu", "RTX 4090:24576", "--miner-cmd", MINE]
EMBED = {"kind": "embeddings", "model": "all-MiniLM-L6-v2", "input": ["hello from a leased rig"]}


async def wait_done(client: PoolClient, job_id: str) -> dict[str, Any]:
    with trio.fail_after(60):
        while (job := await client.job(job_id))["status"] != "done":
            await trio.sleep(0.05)
    return job


def accepted(agent: ServeProcess) -> int:
    return len(agent.find_events("miner share", accepted=True))


async def next_accepted(agent: ServeProcess, timeout: float = 60) -> None:
    """Until the pool accepts a share the miner sends from now on."""
    seen = len(agent.find_events("miner share"))

    def new_and_accepted(event: dict[str, Any]) -> bool:
        return bool(event["accepted"]) and any(event is e for e in agent.find_events("miner share")[seen:])

    await agent.wait_event("miner share", timeout, where=new_and_accepted)


@pytest.mark.parametrize(
    ("method", "paused"),
    [("stop", "miner stopped"), ("signal", "miner frozen"), ("withhold", "local miner disconnected")],
)
async def test_leased_the_miner_stops_and_returned_it_mines_again(
    tmp_path: Path, nursery: trio.Nursery, method: str, paused: str
) -> None:
    pool = await start_pool(nursery, tmp_path / "pool")
    agent = await start_agent(nursery, "--pool", f"127.0.0.1:{pool.port}", *RIG, "--miner-stop", method, *MINILM)
    await next_accepted(agent)
    async with PoolClient(f"http://127.0.0.1:{await pool.api_port()}") as client:
        lease = await client.create_lease(count=1, queue="embed", duration_s=600)
        await agent.wait_event(paused)
        await agent.wait_event("serving lease")
        counts = []
        for _ in range(2):  # a share already on its way at the divert is answered by the first job's end
            (job_id,) = await client.submit_jobs("embed", [EMBED])
            job = await wait_done(client, job_id)
            assert len(job["result"]["data"][0]["embedding"]) == 384
            counts.append(accepted(agent))
        assert counts[0] == counts[1], "the miner's shares kept coming while leased"
        await client.cancel_lease(lease["lease_id"])
        await agent.wait_event("back to mining")
        await next_accepted(agent)


async def test_a_killed_miner_is_restarted_and_a_failover_hands_it_the_new_extranonce(
    tmp_path: Path, nursery: trio.Nursery
) -> None:
    first = await start_pool(nursery, tmp_path / "first", 0, "--instance-id", "1")
    second = await start_pool(nursery, tmp_path / "second", 0, "--instance-id", "2")
    agent = await start_agent(nursery, "--pool", f"127.0.0.1:{first.port}", "--pool", f"127.0.0.1:{second.port}", *RIG)
    started = await agent.wait_event("miner started", 60)
    await next_accepted(agent)
    os.kill(int(started["pid"]), signal.SIGKILL)
    crash = await agent.wait_event("miner exited: restarting")
    assert crash["code"] == -signal.SIGKILL
    await wait_new_event(agent, "miner started", 1)
    await next_accepted(agent)
    await kill9(first)
    await wait_new_event(agent, "pool connected", 1)
    told = await agent.wait_event("local miners told of a new extranonce")
    assert told["set_extranonce"] == 1 and told["reconnect"] == 0
    await next_accepted(agent)
    assert agent.running


async def test_a_pool_lost_mid_lease_that_comes_back_without_it_gets_the_miner_back(
    tmp_path: Path, nursery: trio.Nursery
) -> None:
    pool = await start_pool(nursery, tmp_path / "pool")
    agent = await start_agent(nursery, "--pool", f"127.0.0.1:{pool.port}", *RIG, *MINILM)
    await next_accepted(agent)
    async with PoolClient(f"http://127.0.0.1:{await pool.api_port()}") as client:
        await client.create_lease(count=1, queue="embed", duration_s=600)
        await agent.wait_event("miner stopped")
        await agent.wait_event("serving lease")
    await kill9(pool)
    again = await start_pool(nursery, tmp_path / "pool2", pool.port)  # a pool that knows of no lease
    await wait_new_event(agent, "pool connected", 1, 60)
    await agent.wait_event("no lease after the reconnect: mining again")
    await next_accepted(agent)
    assert again.running and agent.running


@pytest.mark.parametrize(("method", "halted"), [("signal", "miner frozen"), ("withhold", "local miner disconnected")])
async def test_curtailed_the_miner_halts_by_its_method_and_released_it_mines_again(
    tmp_path: Path, nursery: trio.Nursery, method: str, halted: str
) -> None:
    pool = await start_pool(nursery, tmp_path / "pool")
    agent = await start_agent(nursery, "--pool", f"127.0.0.1:{pool.port}", *RIG, "--miner-stop", method, *MINILM)
    started = await agent.wait_event("miner started", 60)
    await next_accepted(agent)
    async with PoolClient(f"http://127.0.0.1:{await pool.api_port()}") as client:
        assert (await client.curtail(rigs=["rig1"]))["curtailed"] == ["rig1"]
        await agent.wait_event("curtailed")
        stopped = await agent.wait_event(halted)
        stat = Path(f"/proc/{started['pid']}/stat")

        def state() -> str:
            return stat.read_text().rsplit(")", 1)[1].split()[0]

        if method == "signal":  # SIGSTOP is sent: the kernel stops the process soon after
            await wait_until(lambda: state() == "T", what="the miner process stopped (state T)")
        else:
            assert state() in {"R", "S"}, f"the withheld miner's process is in state {state()}"
        assert (await client.release_curtailment())["released"] == ["rig1"]
        over = await agent.wait_event("curtailment over: mining")
        between = agent.events[agent.events.index(stopped) : agent.events.index(over)]
        assert not [e for e in between if e.get("event") == "miner share"], "shares came while curtailed"
        await next_accepted(agent)
    assert agent.find_events("miner started") == [started], "the miner was restarted, not resumed"
