"""Every route of the HTTP API over real HTTP: happy paths, then each way a request goes wrong."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import trio

from stratumkit.protocol.events import ShowMessage
from tests.support.miners import Miner

from .conftest import MakeStack, Stack, connect_rig


async def http_client(stack: Stack, token: str | None = None) -> httpx.AsyncClient:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return httpx.AsyncClient(base_url=stack.url, headers=headers, timeout=10.0)


async def test_health_and_empty_pool(stack: Stack) -> None:
    async with await http_client(stack) as http:
        health = await http.get("/health")
        assert (health.status_code, health.json()) == (
            200,
            {
                "status": "ok",
                "stratum_port": stack.stratum_port,
                "queue": {"status": "ok"},
                "lease_store": {"status": "ok"},
            },
        )
        stats = await http.get("/v1/stats")
        assert stats.status_code == 200
        assert stats.headers["content-type"] == "application/json"
        body = stats.json()
        assert set(body) == {"pool", "leases"}
        assert body["pool"]["connections"] == 0 and body["pool"]["accepted"] == 0
        assert body["pool"]["height"] == stack.pool.snapshot()["height"]
        assert (
            body["leases"]
            == stack.leases.stats()
            == {
                "rigs": 0,
                "leases_live": 0,
                "queue_up": True,
                "queue_outages": 0,
                "divert_latency_s": None,
                "return_latency_s": None,
            }
        )
        assert (await http.get("/v1/rigs")).json() == {"rigs": []}
        assert (await http.get("/v1/leases")).json() == {"leases": []}


async def test_lease_lifecycle(stack: Stack, nursery: trio.Nursery) -> None:
    rig = await connect_rig(nursery, stack, "rig-a")
    async with await http_client(stack) as http:
        rigs = (await http.get("/v1/rigs")).json()["rigs"]
        assert [(r["rig_id"], r["mode"], r["connected"]) for r in rigs] == [("rig-a", "mining", True)]
        assert rigs[0]["capabilities"]["gpus"] == [{"model": "RTX 4090", "vram_mb": 24576}]

        created = await http.post(
            "/v1/leases",
            json={
                "count": 1,
                "queue": "embed",
                "duration_s": 60,
                "gpu_model": "RTX 4090",
                "owner": "ann",
            },
        )
        assert created.status_code == 201, created.text
        lease = created.json()
        lease_id = lease["lease_id"]
        assert created.headers["location"] == f"/v1/leases/{lease_id}"
        assert (lease["state"], lease["queue"], lease["owner"]) == ("draining", "embed", "ann")
        assert [r["rig_id"] for r in lease["rigs"]] == ["rig-a"]

        divert = await rig.wait_notification("stratumkit.lease.divert")
        assert (divert["lease_id"], divert["queue"]) == (lease_id, "embed")
        assert await rig.request("stratumkit.lease.serving", [divert["token"]]) is True

        serving = (await http.get("/v1/leases", params={"state": "serving"})).json()["leases"]
        assert [x["lease_id"] for x in serving] == [lease_id]
        assert (await http.get("/v1/leases?state=draining,requested")).json() == {"leases": []}
        both = await http.get("/v1/leases?state=draining&state=serving")
        assert [x["lease_id"] for x in both.json()["leases"]] == [lease_id]
        assert (await http.get(f"/v1/leases/{lease_id}")).json()["state"] == "serving"
        assert (await http.get("/v1/rigs")).json()["rigs"][0]["mode"] == "leased"

        before = (await http.get(f"/v1/leases/{lease_id}")).json()["remaining_s"]
        extended = await http.post(f"/v1/leases/{lease_id}/extend", json={"seconds": 600})
        assert extended.status_code == 200, extended.text
        assert extended.json()["remaining_s"] > before + 590

        cancelled = await http.post(f"/v1/leases/{lease_id}/cancel")
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["state"] == "returning"
        back = await rig.wait_notification("stratumkit.lease.return")
        assert back["lease_id"] == lease_id
        assert await rig.request("stratumkit.lease.returned", [back["token"]]) is True
        final = (await http.get(f"/v1/leases/{lease_id}")).json()
        assert final["state"] == "cancelled" and final["remaining_s"] == 0.0
        assert (await http.get("/v1/leases?state=serving")).json() == {"leases": []}
        assert (await http.get("/v1/rigs")).json()["rigs"][0]["mode"] == "mining"

        again = await http.post(f"/v1/leases/{lease_id}/cancel", json={})
        assert again.status_code == 400 and "cannot cancel" in again.json()["error"]
        late = await http.post(f"/v1/leases/{lease_id}/extend", json={"seconds": 5})
        assert late.status_code == 400 and "cannot extend" in late.json()["error"]


async def test_a_lease_with_an_availability_target_shows_its_sla(stack: Stack, nursery: trio.Nursery) -> None:
    rig = await connect_rig(nursery, stack, "rig-a")
    async with await http_client(stack) as http:
        body = {"count": 1, "queue": "embed", "duration_s": 60, "availability": 0.99}
        refused = await http.post("/v1/leases", json=body | {"availability": 1.5})
        assert refused.status_code == 400 and "availability must be in (0, 1]" in refused.json()["error"]
        created = await http.post("/v1/leases", json=body)
        assert created.status_code == 201, created.text
        lease_id = created.json()["lease_id"]
        divert = await rig.wait_notification("stratumkit.lease.divert")
        assert await rig.request("stratumkit.lease.serving", [divert["token"]]) is True
        await http.post(f"/v1/leases/{lease_id}/cancel")
        back = await rig.wait_notification("stratumkit.lease.return")
        assert await rig.request("stratumkit.lease.returned", [back["token"]]) is True
        view = (await http.get(f"/v1/leases/{lease_id}")).json()
        sla = view["sla"]
        assert set(sla) == {"target", "availability", "owed_rig_s", "served_rig_s", "lost_rig_s",
                            "shortfall_rig_s", "restarts", "restart_credit_s", "credited_rig_s",
                            "credited_gpu_s", "credit_usd"}  # fmt: skip
        assert (sla["target"], sla["restarts"], sla["credit_usd"]) == (0.99, 0, None)  # no [power] prices
        assert sla["served_rig_s"] <= sla["owed_rig_s"] and sla["lost_rig_s"] >= 0
        assert sla["availability"] == sla["served_rig_s"] / sla["owed_rig_s"]
        assert sla["credited_rig_s"] == max(0.0, 0.99 * sla["owed_rig_s"] - sla["served_rig_s"])
        plain = await http.post("/v1/leases", json={"count": 1, "queue": "embed", "duration_s": 60})
        assert "sla" not in plain.json()


async def test_a_lease_may_name_its_rig(stack: Stack, nursery: trio.Nursery) -> None:
    await connect_rig(nursery, stack, "rig-a")
    await connect_rig(nursery, stack, "rig-b")
    async with await http_client(stack) as http:
        body = {"count": 1, "queue": "embed", "duration_s": 60, "rigs": ["rig-b"]}
        created = await http.post("/v1/leases", json=body)
        assert created.status_code == 201, created.text
        lease = created.json()
        assert lease["selector"]["rigs"] == ["rig-b"] and [r["rig_id"] for r in lease["rigs"]] == ["rig-b"]
        again = await http.post("/v1/leases", json=body)
        assert again.status_code == 400, again.text  # rig-b is leased: no other rig may stand in
        assert "rigs=['rig-b']" in again.json()["error"]


async def test_jobs(stack: Stack) -> None:
    async with await http_client(stack) as http:
        one = await http.post("/v1/queues/embed/jobs", json={"payload": {"input": ["hello"]}})
        assert one.status_code == 201, one.text
        job_id = one.json()["job_id"]
        view = (await http.get(f"/v1/jobs/{job_id}")).json()
        assert view == {"job_id": job_id, "status": "pending", "enqueued_at": view["enqueued_at"]}
        assert isinstance(view["enqueued_at"], float)

        named = {"payload": {"input": ["again"]}, "job_id": "tenant-a/job-1"}
        first = await http.post("/v1/queues/team/embed/jobs", json=named)
        repeat = await http.post("/v1/queues/team/embed/jobs", json=named)
        assert first.json() == repeat.json() == {"job_id": "tenant-a/job-1"}
        assert (await http.get("/v1/jobs/tenant-a/job-1")).json()["status"] == "pending"

        batch = await http.post(
            "/v1/queues/embed/jobs",
            json={"jobs": [{"payload": {"n": n}} for n in range(3)] + [{"payload": {}, "job_id": "j-9"}]},
        )
        assert batch.status_code == 201, batch.text
        ids = batch.json()["job_ids"]
        assert len(ids) == 4 and ids[3] == "j-9" and len(set(ids)) == 4
        stats = await stack.leases.queue.stats("embed")
        assert (stats.ready, stats.in_flight, stats.done) == (5, 0, 0)
        assert (await stack.leases.queue.stats("team/embed")).ready == 1


@pytest.fixture
async def http(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with await http_client(stack) as client:
        yield client


@pytest.mark.parametrize(
    ("method", "path", "status", "allow"),
    [
        ("GET", "/nothing", 404, None),
        ("GET", "/v1", 404, None),
        ("GET", "/v1/leases/lease-1/extend/more", 404, None),
        ("DELETE", "/v1/leases", 405, "GET, POST"),
        ("PUT", "/v1/leases/lease-1", 405, "GET"),
        ("GET", "/v1/leases/lease-1/extend", 405, "POST"),
        ("GET", "/v1/leases/lease-1/cancel", 405, "POST"),
        ("POST", "/v1/stats", 405, "GET"),
        ("POST", "/v1/rigs", 405, "GET"),
        ("GET", "/v1/queues/q/jobs", 405, "POST"),
        ("POST", "/v1/jobs/x", 405, "GET"),
        ("POST", "/v1/events", 405, "GET"),
        ("POST", "/metrics", 405, "GET"),
        ("POST", "/health", 405, "GET"),
    ],
)
async def test_unknown_paths_and_wrong_methods(
    http: httpx.AsyncClient, method: str, path: str, status: int, allow: str | None
) -> None:
    response = await http.request(method, path)
    assert response.status_code == status
    assert path in response.json()["error"]
    assert response.headers.get("allow") == allow


async def test_unknown_ids_are_404(http: httpx.AsyncClient) -> None:
    for method, path, body in [
        ("GET", "/v1/leases/lease-99", None),
        ("POST", "/v1/leases/lease-99/extend", {"seconds": 5}),
        ("POST", "/v1/leases/lease-99/cancel", None),
    ]:
        response = await http.request(method, path, json=body)
        assert response.status_code == 404, (path, response.text)
        assert response.json() == {"error": "no lease 'lease-99'"}
    job = await http.get("/v1/jobs/never-enqueued")
    assert (job.status_code, job.json()) == (404, {"error": "unknown job 'never-enqueued'"})


LEASE = {"count": 1, "queue": "q", "duration_s": 30}


@pytest.mark.parametrize(
    ("method", "path", "content", "fragment"),
    [
        # bodies that are not a JSON object
        ("POST", "/v1/leases", b"{not json", "not valid JSON"),
        ("POST", "/v1/leases", b"", "body is empty"),
        ("POST", "/v1/leases", b"[1, 2]", "must be a JSON object, not list"),
        ("POST", "/v1/leases", b"\xff\xfe", "not valid JSON"),
        ("POST", "/v1/queues/q/jobs", b'"text"', "must be a JSON object, not str"),
        ("POST", "/v1/queues/q/jobs", b'{"payload": {"x": NaN}}', "NaN is not a JSON value"),
        ("POST", "/v1/leases", b'{"count": 1, "queue": "q", "duration_s": Infinity}', "Infinity"),
        # lease fields
        ("POST", "/v1/leases", {"queue": "q", "duration_s": 30}, "missing field: count"),
        ("POST", "/v1/leases", {"count": 1, "duration_s": 30}, "missing field: queue"),
        ("POST", "/v1/leases", LEASE | {"colour": "red"}, "unknown field(s): colour"),
        ("POST", "/v1/leases", LEASE | {"count": 0}, "count"),
        ("POST", "/v1/leases", LEASE | {"duration_s": -1}, "duration"),
        ("POST", "/v1/leases", LEASE | {"count": "two"}, "count"),
        ("POST", "/v1/leases", LEASE | {"min_count": 2}, "min_count"),
        ("POST", "/v1/leases", LEASE, "idle rig"),  # no rig registered
        # query parameters
        ("GET", "/v1/leases?state=bogus", None, "unknown state"),
        ("GET", "/v1/leases?stat=serving", None, "unknown query parameter(s) on /v1/leases: stat"),
        ("GET", "/v1/rigs?all=1", None, "unknown query parameter(s)"),
        # jobs
        ("POST", "/v1/queues/q/jobs", {}, "missing field: payload"),
        ("POST", "/v1/queues/q/jobs", {"payload": [1]}, "payload must be a JSON object"),
        ("POST", "/v1/queues/q/jobs", {"payload": {}, "extra": 1}, "unknown field(s): extra"),
        ("POST", "/v1/queues/q/jobs", {"payload": {}, "job_id": "has space"}, "job_id must be"),
        ("POST", "/v1/queues/q/jobs", {"payload": {}, "job_id": 7}, "job_id must be"),
        ("POST", "/v1/queues/q/jobs", {"jobs": []}, "non-empty list"),
        ("POST", "/v1/queues/q/jobs", {"jobs": {"payload": {}}}, "non-empty list"),
        ("POST", "/v1/queues/q/jobs", {"jobs": [{"payload": {}}], "payload": {}}, "unknown field"),
        ("POST", "/v1/queues/q/jobs", {"jobs": [{"payload": {}}, 5]}, "jobs[1] must be"),
        ("POST", "/v1/queues/a%20b/jobs", {"payload": {}}, "queue must be"),
        ("GET", "/v1/jobs/a%20b", None, "job_id must be"),
        ("POST", "/v1/queues/q/jobs", {"payload": {"n": 2**70}}, "not msgpack-able"),
    ],
)
async def test_bad_requests_are_400(
    http: httpx.AsyncClient, method: str, path: str, content: Any, fragment: str
) -> None:
    if isinstance(content, bytes):
        response = await http.request(method, path, content=content)
    else:
        response = await http.request(method, path, json=content)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert isinstance(error, str) and fragment in error


async def test_lease_extend_and_cancel_bodies(stack: Stack, nursery: trio.Nursery) -> None:
    await connect_rig(nursery, stack, "rig-a")
    async with await http_client(stack) as http:
        lease_id = (await http.post("/v1/leases", json=LEASE)).json()["lease_id"]
        for body, fragment in [
            ({}, "missing field: seconds"),
            ({"seconds": 0}, "seconds must be a positive number"),
            ({"seconds": "60"}, "seconds must be a positive number"),
            ({"seconds": True}, "seconds must be a positive number"),
            ({"seconds": 5, "reason": "x"}, "unknown field(s): reason"),
        ]:
            response = await http.post(f"/v1/leases/{lease_id}/extend", json=body)
            assert response.status_code == 400 and fragment in response.json()["error"], body
        bad_cancel = await http.post(f"/v1/leases/{lease_id}/cancel", json={"now": True})
        assert bad_cancel.status_code == 400
        assert (await http.get(f"/v1/leases/{lease_id}")).json()["state"] == "draining"


async def test_batch_is_checked_before_anything_is_enqueued(stack: Stack) -> None:
    async with await http_client(stack) as http:
        jobs = [{"payload": {"n": 1}}, {"payload": {"n": 2}}, {"payload": "three"}]
        response = await http.post("/v1/queues/q/jobs", json={"jobs": jobs})
        assert response.status_code == 400
        assert "jobs[2]: payload must be a JSON object" in response.json()["error"]
    assert (await stack.leases.queue.stats("q")).ready == 0


async def test_a_batch_the_queue_refuses_enqueues_none_of_it(stack: Stack) -> None:
    """The batch is one `enqueue_many`: a job id taken on another queue refuses all of it."""
    async with await http_client(stack) as http:
        taken = await http.post("/v1/queues/other/jobs", json={"payload": {}, "job_id": "taken"})
        assert taken.status_code == 201
        jobs = [{"payload": {"n": 1}, "job_id": "fresh"}, {"payload": {"n": 2}, "job_id": "taken"}]
        response = await http.post("/v1/queues/q/jobs", json={"jobs": jobs})
        assert response.status_code == 400
        assert response.json()["error"].endswith("already used on queue 'other' (none of the batch was enqueued)")
        assert (await http.get("/v1/jobs/fresh")).status_code == 404
    assert (await stack.leases.queue.stats("q")).ready == 0


async def test_body_over_the_limit_is_413(make_stack: MakeStack) -> None:
    stack = await make_stack(max_body_bytes=1024)
    big = {"payload": {"text": "x" * 2000}}
    async with await http_client(stack) as http:
        declared = await http.post("/v1/queues/q/jobs", json=big)
        assert declared.status_code == 413
        assert declared.json() == {"error": "request body exceeds 1024 bytes"}

        async def chunks() -> AsyncIterator[bytes]:  # no content-length: counted as it arrives
            for _ in range(4):
                yield b" " * 512

        streamed = await http.post("/v1/queues/q/jobs", content=chunks())
        assert streamed.status_code == 413
        small = await http.post("/v1/queues/q/jobs", json={"payload": {"text": "x"}})
        assert small.status_code == 201
    assert (await stack.leases.queue.stats("q")).ready == 1


async def test_token_guards_every_v1_route(make_stack: MakeStack, nursery: trio.Nursery) -> None:
    stack = await make_stack(api_token="s3cret")
    # Without a token only reads from the pool's own host pass (tests/api/test_access.py); a
    # request that a reverse proxy forwarded is not from this host.
    forwarded = {"x-forwarded-for": "198.51.100.7"}
    async with (
        httpx.AsyncClient(base_url=stack.url, headers=forwarded, timeout=10.0) as anonymous,
        await http_client(stack, "wrong") as wrong,
    ):
        for client in (anonymous, wrong):
            for method, path in [
                ("GET", "/v1/stats"),
                ("GET", "/v1/rigs"),
                ("GET", "/v1/leases"),
                ("POST", "/v1/leases"),
                ("GET", "/v1/leases/lease-1"),
                ("POST", "/v1/leases/lease-1/extend"),
                ("POST", "/v1/leases/lease-1/cancel"),
                ("POST", "/v1/queues/q/jobs"),
                ("GET", "/v1/jobs/j"),
                ("GET", "/v1/events"),
                ("GET", "/v1/no-such-route"),  # refused before routing: paths are not probed
            ]:
                response = await client.request(method, path)
                assert response.status_code == 401, (method, path)
                assert response.headers["www-authenticate"] == "Bearer"
                assert "API token" in response.json()["error"]
        # /health and /metrics stay open for load balancers and Prometheus
        assert (await anonymous.get("/health")).status_code == 200
        assert (await anonymous.get("/metrics")).status_code == 200
    async with await http_client(stack) as local:  # this host, no token: writes are refused
        assert (await local.post("/v1/queues/q/jobs", json={"payload": {}})).status_code == 401
    assert (await stack.leases.queue.stats("q")).ready == 0
    async with await http_client(stack, "s3cret") as http:
        assert (await http.get("/v1/stats")).status_code == 200
        assert (await http.post("/v1/queues/q/jobs", json={"payload": {}})).status_code == 201
        lower = await http.get("/v1/rigs", headers={"authorization": "bearer s3cret"})
        assert lower.status_code == 200


async def test_an_operator_message_reaches_the_miners_named(stack: Stack, nursery: trio.Nursery) -> None:
    first = await Miner.connect(nursery, stack.stratum_port, "ops.1")
    second = await Miner.connect(nursery, stack.stratum_port, "ops.2")
    async with await http_client(stack) as http:
        reply = await http.post("/v1/messages", json={"text": "pool restarts at 14:00 UTC"})
        assert reply.json() == {"sent": 2}
        reply = await http.post("/v1/messages", json={"text": "rig 2 runs hot", "worker": "ops.2"})
        assert reply.json() == {"sent": 1}

    def shown(miner: Miner) -> list[str]:
        return [e.message for e in miner.events if isinstance(e, ShowMessage)]

    await second.wait_for(lambda: len(shown(second)) == 2)
    await first.wait_for(lambda: len(shown(first)) == 1)
    assert shown(first) == ["pool restarts at 14:00 UTC"]
    assert shown(second) == ["pool restarts at 14:00 UTC", "rig 2 runs hot"]
