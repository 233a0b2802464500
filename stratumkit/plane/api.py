"""The HTTP API's lease calls on a front end of a shared lease plane (a ``LeaseAPI``).

Rules:

- On the leader, every call goes to its lease service directly.
- On any other front end a call is forwarded: XADD to the plane's API stream with a reply key
  and the epoch the front end knows (only the leader of that epoch answers), then BLPOP on that
  key; no answer within ``call_timeout_s`` is ``Unavailable`` (HTTP 503), as
  is a plane with no leader. The leader's errors come back as the same errors (400, 404, 503).
- The API's reads that do not await (rigs, leases, one lease, its owner, stats) are served from
  what :meth:`refresh` fetched from the leader just before (the API calls it before such
  reads, and it fetches only what the route reads: one lease for a lease's routes), so a front
  end reads its own writes and what the others did. An event stream's filter for integrators
  knows the leases this front end has read or made.
- Integrator tokens: those of the configuration, and those issued through any front end (read
  from the shared lease store every ``tokens_every_s``).
- Events come from the plane's events stream (the node tails it), so every front end shows
  every event.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import trio

from stratumkit.lease.errors import RequestError, Unavailable
from stratumkit.lease.integrators import Integrators
from stratumkit.queue.engine import UnknownJob

if TYPE_CHECKING:
    from .node import PlaneNode

__all__ = ["PlaneLeases", "PlanePower"]

#: What each API route reads of the plane (`refresh`); a route not named here reads everything.
_PARTS: dict[str, tuple[str, ...]] = {
    "rigs": ("rigs",),
    "list_leases": ("leases",),
    "get_lease": ("lease",),
    "extend_lease": ("lease",),
    "cancel_lease": ("lease",),
    "lease_jobs": ("lease",),
    "stats": ("stats",),
    "metrics": ("stats", "rigs", "leases"),
}


class PlaneLeases:
    def __init__(self, node: PlaneNode, integrators: Integrators) -> None:
        self.node = node
        self.integrators = integrators
        self._rigs: list[dict[str, Any]] = []
        self._all: list[dict[str, Any]] = []  # every lease, as the latest full read saw them
        self._known: dict[str, dict[str, Any]] = {}  # each lease as last seen, by id
        self._stats: dict[str, Any] = {}

    # ------------------------------------------------------------------ forwarding

    async def _call(self, method: str, *args: Any) -> Any:
        service = self.node.service
        if service is not None:
            from .host import serve_call

            return await serve_call(service, method, list(args))
        reply = await self.node.forward(method, list(args))
        if "ok" in reply:
            return reply["ok"]
        kind, message = reply.get("error"), str(reply.get("message"))
        if kind == "request":
            raise RequestError(message)
        if kind == "unknown_job":
            raise UnknownJob(str(args[0]))
        if kind == "unavailable":
            raise Unavailable(message)
        raise RuntimeError(f"the lease plane's leader failed the call: {message}")

    async def refresh(self, route: str, lease_id: str | None = None) -> None:
        """Fetch from the leader what `route` reads (one lease for a lease's routes)."""
        if self.node.service is not None:
            return
        parts = _PARTS.get(route, ("rigs", "leases", "stats"))
        view = await self._call("view", list(parts), lease_id)
        if "rigs" in view:
            self._rigs = list(view["rigs"])
        if "leases" in view:
            self._all = list(view["leases"])
            self._known = {lease["lease_id"]: lease for lease in self._all}
        if "lease" in view and lease_id is not None:
            self._seen(lease_id, view["lease"])
        if "stats" in view:
            self._stats = dict(view["stats"])

    def _seen(self, lease_id: str, lease: dict[str, Any] | None) -> dict[str, Any] | None:
        if lease is None:
            self._known.pop(lease_id, None)
        else:
            self._known[lease_id] = lease
        return lease

    def _lease(self, lease_id: str) -> dict[str, Any]:
        service = self.node.service
        if service is not None:
            return service.lease_view(lease_id)
        lease = self._known.get(lease_id)
        if lease is None:
            raise RequestError(f"no lease {lease_id!r}")
        return dict(lease)

    # ------------------------------------------------------------------ LeaseAPI

    def rigs(self) -> list[dict[str, Any]]:
        service = self.node.service
        return service.rigs() if service is not None else list(self._rigs)

    async def create_lease(self, body: dict[str, Any]) -> dict[str, Any]:
        lease: dict[str, Any] = await self._call("create_lease", body)
        self._seen(lease["lease_id"], lease)
        return lease

    async def extend_lease(self, lease_id: str, extra_s: Any) -> dict[str, Any]:
        lease: dict[str, Any] = await self._call("extend_lease", lease_id, extra_s)
        self._seen(lease_id, lease)
        return lease

    async def cancel_lease(self, lease_id: str) -> dict[str, Any]:
        lease: dict[str, Any] = await self._call("cancel_lease", lease_id)
        self._seen(lease_id, lease)
        return lease

    def list_leases(self, states: list[str] | None = None) -> list[dict[str, Any]]:
        service = self.node.service
        if service is not None:
            return service.list_leases(states)
        from stratumkit.lease.model import LeaseState

        if states:
            known = {s.value for s in LeaseState}
            if not set(states) <= known:
                raise RequestError(f"unknown state in {states}; known: {sorted(known)}")
        return [view for view in self._all if not states or view["state"] in states]

    def has_lease(self, lease_id: str) -> bool:
        service = self.node.service
        return service.has_lease(lease_id) if service is not None else lease_id in self._known

    def lease_view(self, lease_id: str) -> dict[str, Any]:
        return self._lease(lease_id)

    async def lease_jobs(self, lease_id: str, limit: int = 1000) -> list[dict[str, Any]]:
        jobs: list[dict[str, Any]] = await self._call("lease_jobs", lease_id, limit)
        return jobs

    async def enqueue(self, queue: str, payload: Any, job_id: str | None = None) -> str:
        (job,) = await self.enqueue_many(queue, [(payload, job_id)])
        return job

    async def enqueue_many(self, queue: str, jobs: Sequence[tuple[Any, str | None]]) -> list[str]:
        ids: list[str] = await self._call("enqueue_many", queue, [list(job) for job in jobs])
        return ids

    async def job(self, job_id: str) -> dict[str, Any]:
        view: dict[str, Any] = await self._call("job", job_id)
        return view

    @asynccontextmanager
    async def events(self, buffer: int = 1000) -> AsyncIterator[trio.MemoryReceiveChannel[dict[str, Any]]]:
        async with self.node.subscribe(buffer) as receive:
            yield receive

    def stats(self) -> dict[str, Any]:
        service = self.node.service
        view: dict[str, Any] = service.stats() if service is not None else dict(self._stats)
        view["plane"] = self.node.describe()
        return view

    def integrator(self, token: str) -> str | None:
        return self.integrators.name_of(token)

    @property
    def has_integrators(self) -> bool:
        return self.integrators.enabled

    async def issue_token(self, name: Any) -> str:
        token: str = await self._call("issue_token", name)
        await self.node.load_integrators(self.integrators)
        return token

    def lease_owner(self, lease_id: str) -> str | None:
        owner = self._lease(lease_id).get("owner")
        return owner if isinstance(owner, str) else None

    async def health(self) -> dict[str, Any]:
        try:
            parts: dict[str, Any] = await self._call("health")
        except Unavailable as exc:
            parts = {"queue": {"status": "unknown"}, "lease_store": {"status": "unavailable", "error": str(exc)}}
        parts["lease_plane"] = {"status": "ok" if self.node.epoch_known else "unavailable", **self.node.describe()}
        return parts


class PlanePower:
    """The HTTP API's power routes on a front end of a shared lease plane (a ``PowerAPI``).

    The power service runs on the leader only (``PlaneNode.power``): on the leader a route is
    answered by it directly; on any other front end it is forwarded to the leader as a lease call
    is (no leader, or no answer within ``call_timeout_s``: ``Unavailable``, 503; a refused price or
    curtailment: 400 with the leader's reason); a curtailment waits ``curtail_wait_s`` more for
    the answer, as the leader may wait for overridden leases' rigs to mine. ``/health``'s ``power`` part and the power
    metrics are the leader's own; a follower says it does not run the power layer and exports no
    power metrics.
    """

    def __init__(self, node: PlaneNode, *, curtail_wait_s: float = 0.0) -> None:
        self.node = node
        self.curtail_wait_s = curtail_wait_s

    async def call(self, method: str, path: str, body: object) -> dict[str, Any]:
        power = self.node.power
        if power is not None:
            return await power.call(method, path, body)
        if self.node.service is not None:
            raise Unavailable("the power layer is not running on this front end (it is starting with the plane)")
        timeout = self.node.call_timeout_s + (self.curtail_wait_s if path == "/v1/curtail" else 0.0)
        reply = await self.node.forward("power", [method, path, body], timeout_s=timeout)
        if "ok" in reply and isinstance(reply["ok"], dict):
            answer: dict[str, Any] = reply["ok"]
            return answer
        kind, message = reply.get("error"), str(reply.get("message"))
        if kind == "request":
            raise RequestError(message)
        if kind == "unavailable":
            raise Unavailable(message)
        raise RuntimeError(f"the lease plane's leader failed the call: {message}")

    def health(self) -> dict[str, Any]:
        power = self.node.power
        if power is not None:
            return {**power.health(), "runs_here": True}
        return {"runs_here": False, "note": "the power layer runs on the lease plane's leader"}

    def metrics(self) -> str:
        power = self.node.power
        return power.metrics() if power is not None else ""
