"""Integrators own their leases: a real pool, lease service and API, with an admin token and
integrator tokens (configured, and issued by the operator through the API)."""

from __future__ import annotations

import httpx
import trio

from stratumkit.client import PoolClient

from .conftest import MakeStack, Stack, connect_rig

ADMIN = "admin-token"
LEASE = {"count": 1, "queue": "embed", "duration_s": 60}


def client(stack: Stack, token: str | None) -> httpx.AsyncClient:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return httpx.AsyncClient(base_url=stack.url, headers=headers, timeout=10.0)


async def test_a_lease_belongs_to_its_integrator(make_stack: MakeStack, nursery: trio.Nursery) -> None:
    stack = await make_stack(api_token=ADMIN, integrator_tokens={"acme": "acme-token"})
    await connect_rig(nursery, stack, "rig-1")
    await connect_rig(nursery, stack, "rig-2")
    async with client(stack, ADMIN) as admin, client(stack, "acme-token") as acme, client(stack, "nope") as stranger:
        assert (await stranger.get("/v1/leases")).status_code == 401
        issued = await admin.post("/v1/integrators", json={"name": "globex"})
        assert issued.status_code == 201 and issued.json()["name"] == "globex"
        token = issued.json()["token"]
        assert (await acme.post("/v1/integrators", json={"name": "evil"})).status_code == 403
        assert (await acme.post("/v1/messages", json={"text": "hi"})).status_code == 403
        assert (await admin.post("/v1/integrators", json={"name": "no spaces"})).status_code == 400

        mine = await acme.post("/v1/leases", json=LEASE)
        assert mine.status_code == 201 and mine.json()["owner"] == "acme"
        lease_id = mine.json()["lease_id"]
        refused = await acme.post("/v1/leases", json={**LEASE, "owner": "globex"})
        assert refused.status_code == 400 and "owner" in refused.json()["error"]

        async with client(stack, token) as globex:
            theirs = (await globex.post("/v1/leases", json=LEASE)).json()["lease_id"]
            for method, path in [
                ("GET", f"/v1/leases/{lease_id}"),
                ("POST", f"/v1/leases/{lease_id}/extend"),
                ("POST", f"/v1/leases/{lease_id}/cancel"),
                ("GET", f"/v1/leases/{lease_id}/jobs"),
            ]:
                body = {"seconds": 5} if path.endswith("extend") else None
                other = await globex.request(method, path, json=body)
                assert (other.status_code, other.json()) == (404, {"error": f"no lease {lease_id!r}"}), path
            assert [v["lease_id"] for v in (await globex.get("/v1/leases")).json()["leases"]] == [theirs]

        assert [v["lease_id"] for v in (await acme.get("/v1/leases")).json()["leases"]] == [lease_id]
        assert (await acme.get(f"/v1/leases/{lease_id}/jobs")).json() == {"jobs": []}
        assert {v["lease_id"] for v in (await admin.get("/v1/leases")).json()["leases"]} == {lease_id, theirs}
        assert (await admin.post(f"/v1/leases/{theirs}/cancel")).status_code == 200  # the operator may
        assert (await acme.post(f"/v1/leases/{lease_id}/cancel")).status_code == 200


async def test_an_integrator_event_stream_leaves_out_others_leases(
    make_stack: MakeStack, nursery: trio.Nursery
) -> None:
    stack = await make_stack(api_token=ADMIN, integrator_tokens={"acme": "acme-token", "globex": "globex-token"})
    await connect_rig(nursery, stack, "rig-1")
    await connect_rig(nursery, stack, "rig-2")
    async with PoolClient(stack.url, "acme-token") as acme, client(stack, "globex-token") as globex:
        async with acme.events() as events:
            theirs = (await globex.post("/v1/leases", json=LEASE)).json()["lease_id"]
            mine = (await acme.create_lease(count=1, queue="embed", duration_s=60))["lease_id"]
            seen: list[str] = []
            with trio.fail_after(10):
                async for event in events:
                    if "lease_id" in event:
                        seen.append(event["lease_id"])
                    if event.get("type") == "lease.state" and event["lease_id"] == mine:
                        break
    assert mine in seen and theirs not in seen


async def test_an_event_of_a_lease_this_process_never_saw_goes_by_the_owner_it_carries(
    make_stack: MakeStack,
) -> None:
    """A front end of a shared lease plane shows events of leases made elsewhere: the leader
    stamps each lease event with its owner, and that owner decides who sees it."""
    stack = await make_stack(api_token=ADMIN, integrator_tokens={"acme": "acme-token", "globex": "globex-token"})
    got: dict[str, list[str]] = {"acme": [], "globex": []}
    async with PoolClient(stack.url, "acme-token") as acme, PoolClient(stack.url, "globex-token") as globex:
        async with acme.events() as acme_events, globex.events() as globex_events:
            for owner in ("globex", "acme"):
                stack.leases.publish({"type": "lease.state", "lease_id": f"elsewhere-{owner}", "owner": owner})
            stack.leases.publish({"type": "rig.mining", "rig_id": "rig-9"})  # no lease: everyone's
            for name, events in (("acme", acme_events), ("globex", globex_events)):
                with trio.fail_after(10):
                    async for event in events:
                        got[name].append(event.get("lease_id") or event["type"])
                        if event["type"] == "rig.mining":
                            break
    assert got == {"acme": ["elsewhere-acme", "rig.mining"], "globex": ["elsewhere-globex", "rig.mining"]}


async def test_a_lease_event_carries_its_owner(make_stack: MakeStack, nursery: trio.Nursery) -> None:
    stack = await make_stack(api_token=ADMIN, integrator_tokens={"acme": "acme-token"})
    await connect_rig(nursery, stack, "rig-1")
    async with stack.leases.events() as events, PoolClient(stack.url, "acme-token") as acme:
        lease_id = (await acme.create_lease(count=1, queue="embed", duration_s=60))["lease_id"]
        with trio.fail_after(10):
            async for event in events:
                if event.get("lease_id") == lease_id:
                    assert event["owner"] == "acme"
                    break
