"""The power layer on a shared lease plane: two `stratumkit serve` front ends on a private
redis-server, and a rig agent connected to the front end that does not lead.

The power service runs on the leader only. `POST /v1/curtail` on the follower is forwarded to
the leader, whose power service curtails the follower's rig through the follower's relay: the
agent stops hashing, and the follower's /v1/events shows the order. `GET /v1/policy` on the
follower is the leader's; a release on the follower brings the rig back to mining (its shares
count again on the follower's /v1/rigs).

The curtailment is kept in Redis: with the leader killed (SIGKILL) while it holds the rig, the
follower takes the plane and holds the same curtailment (the rig is not told to hash again)
until it is released there.
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio

from stratumkit.client import APIError, PoolClient
from tests.e2e_plane.test_two_front_ends import leader_of, start_front_end
from tests.queue.queue_harness import RedisServer
from tests.support.processes import ServeProcess, child_env, cli_command
from tests.support.waiting import wait_until_async

pytestmark = pytest.mark.slow


@dataclass
class Plane:
    fronts: dict[str, ServeProcess]
    clients: dict[str, PoolClient]
    leader: str
    follower: str
    agent_log: Path

    def agent_said(self, text: str) -> bool:
        return any(text in line for line in self.agent_log.read_text().splitlines())

    async def shares(self, on: str) -> int:
        """rig-f's accepted shares, as front end `on` lists them."""
        rigs = [r for r in await self.clients[on].rigs() if r["rig_id"] == "rig-f"]
        return int(rigs[0]["accepted_shares"]) if rigs else 0

    async def curtailed(self) -> bool:
        return self.agent_said("curtailed") and not self.agent_said("curtailment over")


@asynccontextmanager
async def plane_with_a_rig_on_the_follower(
    tmp_path: Path, nursery: trio.Nursery, redis: RedisServer
) -> AsyncIterator[Plane]:
    (tmp_path / "logs").mkdir()
    fronts = {
        "A": await start_front_end(nursery, tmp_path, "A", 1, redis.url),
        "B": await start_front_end(nursery, tmp_path, "B", 2, redis.url),
    }
    urls = {name: f"http://127.0.0.1:{await fe.api_port()}" for name, fe in fronts.items()}
    async with PoolClient(urls["A"]) as client_a, PoolClient(urls["B"]) as client_b:
        clients = {"A": client_a, "B": client_b}
        leader = await leader_of(clients)
        follower = "B" if leader == "A" else "A"
        agent_log = tmp_path / "logs" / "rig-f.log"
        with agent_log.open("wb") as out:
            agent = subprocess.Popen(
                cli_command(
                    "agent",
                    *("--pool", f"127.0.0.1:{fronts[follower].port}"),
                    *("--worker", "rig-f.w", "--rig-id", "rig-f", "--gpu", "RTX 4090:24576", "--power-w", "300"),
                    *("--duty", "0.1"),
                ),
                env=child_env(PYTHONUNBUFFERED="1"),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        plane = Plane(fronts, clients, leader, follower, agent_log)
        try:

            async def mining() -> bool:
                return await plane.shares(follower) > 0

            await wait_until_async(mining, 90, what="rig-f mining on the follower")
            yield plane
            assert agent.poll() is None
        finally:
            if agent.poll() is None:
                agent.send_signal(signal.SIGTERM)
            try:
                agent.wait(15)
            except subprocess.TimeoutExpired:
                agent.kill()


async def release_and_mine(plane: Plane, on: str) -> None:
    """Release the curtailment through front end `on`: rig-f hashes again and its shares count."""
    before = await plane.shares(on)
    assert await plane.clients[on].release_curtailment() == {"released": ["rig-f"]}

    async def restored() -> bool:
        return plane.agent_said("curtailment over: mining")

    await wait_until_async(restored, 30, what="the agent told to hash again")

    async def mining_again() -> bool:
        return await plane.shares(on) > before

    await wait_until_async(mining_again, 60, what="rig-f's shares after the release")
    assert (await plane.clients[on].policy())["curtailment"] is None


async def test_a_curtailment_on_the_follower_curtails_its_rig_through_the_leader(
    tmp_path: Path, nursery: trio.Nursery, private_redis_server: RedisServer
) -> None:
    async with plane_with_a_rig_on_the_follower(tmp_path, nursery, private_redis_server) as plane:
        on_follower = plane.clients[plane.follower]
        assert (await on_follower.health())["power"]["runs_here"] is False
        assert (await plane.clients[plane.leader].health())["power"]["runs_here"] is True

        async with on_follower.events() as events:
            answer = await on_follower.curtail(rigs=["rig-f"])
            assert answer["curtailed"] == ["rig-f"] and answer["shed_kw"] == 0.3, answer
            assert "not_reached" in answer
            with trio.fail_after(30):
                async for event in events:
                    if event.get("type") == "power.order" and event.get("unit") == "rig-f":
                        assert event["mode"] == "curtail"
                        break

        await wait_until_async(plane.curtailed, 30, what="the agent told to stop hashing")
        policy = await on_follower.policy()
        (unit,) = [u for u in policy["units"] if u["unit"] == "rig-f"]
        assert unit["reason"] == "operator curtailment" and unit["mode"] == "curtail"
        assert policy["curtailment"]["result"]["curtailed"] == ["rig-f"]

        await release_and_mine(plane, plane.follower)

        # prices and energy through the follower are the leader's
        with pytest.raises(APIError) as refused:
            await on_follower.set_prices(power_usd_per_kwh=45)
        assert refused.value.status == 400 and "-10..10" in refused.value.message
        pushed = await on_follower.set_prices(
            power_usd_per_kwh=0.01, hashprice_usd_per_th_day=0.05, gpu_usd_per_hour=0.35
        )
        assert pushed["source"] == "api" and pushed["fresh"] is True
        assert (await plane.clients[plane.leader].prices())["source"] == "api"
        energy = await on_follower.energy()
        assert energy["units"]["rig-f"]["by_mode"]["mining"]["kwh"] > 0


async def test_a_new_leader_holds_the_curtailment_of_the_one_killed_until_released(
    tmp_path: Path, nursery: trio.Nursery, private_redis_server: RedisServer
) -> None:
    async with plane_with_a_rig_on_the_follower(tmp_path, nursery, private_redis_server) as plane:
        survivor = plane.follower
        answer = await plane.clients[survivor].curtail(rigs=["rig-f"])
        assert answer["curtailed"] == ["rig-f"], answer
        await wait_until_async(plane.curtailed, 30, what="the agent told to stop hashing")

        old = plane.fronts[plane.leader]
        old.process.kill()  # kill -9 of the leader holding the curtailment
        await old.wait_exit()
        client = plane.clients[survivor]
        assert await leader_of({survivor: client}) == survivor
        assert (await client.health())["power"]["runs_here"] is True

        async def held() -> bool:
            policy = await client.policy()
            units = {u["unit"]: u for u in policy["units"]}
            return bool(
                policy["curtailment"] is not None
                and policy["curtailment"]["result"]["curtailed"] == ["rig-f"]
                and "rig-f" in units
                and units["rig-f"]["reason"] == "operator curtailment"
            )

        # the new leader's policy runs at start (a step) with the rig back; it stays held
        await wait_until_async(held, 30, what="the new leader holding the kept curtailment")
        assert await plane.curtailed()

        await release_and_mine(plane, survivor)
