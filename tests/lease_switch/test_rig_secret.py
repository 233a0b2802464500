"""Rig secrets over real stratum: the agent presents `--rig-secret`; without the right one the pool
keeps the connection as a plain miner."""

from __future__ import annotations

from pathlib import Path

from stratumkit.agent.rig import AgentConfig, RigAgent

from .conftest import open_site


async def test_only_a_rig_with_the_secret_registers(tmp_path: Path) -> None:
    async with open_site(tmp_path, rig_secret="fleet-secret") as site:
        port = site.pool.port or 0
        agents = {}
        for name, secret in (("good", "fleet-secret"), ("bad", "guess"), ("none", None)):
            config = AgentConfig("127.0.0.1", port, f"{name}.w", rig_id=name, gpus=[("RTX 4090", 24576)], duty=0.1)
            config.rig_secret = secret
            agents[name] = RigAgent(config, site.backend)
            await site.nursery.start(agents[name].run)  # started once its registration was answered
        assert [r["rig_id"] for r in site.leases.rigs()] == ["good"]
        assert all(agent.mode == "mining" for agent in agents.values())  # the refused ones still mine
        lease = await site.leases.create_lease({"count": 1, "queue": "q", "duration_s": 30})
        assert [r["rig_id"] for r in lease["rigs"]] == ["good"]
