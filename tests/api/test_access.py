"""Who may call the API (`stratumkit.api.access`): from the pool's own host a read needs no token,
from anywhere else every /v1 call needs it, and without a token set only the own host is answered.

Requests from this host go over real HTTP to loopback; requests from another host go straight to
the ASGI app with a non-loopback peer address (the address is all the rule reads of a peer), and
as what a reverse proxy on this host forwards (real HTTP, with its headers).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import partial

import httpx
import pytest
import trio

from stratumkit.api.access import REFUSAL
from stratumkit.api.app import ApiApp, serve_api

from .test_routes_fake import TIMEOUT, FakeLeases, FakePool

TOKEN = "s3cret"
REMOTE_PEER = ("192.0.2.10", 50123)  # TEST-NET-1: not this host


async def local_api(nursery: trio.Nursery, token: str | None) -> str:
    serve = partial(serve_api, FakePool(), FakeLeases(), "127.0.0.1", 0, api_token=token)
    port = await nursery.start(serve)
    return f"http://127.0.0.1:{port}"


@pytest.fixture
async def local(nursery: trio.Nursery) -> AsyncIterator[httpx.AsyncClient]:
    """A client on the pool's own host, of an API with a token."""
    async with httpx.AsyncClient(base_url=await local_api(nursery, TOKEN), timeout=TIMEOUT) as client:
        yield client


def remote(token: str | None, **headers: str) -> httpx.AsyncClient:
    """A client on another host (peer 192.0.2.10) of an API with `token`."""
    app = ApiApp(FakePool(), FakeLeases(), api_token=token)
    transport = httpx.ASGITransport(app=app, client=REMOTE_PEER)
    return httpx.AsyncClient(transport=transport, base_url="http://pool.example:8080", headers=headers)


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


JOB = {"payload": {"kind": "embeddings"}}


async def test_this_host_reads_without_the_token_and_writes_with_it(local: httpx.AsyncClient) -> None:
    for path in ("/v1/stats", "/v1/rigs", "/v1/leases"):
        assert (await local.get(path)).status_code == 200, path
    async with local.stream("GET", "/v1/events") as events:
        assert events.status_code == 200
    assert (await local.get("/v1/jobs/nope")).status_code == 404  # past the rule: the route answers
    refused = await local.post("/v1/queues/q/jobs", json=JOB)
    assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
    assert (await local.post("/v1/queues/q/jobs", json=JOB, headers=bearer(TOKEN))).status_code == 201
    # a token that is sent is checked, even where none is needed
    assert (await local.get("/v1/stats", headers=bearer("wrong"))).status_code == 401
    assert (await local.get("/v1/stats", headers={"authorization": "Basic czNjcmV0"})).status_code == 401
    session = (await local.get("/dashboard/session")).json()
    assert session == {"routes": session["routes"], "token_needed": False, "refused": None}


@pytest.mark.parametrize(
    "headers",
    [
        {"x-forwarded-for": "198.51.100.7"},  # a reverse proxy on this host forwarded it
        {"forwarded": "for=198.51.100.7"},
        {"x-real-ip": "198.51.100.7"},
        {"host": "rebound.example:8080"},  # another site's name pointed at 127.0.0.1 (DNS rebinding)
        {"origin": "http://attacker.example"},  # another site's page in the operator's browser
        {"origin": "http://127.0.0.1:1"},  # another origin on this host
    ],
)
async def test_a_loopback_peer_that_is_not_this_host_alone_needs_the_token(
    local: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    denied = await local.get("/v1/stats", headers=headers)
    assert denied.status_code == 401, denied.text
    assert (await local.get("/v1/stats", headers=headers | bearer(TOKEN))).status_code == 200
    assert (await local.get("/dashboard/session", headers=headers)).json()["token_needed"] is True
    assert (await local.get("/", headers=headers)).status_code == 200  # the page itself is open


async def test_the_page_s_own_origin_and_loopback_names_count_as_this_host(local: httpx.AsyncClient) -> None:
    origin = str(local.base_url).rstrip("/")
    assert (await local.get("/v1/stats", headers={"origin": origin})).status_code == 200
    port = local.base_url.port
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}", f"dash.localhost:{port}"):
        assert (await local.get("/v1/stats", headers={"host": host})).status_code == 200, host


async def test_another_host_needs_the_token_for_everything_under_v1() -> None:
    async with remote(TOKEN) as anonymous, remote(TOKEN, **bearer(TOKEN)) as operator:
        for method, path in [("GET", "/v1/stats"), ("GET", "/v1/events"), ("POST", "/v1/queues/q/jobs")]:
            response = await anonymous.request(method, path, json=JOB)
            assert response.status_code == 401, (method, path)
        assert (await anonymous.get("/dashboard/session")).json()["token_needed"] is True
        for path in ("/", "/dashboard/dashboard.js", "/health"):
            assert (await anonymous.get(path)).status_code == 200, path
        assert (await operator.get("/v1/stats")).status_code == 200
        assert (await operator.post("/v1/queues/q/jobs", json=JOB)).status_code == 201


async def test_without_a_token_set_only_this_host_is_answered(nursery: trio.Nursery) -> None:
    async with remote(None) as anonymous, remote(None, **bearer("anything")) as guessing:
        for client in (anonymous, guessing):
            for method, path in [("GET", "/v1/stats"), ("POST", "/v1/queues/q/jobs")]:
                response = await client.request(method, path, json=JOB)
                assert (response.status_code, response.json()) == (403, {"error": REFUSAL}), (method, path)
        session = (await anonymous.get("/dashboard/session")).json()
        assert session["refused"] == REFUSAL and session["token_needed"] is False
        assert (await anonymous.get("/")).status_code == 200
    async with httpx.AsyncClient(base_url=await local_api(nursery, None), timeout=TIMEOUT) as local:
        assert (await local.get("/v1/stats")).status_code == 200
        assert (await local.post("/v1/queues/q/jobs", json=JOB)).status_code == 201
        assert (await local.get("/dashboard/session")).json()["refused"] is None
