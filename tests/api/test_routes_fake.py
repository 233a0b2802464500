"""Every route of the HTTP API over real HTTP, against in-memory fakes of `PoolView` and
`LeaseAPI`: what the API itself decides (routing, auth, bodies, status codes, error mapping),
independent of the pool and the lease service behind it."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import httpx
import pytest
import trio

from stratumkit.api.app import EVENT_BUFFER, MAX_BATCH_JOBS, serve_api
from stratumkit.api.ports import LeaseAPI, PoolView
from stratumkit.lease.errors import RequestError
from stratumkit.queue.engine import QueueClosed, UnknownJob

TIMEOUT = 10.0


@dataclass
class FakePool:
    port: int | None = 3333
    numbers: dict[str, Any] = field(
        default_factory=lambda: {
            "accepted": 7,
            "rejected": {"duplicate": 2},
            "blocks": 1,
            "connections": 3,
            "hashrate": 1.5e9,
            "height": 101,
            "uptime": 12.5,
        }
    )
    messages: list[tuple[str, str | None]] = field(default_factory=list)

    def snapshot(self) -> dict[str, Any]:
        return dict(self.numbers)

    def send_message(self, text: str, worker: str | None = None) -> int:
        self.messages.append((text, worker))
        return 1 if worker else 3


class FakeLeases:
    """Leases and jobs in dicts; refuses what the real service refuses, with the same error types."""

    def __init__(self) -> None:
        self.leases: dict[str, dict[str, Any]] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.enqueued: list[tuple[str, dict[str, Any], str | None]] = []
        self.subscribers: set[trio.MemorySendChannel[dict[str, Any]]] = set()
        self.subscribed = trio.Event()
        self.queue_closed = False
        self.rigs_value: list[dict[str, Any]] = [{"rig_id": "rig-a", "mode": "mining"}]
        self.broken = False

    async def refresh(self, route: str, lease_id: str | None = None) -> None:
        pass

    def rigs(self) -> list[dict[str, Any]]:
        return self.rigs_value

    async def create_lease(self, body: dict[str, Any]) -> dict[str, Any]:
        if "queue" not in body:
            raise RequestError("missing field: queue")
        lease_id = f"lease-{len(self.leases) + 1}"
        self.leases[lease_id] = {
            "lease_id": lease_id,
            "state": "serving",
            "queue": body["queue"],
            "remaining_s": float(body.get("duration_s", 60)),
        }
        self.publish({"type": "lease.created", "lease_id": lease_id})
        return self.lease_view(lease_id)

    async def extend_lease(self, lease_id: str, extra_s: Any) -> dict[str, Any]:
        if isinstance(extra_s, bool) or not isinstance(extra_s, int | float) or extra_s <= 0:
            raise RequestError("seconds must be a positive number")
        self.leases[lease_id]["remaining_s"] += extra_s
        return self.lease_view(lease_id)

    async def cancel_lease(self, lease_id: str) -> dict[str, Any]:
        lease = self.leases[lease_id]
        if lease["state"] == "cancelled":
            raise RequestError(f"cannot cancel lease {lease_id!r}: it is cancelled")
        lease["state"] = "cancelled"
        return self.lease_view(lease_id)

    def list_leases(self, states: list[str] | None = None) -> list[dict[str, Any]]:
        if states and not set(states) <= {"serving", "cancelled"}:
            raise RequestError(f"unknown state in {states}")
        return [dict(x) for x in self.leases.values() if states is None or x["state"] in states]

    def has_lease(self, lease_id: str) -> bool:
        return lease_id in self.leases

    async def lease_jobs(self, lease_id: str, limit: int = 1000) -> list[dict[str, Any]]:
        return [dict(job, job_id=job_id) for job_id, job in self.jobs.items() if job.get("lease_id") == lease_id]

    def lease_owner(self, lease_id: str) -> str | None:
        return None  # integrators and ownership: tests/api/test_tenants.py, on the real service

    def integrator(self, token: str) -> str | None:
        return None

    @property
    def has_integrators(self) -> bool:
        return False

    async def issue_token(self, name: Any) -> str:
        raise RequestError("this fake issues no tokens")

    def lease_view(self, lease_id: str) -> dict[str, Any]:
        if lease_id not in self.leases:
            raise RequestError(f"no lease {lease_id!r}")
        return dict(self.leases[lease_id])

    async def enqueue(self, queue: str, payload: Any, job_id: str | None = None) -> str:
        if self.queue_closed:
            raise QueueClosed("the queue engine is closed")
        if payload.get("refuse"):
            raise RequestError("payload refused")
        job = job_id or f"job-{len(self.jobs) + 1}"
        self.jobs.setdefault(job, {"job_id": job, "status": "pending"})
        self.enqueued.append((queue, payload, job_id))
        return job

    async def enqueue_many(self, queue: str, jobs: Sequence[tuple[Any, str | None]]) -> list[str]:
        if self.queue_closed:
            raise QueueClosed("the queue engine is closed")
        if any(payload.get("refuse") for payload, _ in jobs):
            raise RequestError("payload refused")
        return [await self.enqueue(queue, payload, job_id) for payload, job_id in jobs]

    async def job(self, job_id: str) -> dict[str, Any]:
        if job_id not in self.jobs:
            raise UnknownJob(job_id)
        return self.jobs[job_id]

    @asynccontextmanager
    async def events(self, buffer: int = 1000) -> AsyncIterator[AsyncIterable[dict[str, Any]]]:
        send, receive = trio.open_memory_channel[dict[str, Any]](buffer)
        self.subscribers.add(send)
        self.subscribed.set()
        try:
            yield receive
        finally:
            self.subscribers.discard(send)
            send.close()

    def publish(self, event: dict[str, Any]) -> None:
        for send in list(self.subscribers):
            try:
                send.send_nowait(event)
            except trio.WouldBlock:  # too far behind: dropped, as the real service does
                self.subscribers.discard(send)
                send.close()

    def stats(self) -> dict[str, Any]:
        if self.broken:
            raise RuntimeError("stats are broken")
        return {"rigs": 1, "leases_live": len(self.leases), "divert_latency_s": None, "return_latency_s": None}

    async def health(self) -> dict[str, dict[str, Any]]:
        if self.queue_closed:
            return {"queue": {"status": "unavailable", "error": "queue closed"}}
        return {"queue": {"status": "ok"}}


@dataclass
class Api:
    pool: FakePool
    leases: FakeLeases
    url: str
    stop: trio.Event

    def client(self, token: str | None = None) -> httpx.AsyncClient:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=TIMEOUT)


MakeApi = Callable[..., Awaitable[Api]]


@pytest.fixture
async def make_api(nursery: trio.Nursery) -> MakeApi:
    async def make(**kwargs: Any) -> Api:
        pool, leases, stop = FakePool(), FakeLeases(), trio.Event()
        # The fakes are what the API is typed against: mypy checks they fit the protocols.
        view: PoolView = pool
        lease_api: LeaseAPI = leases
        serve = partial(serve_api, view, lease_api, "127.0.0.1", 0, shutdown_trigger=stop.wait, **kwargs)
        port = await nursery.start(serve)
        return Api(pool, leases, f"http://127.0.0.1:{port}", stop)

    return make


@pytest.fixture
async def api(make_api: MakeApi) -> Api:
    return await make_api()


@pytest.fixture
async def http(api: Api) -> AsyncIterator[httpx.AsyncClient]:
    async with api.client() as client:
        yield client


# ---------------------------------------------------------------------- each route


async def test_health(api: Api, http: httpx.AsyncClient) -> None:
    ok = await http.get("/health")
    assert (ok.status_code, ok.json()) == (200, {"status": "ok", "stratum_port": 3333, "queue": {"status": "ok"}})
    api.leases.queue_closed = True  # integrators cannot be served: degraded, although miners are
    down = await http.get("/health")
    assert (down.status_code, down.json()) == (
        503,
        {"status": "degraded", "stratum_port": 3333, "queue": {"status": "unavailable", "error": "queue closed"}},
    )
    api.pool.port = None
    starting = await http.get("/health")
    assert (starting.status_code, starting.json()) == (503, {"status": "starting"})


async def test_metrics_page(http: httpx.AsyncClient) -> None:
    response = await http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    lines = response.text.splitlines()
    assert "stratumkit_shares_accepted_total 7" in lines
    assert 'stratumkit_shares_rejected_total{reason="duplicate"} 2' in lines
    assert "stratumkit_block_height 101" in lines
    assert int(response.headers["content-length"]) == len(response.content)


async def test_stats_and_rigs(api: Api, http: httpx.AsyncClient) -> None:
    stats = await http.get("/v1/stats")
    assert stats.headers["content-type"] == "application/json"
    assert stats.json() == {"pool": api.pool.snapshot(), "leases": api.leases.stats()}
    assert (await http.get("/v1/rigs")).json() == {"rigs": [{"rig_id": "rig-a", "mode": "mining"}]}


async def test_operator_messages(api: Api, http: httpx.AsyncClient) -> None:
    reply = await http.post("/v1/messages", json={"text": "maintenance at 14:00 UTC"})
    assert reply.status_code == 200 and reply.json() == {"sent": 3}
    reply = await http.post("/v1/messages", json={"text": "your rig runs hot", "worker": "bc1q.rig7"})
    assert reply.json() == {"sent": 1}
    assert api.pool.messages == [("maintenance at 14:00 UTC", None), ("your rig runs hot", "bc1q.rig7")]
    for body in (
        {},
        {"text": ""},
        {"text": 5},
        {"text": "x" * 513},
        {"text": "x", "worker": ""},
        {"text": "x", "to": "y"},
    ):
        assert (await http.post("/v1/messages", json=body)).status_code == 400, body
    assert len(api.pool.messages) == 2


async def test_lease_routes(api: Api, http: httpx.AsyncClient) -> None:
    created = await http.post("/v1/leases", json={"count": 1, "queue": "embed", "duration_s": 30})
    assert created.status_code == 201, created.text
    assert created.headers["location"] == "/v1/leases/lease-1"
    assert created.json() == {"lease_id": "lease-1", "state": "serving", "queue": "embed", "remaining_s": 30.0}
    await http.post("/v1/leases", json={"queue": "chat"})

    got = await http.get("/v1/leases/lease-1")
    assert (got.status_code, got.json()["queue"]) == (200, "embed")
    extended = await http.post("/v1/leases/lease-1/extend", json={"seconds": 15})
    assert (extended.status_code, extended.json()["remaining_s"]) == (200, 45.0)

    cancelled = await http.post("/v1/leases/lease-1/cancel")  # no body
    assert (cancelled.status_code, cancelled.json()["state"]) == (200, "cancelled")
    again = await http.post("/v1/leases/lease-1/cancel", json={})  # the lease layer's refusal: 400
    assert (again.status_code, again.json()) == (400, {"error": "cannot cancel lease 'lease-1': it is cancelled"})

    def ids(response: httpx.Response) -> list[str]:
        assert response.status_code == 200, response.text
        return [x["lease_id"] for x in response.json()["leases"]]

    assert ids(await http.get("/v1/leases")) == ["lease-1", "lease-2"]
    assert ids(await http.get("/v1/leases?state=serving")) == ["lease-2"]
    assert ids(await http.get("/v1/leases?state=serving,cancelled")) == ["lease-1", "lease-2"]
    assert ids(await http.get("/v1/leases?state=cancelled&state=serving")) == ["lease-1", "lease-2"]
    assert ids(await http.get("/v1/leases?state=")) == ["lease-1", "lease-2"]  # empty: no filter
    bogus = await http.get("/v1/leases?state=bogus")
    assert bogus.status_code == 400 and "unknown state" in bogus.json()["error"]


async def test_job_routes(api: Api, http: httpx.AsyncClient) -> None:
    one = await http.post("/v1/queues/embed/jobs", json={"payload": {"input": ["hi"]}})
    assert (one.status_code, one.json()) == (201, {"job_id": "job-1"})
    named = await http.post("/v1/queues/team/embed/jobs", json={"payload": {}, "job_id": "tenant/j-1"})
    assert named.json() == {"job_id": "tenant/j-1"}
    batch = await http.post(
        "/v1/queues/embed/jobs", json={"jobs": [{"payload": {"n": 1}}, {"payload": {"n": 2}, "job_id": "j-9"}]}
    )
    assert (batch.status_code, batch.json()) == (201, {"job_ids": ["job-3", "j-9"]})
    assert api.leases.enqueued == [
        ("embed", {"input": ["hi"]}, None),
        ("team/embed", {}, "tenant/j-1"),
        ("embed", {"n": 1}, None),
        ("embed", {"n": 2}, "j-9"),
    ]
    job = await http.get("/v1/jobs/tenant/j-1")
    assert (job.status_code, job.json()) == (200, {"job_id": "tenant/j-1", "status": "pending"})


async def test_a_refused_batch_enqueues_none_of_it(api: Api, http: httpx.AsyncClient) -> None:
    jobs = [{"payload": {}, "job_id": "a"}, {"payload": {}, "job_id": "b"}, {"payload": {"refuse": True}}]
    response = await http.post("/v1/queues/q/jobs", json={"jobs": jobs})
    assert response.status_code == 400
    assert response.json() == {"error": "payload refused (none of the batch was enqueued)"}
    assert api.leases.enqueued == []
    api.leases.queue_closed = True
    closed = await http.post("/v1/queues/q/jobs", json={"jobs": jobs[:2]})
    assert (closed.status_code, closed.json()) == (503, {"error": "the queue engine is closed"})


async def test_a_closed_queue_is_503(api: Api, http: httpx.AsyncClient) -> None:
    api.leases.queue_closed = True
    response = await http.post("/v1/queues/q/jobs", json={"payload": {}})
    assert (response.status_code, response.json()) == (503, {"error": "the queue engine is closed"})


async def test_event_stream(api: Api, http: httpx.AsyncClient) -> None:
    with trio.fail_after(TIMEOUT):
        async with http.stream("GET", "/v1/events") as response:
            assert response.status_code == 200
            assert response.headers["content-type"] == "application/x-ndjson"
            assert response.headers["cache-control"] == "no-store"
            assert api.leases.subscribers  # subscribed before the headers were sent
            api.leases.publish({"type": "job.enqueued", "job_id": "j-1"})
            lines = response.aiter_lines()
            assert json.loads(await anext(lines)) == {"type": "job.enqueued", "job_id": "j-1"}
            api.stop.set()  # shutting down: the stream ends, the response is complete
            assert [line async for line in lines] == []
    assert not api.leases.subscribers


async def test_an_event_stream_that_falls_behind_is_dropped(api: Api, http: httpx.AsyncClient) -> None:
    with trio.fail_after(TIMEOUT):
        async with http.stream("GET", "/v1/events") as response:
            for n in range(EVENT_BUFFER + 10):  # no checkpoint in between: the server cannot keep up
                api.leases.publish({"type": "tick", "n": n})
            events = [json.loads(line) async for line in response.aiter_lines()]
    # What was buffered arrives in order (plus the one a reader already waiting took), then the drop.
    ticks = [e["n"] for e in events[:-1]]
    assert ticks == list(range(len(ticks))) and EVENT_BUFFER <= len(ticks) <= EVENT_BUFFER + 1
    assert events[-1] == {"type": "stream.dropped", "reason": f"fell more than {EVENT_BUFFER} events behind"}


# ---------------------------------------------------------------------- what goes wrong


@pytest.mark.parametrize(
    ("method", "path", "status", "allow"),
    [
        ("GET", "/dashboard/no-such-file.js", 404, None),
        ("POST", "/", 405, "GET"),
        ("GET", "/v1", 404, None),
        ("GET", "/v1/leases/lease-1/extend/more", 404, None),
        ("GET", "/v1/queues//jobs", 404, None),
        ("DELETE", "/v1/leases", 405, "GET, POST"),
        ("PUT", "/v1/leases/lease-1", 405, "GET"),
        ("GET", "/v1/leases/lease-1/cancel", 405, "POST"),
        ("GET", "/v1/queues/q/jobs", 405, "POST"),
        ("POST", "/v1/events", 405, "GET"),
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


async def test_unknown_ids_are_404_before_the_body_is_read(http: httpx.AsyncClient) -> None:
    for method, path, content in [
        ("GET", "/v1/leases/lease-9", b""),
        ("POST", "/v1/leases/lease-9/extend", b"{not json"),
        ("POST", "/v1/leases/lease-9/cancel", b"[]"),
    ]:
        response = await http.request(method, path, content=content)
        assert (response.status_code, response.json()) == (404, {"error": "no lease 'lease-9'"}), path
    job = await http.get("/v1/jobs/nope")
    assert (job.status_code, job.json()) == (404, {"error": "unknown job 'nope'"})


@pytest.mark.parametrize(
    ("path", "content", "fragment"),
    [
        ("/v1/leases", b'{"queue": NaN}', "request body is not valid JSON: NaN is not a JSON value"),
        ("/v1/leases", b'{"queue": "q", "duration_s": Infinity}', "Infinity is not a JSON value"),
        ("/v1/queues/q/jobs", b'{"payload": {"x": [-Infinity]}}', "-Infinity is not a JSON value"),
        ("/v1/leases", b"[]", "request body must be a JSON object, not list"),
        ("/v1/queues/q/jobs", b"42", "request body must be a JSON object, not int"),
        ("/v1/queues/q/jobs", b"null", "request body must be a JSON object, not NoneType"),
        ("/v1/leases", b"{", "request body is not valid JSON"),
        ("/v1/leases", b"\xff", "request body is not valid JSON"),
        ("/v1/leases", b"  \n", "request body is empty; expected a JSON object"),
        ("/v1/leases", b'{"count": 1}', "missing field: queue"),  # the lease layer's RequestError
        ("/v1/leases/lease-1/extend", b"{}", "missing field: seconds"),
        ("/v1/leases/lease-1/extend", b'{"seconds": 5, "why": 1}', "unknown field(s): why"),
        ("/v1/leases/lease-1/extend", b'{"seconds": "5"}', "seconds must be a positive number"),
        ("/v1/leases/lease-1/cancel", b'{"now": true}', "unknown field(s): now"),
        ("/v1/queues/q/jobs", b"{}", "body: missing field: payload"),
        ("/v1/queues/q/jobs", b'{"payload": 1}', "body: payload must be a JSON object"),
        ("/v1/queues/q/jobs", b'{"payload": {}, "job_id": "a b"}', "body: job_id must be"),
        ("/v1/queues/q/jobs", b'{"jobs": []}', "jobs must be a non-empty list"),
        ("/v1/queues/q/jobs", b'{"jobs": [{"payload": {}}, "x"]}', "jobs[1] must be a JSON object"),
        ("/v1/queues/q/jobs", b'{"jobs": [{"payload": {}}], "more": 1}', "unknown field(s): more"),
        ("/v1/queues/a%20b/jobs", b'{"payload": {}}', "queue must be"),
    ],
)
async def test_bad_bodies_are_400(api: Api, http: httpx.AsyncClient, path: str, content: bytes, fragment: str) -> None:
    await api.leases.create_lease({"queue": "q"})
    response = await http.post(path, content=content)
    assert response.status_code == 400, response.text
    assert fragment in response.json()["error"]
    assert api.leases.enqueued == []


async def test_too_many_jobs_in_one_batch(api: Api, http: httpx.AsyncClient) -> None:
    response = await http.post("/v1/queues/q/jobs", json={"jobs": [{"payload": {}}] * (MAX_BATCH_JOBS + 1)})
    assert response.status_code == 400
    assert response.json() == {"error": f"at most {MAX_BATCH_JOBS} jobs per request, got {MAX_BATCH_JOBS + 1}"}
    assert api.leases.enqueued == []


async def test_unknown_query_parameters_are_400(http: httpx.AsyncClient) -> None:
    for path in ("/v1/rigs?all=1", "/v1/leases?stat=serving", "/v1/jobs/j?wait=1"):
        response = await http.get(path)
        assert response.status_code == 400, path
        assert response.json()["error"].startswith(f"unknown query parameter(s) on {path.split('?')[0]}: ")


async def test_a_body_over_the_limit_is_413(make_api: MakeApi) -> None:
    api = await make_api(max_body_bytes=100)
    async with api.client() as http:
        declared = await http.post("/v1/queues/q/jobs", json={"payload": {"text": "x" * 200}})
        assert (declared.status_code, declared.json()) == (413, {"error": "request body exceeds 100 bytes"})

        async def chunks() -> AsyncIterator[bytes]:  # no content-length: counted as it arrives
            for _ in range(3):
                yield b" " * 40

        streamed = await http.post("/v1/queues/q/jobs", content=chunks())
        assert streamed.status_code == 413
        at_limit = await http.post("/v1/queues/q/jobs", content=json.dumps({"payload": {"t": "x" * 78}}).encode())
        assert len(at_limit.request.content) == 100 and at_limit.status_code == 201
    assert len(api.leases.enqueued) == 1


async def test_a_bug_behind_a_route_is_500_for_that_request_only(api: Api, http: httpx.AsyncClient) -> None:
    api.leases.broken = True
    raised = await http.get("/v1/stats")
    assert (raised.status_code, raised.json()) == (500, {"error": "internal error (RuntimeError)"})
    api.leases.rigs_value = [{"rig_id": "r", "hashrate": float("nan")}]  # JSON cannot carry it
    unrenderable = await http.get("/v1/rigs")
    assert (unrenderable.status_code, unrenderable.json()) == (500, {"error": "internal error (ValueError)"})
    assert (await http.get("/health")).status_code == 200


# ---------------------------------------------------------------------- the token


async def test_the_token_guards_every_v1_route_and_only_those(make_api: MakeApi) -> None:
    api = await make_api(api_token="s3cret")
    routes = [
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
        ("GET", "/v1"),
        ("DELETE", "/v1/no-such-route"),  # refused before routing: paths are not probed
    ]
    for headers in (
        {"x-forwarded-for": "198.51.100.7"},  # not from this host (tests/api/test_access.py)
        {"authorization": "Bearer wrong"},
        {"authorization": "Basic s3cret"},
        {"authorization": "s3cret"},
    ):
        async with httpx.AsyncClient(base_url=api.url, headers=headers, timeout=TIMEOUT) as client:
            for method, path in routes:
                response = await client.request(method, path, json={"payload": {}})
                assert response.status_code == 401, (headers, method, path)
                assert response.headers["www-authenticate"] == "Bearer"
                assert response.json() == {"error": "missing or invalid API token (send Authorization: Bearer <token>)"}
            assert (await client.get("/health")).status_code == 200
            assert (await client.get("/metrics")).status_code == 200
    assert api.leases.enqueued == [] and api.leases.leases == {}

    async with api.client("s3cret") as http:
        assert (await http.get("/v1/stats")).status_code == 200
        assert (await http.post("/v1/queues/q/jobs", json={"payload": {}})).status_code == 201
        lower = await http.get("/v1/rigs", headers={"authorization": "bearer  s3cret"})
        assert lower.status_code == 200
        assert (await http.get("/v1/nothing")).status_code == 404  # past the token, routing decides


async def test_without_a_token_nothing_is_asked(http: httpx.AsyncClient) -> None:
    response = await http.get("/v1/rigs", headers={"authorization": "Bearer anything"})
    assert response.status_code == 200


def test_the_api_does_not_load_the_pool_or_the_lease_service() -> None:
    code = (
        "import sys, stratumkit.api.app\n"
        "loaded = sorted(m for m in ('stratumkit.server.pool', 'stratumkit.lease.service') if m in sys.modules)\n"
        "print(loaded)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"
