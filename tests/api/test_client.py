"""PoolClient against the live API: each method, its typed errors, and the event stream."""

from __future__ import annotations

import socket
import time
from functools import partial
from typing import Any

import pytest
import trio

from stratumkit.api.app import EVENT_BUFFER, serve_api
from stratumkit.client import APIError, APIUnreachable, EventStream, JobDead, PoolClient

from .conftest import TIMEOUT, MakeStack, Stack, connect_rig


async def next_event(events: EventStream, wanted: dict[str, Any]) -> dict[str, Any]:
    """The next event whose fields include `wanted` (others are skipped)."""
    with trio.fail_after(TIMEOUT):
        async for event in events:
            if wanted.items() <= event.items():
                return event
    raise AssertionError(f"the stream ended before {wanted}")


async def test_client_mirrors_the_routes(stack: Stack, nursery: trio.Nursery) -> None:
    rig = await connect_rig(nursery, stack, "rig-a")
    async with PoolClient(stack.url) as client:
        assert (await client.health())["status"] == "ok"
        assert [r["rig_id"] for r in await client.rigs()] == ["rig-a"]
        stats = await client.stats()
        assert stats["pool"]["connections"] == 1 and stats["leases"]["rigs"] == 1

        lease = await client.create_lease(
            count=1,
            queue="embed",
            duration_s=120,
            gpu_model="RTX 4090",
            min_vram_mb=16000,
            model="all-MiniLM-L6-v2",
            priority=3,
            owner="ann",
        )
        lease_id = lease["lease_id"]
        assert lease["selector"] == {
            "count": 1,
            "gpu_model": "RTX 4090",
            "min_vram_mb": 16000,
            "model": "all-MiniLM-L6-v2",
            "rigs": [],
        }
        assert (lease["priority"], lease["owner"], lease["state"]) == (3, "ann", "draining")
        assert (await client.lease(lease_id))["lease_id"] == lease_id
        assert [x["lease_id"] for x in await client.leases()] == [lease_id]
        assert [x["lease_id"] for x in await client.leases("draining")] == [lease_id]
        assert [x["lease_id"] for x in await client.leases(["serving", "draining"])] == [lease_id]
        assert await client.leases(state="serving") == []
        assert (await client.stats())["leases"]["leases_live"] == 1

        left = (await client.extend_lease(lease_id, 60))["remaining_s"]
        assert 170 < left <= 180
        assert (await client.cancel_lease(lease_id))["state"] == "returning"
        back = await rig.wait_notification("stratumkit.lease.return")
        await rig.request("stratumkit.lease.returned", [back["token"]])
        assert (await client.lease(lease_id))["state"] == "cancelled"

        job_id = await client.submit_job("embed", {"input": ["a"]})
        pending = await client.job(job_id)
        assert pending == {"job_id": job_id, "status": "pending", "enqueued_at": pending["enqueued_at"]}
        assert abs(pending["enqueued_at"] - time.time()) < 60
        assert await client.submit_job("embed", {"input": ["b"]}, job_id="fixed-1") == "fixed-1"
        ids = await client.submit_jobs("embed", [{"n": n} for n in range(5)])
        assert len(set(ids)) == 5 and job_id not in ids
        named = await client.submit_jobs("embed", [{"n": 1}, {"n": 2}], job_ids=["b-1", "b-2"])
        assert named == ["b-1", "b-2"]
        with pytest.raises(ValueError, match="2 job ids for 1 payloads"):
            await client.submit_jobs("embed", [{"n": 1}], job_ids=["x", "y"])
        assert (await stack.leases.queue.stats("embed")).ready == 9
        with pytest.raises(trio.TooSlowError):
            await client.wait_job(job_id, timeout=0.3, poll_interval=0.05)


async def test_errors_are_typed(make_stack: MakeStack) -> None:
    stack = await make_stack(api_token="t0ken")
    async with PoolClient(stack.url, token="t0ken") as client:
        with pytest.raises(APIError) as unknown:
            await client.lease("lease-404")
        assert (unknown.value.status, unknown.value.message) == (404, "no lease 'lease-404'")
        with pytest.raises(APIError) as bad:
            await client.create_lease(count=1, queue="q", duration_s=10, colour="red")
        assert (bad.value.status, bad.value.message) == (400, "unknown field(s): colour")
        with pytest.raises(APIError) as no_rig:
            await client.create_lease(count=1, queue="q", duration_s=10)
        assert no_rig.value.status == 400 and "idle rig" in no_rig.value.message
        with pytest.raises(APIError) as no_job:
            await client.job("nope")
        assert no_job.value.status == 404
    async with PoolClient(stack.url, token="wrong") as client:
        with pytest.raises(APIError) as denied:
            await client.stats()
        assert denied.value.status == 401 and "token" in denied.value.message
        with pytest.raises(APIError) as denied_events:
            async with client.events():
                pass
        assert denied_events.value.status == 401

    with socket.socket() as s:  # a loopback port nothing listens on
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    async with PoolClient(f"http://127.0.0.1:{closed_port}", timeout=2.0) as client:
        with pytest.raises(APIUnreachable):
            await client.stats()
        with pytest.raises(APIUnreachable):
            async with client.events():
                pass


