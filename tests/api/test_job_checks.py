"""A job no rig would run is refused over HTTP with a 400 and its reason, and is not queued."""

from __future__ import annotations

import httpx
import trio

from .conftest import MakeStack, connect_rig


async def test_bad_jobs_are_400_with_the_reason(make_stack: MakeStack, nursery: trio.Nursery) -> None:
    stack = await make_stack(check_jobs=True)
    await connect_rig(nursery, stack, "rig-1")  # serves all-MiniLM-L6-v2
    async with httpx.AsyncClient(base_url=stack.url, timeout=10.0) as http:
        assert (await http.post("/v1/leases", json={"count": 1, "queue": "embed", "duration_s": 60})).status_code == 201
        good = {"kind": "embeddings", "model": "all-MiniLM-L6-v2", "input": ["hello"]}
        assert (await http.post("/v1/queues/embed/jobs", json={"payload": good})).status_code == 201
        for payload, reason in [
            ({"model": "all-MiniLM-L6-v2", "input": ["x"]}, "needs a 'kind'"),
            ({**good, "kind": "chat"}, "unknown job kind 'chat'"),
            ({**good, "model": "gpt-4"}, "serves model 'gpt-4'"),
            (
                {
                    "kind": "chat.completions",
                    "model": "m",
                    "messages": [{"role": "user", "content": "hi"}],
                    "stream": True,
                },
                "streaming",
            ),
        ]:
            refused = await http.post("/v1/queues/embed/jobs", json={"payload": payload})
            assert refused.status_code == 400 and reason in refused.json()["error"], payload
    assert (await stack.leases.queue.stats("embed")).ready == 1
