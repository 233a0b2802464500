"""The power layer on a shared lease plane: two `stratumkit serve` front ends on a private
redis-server, and a rig agent connected to the front end that does not lead.

The power service runs on the leader only. `POST /v1/curtail` on the follower is forwarded to
the leader, whose power service curtails the follower's rig through the follower's relay: the
agent stops hashing, and the follower's /v1/events shows the order. `GET /v1/policy` on the
follower is the leader's; a release on the follower brings the rig back to mining (its shares
count again on the follower's /v1/rigs).
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest
import trio

from stratumkit.client import PoolClient
from tests.e2e_plane.test_two_front_ends import leader_of, start_front_end
from tests.queue.queue_harness import RedisServer
from tests.support.processes import child_env, cli_command
from tests.support.waiting import wait_until_async

pytestmark = pytest.mark.slow


async def test_a_curtailment_on_the_follower_curtails_its_rig_through_the_leader(
    tmp_path: Path, nursery: trio.Nursery, private_redis_server: RedisServer
) -> None:
    (tmp_path / "logs").mkdir()
    redis = private_redis_server.url
    fronts = {
        "A": await start_front_end(nursery, tmp_path, "A", 1, redis),
        "B": await start_front_end(nursery, tmp_path, "B", 2, redis),
    }
    urls = {name: f"http://127.0.0.1:{await fe.api_port()}" for name, fe in fronts.items()}
    async with PoolClient(urls["A"]) as client_a, PoolClient(urls["B"]) as client_b:
        clients = {"A": client_a, "B": client_b}
        leader = await leader_of(clients)
        follower = "B" if leader == "A" else "A"
        on_follower = clients[follower]
        agent_log = tmp_path / "logs" / "rig-f.log"
        with agent_log.open("wb") as out:
            agent = subprocess.Popen(
                cli_command(
                    "agent",
                    *("--pool", f"127.0.0.1:{fronts[follower].port}"),
                    *("--worker", "rig-f.w", "--rig-id", "rig-f", "--gpu", "RTX 4090:24576", "--power-w", "300"),
                    "--duty",
                    "0.1",
                ),
                env=child_env(PYTHONUNBUFFERED="1"),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:

            async def shares() -> int:
                rigs = [r for r in await on_follower.rigs() if r["rig_id"] == "rig-f"]
                return int(rigs[0]["accepted_shares"]) if rigs else 0

            async def mining() -> bool:
                return await shares() > 0

            await wait_until_async(mining, 90, what="rig-f mining on the follower")
            health = await on_follower.health()
            assert health["power"]["runs_here"] is False

            async with on_follower.events() as events:
                answer = await on_follower.curtail(rigs=["rig-f"])
                assert answer["curtailed"] == ["rig-f"] and answer["shed_kw"] == 0.3, answer
                assert "not_reached" in answer
                with trio.fail_after(30):
                    async for event in events:
                        if event.get("type") == "power.order" and event.get("unit") == "rig-f":
                            assert event["mode"] == "curtail"
                            break

            def agent_said(text: str) -> bool:
                return any(text in line for line in agent_log.read_text().splitlines())

            async def curtailed() -> bool:
                return agent_said("curtailed") and not agent_said("curtailment over")

            await wait_until_async(curtailed, 30, what="the agent told to stop hashing")
            policy = await on_follower.policy()
            (unit,) = [u for u in policy["units"] if u["unit"] == "rig-f"]
            assert unit["reason"] == "operator curtailment" and unit["mode"] == "curtail"
            assert policy["curtailment"]["result"]["curtailed"] == ["rig-f"]

            before = await shares()
            assert await on_follower.release_curtailment() == {"released": ["rig-f"]}

            async def restored() -> bool:
                return agent_said("curtailment over: mining")

            await wait_until_async(restored, 30, what="the agent told to hash again")

            async def mining_again() -> bool:
                return await shares() > before

            await wait_until_async(mining_again, 60, what="rig-f's shares after the release")
            assert (await on_follower.policy())["curtailment"] is None
            assert agent.poll() is None
        finally:
            if agent.poll() is None:
                agent.send_signal(signal.SIGTERM)
            try:
                agent.wait(15)
            except subprocess.TimeoutExpired:
                agent.kill()