async def test_lease_and_job_flow_in_the_event_stream(stack: Stack, nursery: trio.Nursery) -> None:
    """A rig leased, serving, doing one job: the stream tells each step, the job gets its result."""
    rig = await connect_rig(nursery, stack, "rig-a")
    async with PoolClient(stack.url) as client, client.events() as events:
        lease = await client.create_lease(count=1, queue="embed", duration_s=60)
        lease_id = lease["lease_id"]
        created = await next_event(events, {"type": "lease.state", "lease_id": lease_id})
        assert (created["old"], created["new"]) == (None, "requested")
        draining = await next_event(events, {"type": "lease.state", "lease_id": lease_id})
        assert (draining["old"], draining["new"]) == ("requested", "draining")
        await next_event(events, {"type": "rig.diverted", "rig_id": "rig-a", "lease_id": lease_id})

        divert = await rig.wait_notification("stratumkit.lease.divert")
        await rig.request("stratumkit.lease.serving", [divert["token"]])
        await next_event(events, {"type": "rig.serving", "rig_id": "rig-a"})
        serving = await next_event(events, {"type": "lease.state", "lease_id": lease_id})
        assert (serving["old"], serving["new"]) == ("draining", "serving")
        assert [x["lease_id"] for x in await client.leases("serving")] == [lease_id]

        job_id = await client.submit_job("embed", {"input": ["hello"]})
        await next_event(events, {"type": "job.enqueued", "job_id": job_id, "queue": "embed"})
        assert (await client.job(job_id))["status"] == "pending"
        claims = await rig.request("stratumkit.job.claim", [divert["token"], 4, 30.0, 1.0])
        assert [(c["job_id"], c["payload"]) for c in claims] == [(job_id, {"input": ["hello"]})]
        assert await rig.request("stratumkit.job.result", [job_id, {"vectors": [[0.5]]}]) is True
        await next_event(events, {"type": "job.done", "job_id": job_id, "rig_id": "rig-a"})

        done = await client.wait_job(job_id, timeout=TIMEOUT)
        assert (done["status"], done["result"], done["rig"]) == (
            "done",
            {"vectors": [[0.5]]},
            "rig-a",
        )
        assert (done["queue"], done["deliveries"]) == ("embed", 1)
        assert (await client.lease(lease_id))["usage"]["jobs_done"] == 1


async def test_stream_subscribes_before_headers_and_unsubscribes_on_disconnect(
    stack: Stack,
) -> None:
    async with PoolClient(stack.url) as client:
        events = client.events()
        await events.open()
        assert len(stack.leases._fan_out) == 1
        stack.leases.publish({"type": "test.ping", "n": 1})  # published right after the headers
        assert (await next_event(events, {"type": "test.ping"}))["n"] == 1
        await events.aclose()
        with trio.fail_after(TIMEOUT):
            while len(stack.leases._fan_out):  # the server noticed the disconnect
                await trio.sleep(0.01)
        with pytest.raises(StopAsyncIteration):
            await events.__anext__()


async def test_a_subscriber_that_falls_behind_is_dropped(stack: Stack) -> None:
    async with PoolClient(stack.url) as client, client.events() as events:
        for n in range(EVENT_BUFFER + 10):  # no checkpoint in between: the buffer overflows
            stack.leases.publish({"type": "test.flood", "n": n})
        received = []
        with trio.fail_after(TIMEOUT):
            async for event in events:
                received.append(event)
        # The buffer's worth (plus one the waiting server task took at once), in order, then the
        # notice; the rest was never queued.
        numbers = [e["n"] for e in received[:-1]]
        assert numbers == list(range(len(numbers)))
        assert EVENT_BUFFER <= len(numbers) <= EVENT_BUFFER + 1
        assert received[-1]["type"] == "stream.dropped"
    assert not len(stack.leases._fan_out)


async def test_streams_end_when_the_server_shuts_down(stack: Stack, nursery: trio.Nursery) -> None:
    stop = trio.Event()
    serve = partial(serve_api, stack.pool, stack.leases, "127.0.0.1", 0, shutdown_trigger=stop.wait)
    port = await nursery.start(serve)
    async with PoolClient(f"http://127.0.0.1:{port}") as client, client.events() as events:
        stack.leases.publish({"type": "test.before"})
        assert (await next_event(events, {}))["type"] == "test.before"
        stop.set()
        with trio.fail_after(TIMEOUT):
            rest = [event async for event in events]  # ends cleanly: no error, no hang
        assert rest == []


async def test_a_dead_lettered_job_reads_dead_and_wait_job_says_so(stack: Stack) -> None:
    queue = stack.leases.queue
    job_id = await queue.enqueue("poison", {"kind": "embeddings"}, max_deliveries=1)
    [claim] = await queue.claim("poison", "rig-x", 30.0)
    await queue.nack(claim)  # its only delivery is used up: dead-lettered
    async with PoolClient(stack.url, stack.token) as client:
        job = await client.job(job_id)
        assert job["status"] == "dead" and job["deliveries"] == 1 and job["reason"]
        with pytest.raises(JobDead, match=job_id):
            await client.wait_job(job_id, timeout=5)
        pending_id = await client.submit_job("poison", {"kind": "embeddings"})
        assert (await client.job(pending_id))["status"] == "pending"
