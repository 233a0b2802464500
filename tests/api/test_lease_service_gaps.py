"""Faults once found in the lease layer through the API, pinned so they stay fixed."""

from __future__ import annotations

import httpx
import trio

from .conftest import Stack, connect_rig


async def test_a_lease_cannot_be_extended_past_the_float_range(stack: Stack, nursery: trio.Nursery) -> None:
    await connect_rig(nursery, stack, "rig-a")
    async with httpx.AsyncClient(base_url=stack.url) as http:
        endless = await http.post("/v1/leases", json={"count": 1, "queue": "q", "duration_s": 1e308})
        created = await http.post("/v1/leases", json={"count": 1, "queue": "q", "duration_s": 30})
        lease_id = created.json()["lease_id"]
        extended = await http.post(f"/v1/leases/{lease_id}/extend", json={"seconds": 1e308})
        listed = await http.get("/v1/leases")
    assert endless.status_code == 400 and "at most" in endless.text, endless.text
    assert extended.status_code == 400, extended.text  # once: 500, ends_at was inf
    assert listed.status_code == 200, listed.text  # once: 500 for every lease listing


async def test_a_lease_on_a_queue_name_the_engine_refuses_is_refused(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.url) as http:
        body = {"count": 1, "min_count": 0, "queue": "has space", "duration_s": 30}
        created = await http.post("/v1/leases", json=body)
        enqueue = await http.post("/v1/queues/has%20space/jobs", json={"payload": {}})
    assert enqueue.status_code == 400  # the queue engine refuses the name...
    assert created.status_code == 400, created.text  # ...and so is a lease on it
