"""A chat job end to end: a real `stratumkit serve` and a real `stratumkit agent --inference
smollm2` (SmolLM2-135M-Instruct on the CPU): a leased rig answers a chat.completions job from the
lease's queue with text the model generated."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from stratumkit.client import PoolClient
from stratumkit.inference.smollm2 import MODEL_ID
from tests.agent.conftest import start_agent, start_pool
from tests.agent.test_external_miner import wait_done

pytestmark = pytest.mark.slow

CHAT = {
    "kind": "chat.completions",
    "model": MODEL_ID,
    "max_tokens": 24,
    "messages": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "What is the capital of France?"},
    ],
}


async def test_a_leased_rig_answers_a_chat_job_with_generated_text(tmp_path: Path, nursery: trio.Nursery) -> None:
    pool = await start_pool(nursery, tmp_path / "pool")
    agent = await start_agent(
        nursery, "--pool", f"127.0.0.1:{pool.port}", "--worker", "rig1.w", "--rig-id", "rig1",
        "--gpu", "RTX 4090:24576", "--duty", "0.1", "--inference", "smollm2", "--inference-threads", "1",
    )  # fmt: skip
    registered = await agent.wait_event("rig registered", 60)
    assert registered["models"] == [MODEL_ID]
    async with PoolClient(f"http://127.0.0.1:{await pool.api_port()}") as client:
        await client.create_lease(count=1, queue="chat", duration_s=600, model=MODEL_ID)
        await agent.wait_event("serving lease", 60)
        (job_id,) = await client.submit_jobs("chat", [CHAT])
        result = (await wait_done(client, job_id))["result"]
    assert result["object"] == "chat.completion" and result["model"] == MODEL_ID
    assert "Paris" in result["choices"][0]["message"]["content"]
    assert 0 < result["usage"]["completion_tokens"] <= 24
