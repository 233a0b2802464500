"""A Redis outage mid-lease: the pool refuses claims while its queue is down, the agent retries
them with backoff (it never stops claiming), and serves the lease's jobs again once Redis is back.
Real processes: redis-server, `stratumkit serve --queue-url redis://...`, `stratumkit agent`."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from stratumkit.client import PoolClient
from tests.agent.conftest import MINILM, start_agent, start_pool, wait_new_event
from tests.queue.conftest import private_redis_server
from tests.queue.queue_harness import RedisServer

pytestmark = pytest.mark.slow

__all__ = ["private_redis_server"]  # the fixture of tests/queue, a redis-server of the test's own

EMBED = {"kind": "embeddings", "model": "all-MiniLM-L6-v2", "input": ["after the outage"]}


async def test_the_agent_resumes_claiming_after_a_redis_outage(
    tmp_path: Path, nursery: trio.Nursery, private_redis_server: RedisServer
) -> None:
    redis = private_redis_server
    pool = await start_pool(nursery, tmp_path / "pool", 0, "--queue-url", redis.url)
    agent = await start_agent(
        nursery, "--pool", f"127.0.0.1:{pool.port}", "--worker", "rig1.w", "--rig-id", "rig1",
        "--gpu", "RTX 4090:24576", "--duty", "0.1", *MINILM,
    )  # fmt: skip
    await agent.wait_event("rig registered", 60)
    async with PoolClient(f"http://127.0.0.1:{await pool.api_port()}") as client:
        await client.create_lease(count=1, queue="embed", duration_s=600)
        await agent.wait_event("serving lease", 60)
        redis.kill()
        for seen in range(2):
            await wait_new_event(agent, "claim refused: retrying", seen, 30)
        await trio.to_thread.run_sync(redis.start)
        (job_id,) = await client.submit_jobs("embed", [EMBED])
        with trio.fail_after(60):
            while (job := await client.job(job_id))["status"] != "done":
                await trio.sleep(0.1)
    assert len(job["result"]["data"][0]["embedding"]) == 384
    assert not agent.find_events("stopped claiming") and agent.running
