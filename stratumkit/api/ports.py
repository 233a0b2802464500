"""What the HTTP API needs of the pool and of the lease layer, as small protocols.

The routes read these and nothing more, so the API is tested against in-memory fakes and does not
load the pool or the lease service when it is imported. `stratumkit.server.pool.Pool` is a
`PoolView` and `stratumkit.lease.service.LeaseService` a `LeaseAPI`.

Errors the API maps (see `stratumkit.api.app`): `RequestError` (lease layer) and `QueueError`
(queue engine) are the client's fault, 400; `QueueClosed`, `Unavailable` and queue outages are
503; `UnknownJob` from `job` is 404.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

__all__ = ["LeaseAPI", "PoolView", "PowerAPI"]


class PoolView(Protocol):
    """The pool as the routes read it."""

    @property
    def port(self) -> int | None:
        """The stratum port bound, or None until the pool listens."""
        ...

    def snapshot(self) -> dict[str, Any]:
        """JSON-able numbers: accepted, rejected (by reason), blocks, connections, hashrate, height, uptime."""
        ...

    def send_message(self, text: str, worker: str | None = None) -> int:
        """`client.show_message` to the miners of `worker` (every miner when None): how many."""
        ...


class LeaseAPI(Protocol):
    """The integrator's operations on rigs, leases and job queues."""

    async def refresh(self, route: str, lease_id: str | None = None) -> None:
        """Called before the reads that do not await (rigs, leases, stats) of `route` (the route's
        name; `lease_id` for a lease's routes): a front end of a shared lease plane fetches what
        the route reads from the plane here; a lone pool has nothing to do."""
        ...

    def rigs(self) -> list[dict[str, Any]]: ...

    async def create_lease(self, body: dict[str, Any]) -> dict[str, Any]:
        """Lease rigs as the body asks; the lease as `lease_view` shows it."""
        ...

    async def extend_lease(self, lease_id: str, extra_s: Any) -> dict[str, Any]: ...

    async def cancel_lease(self, lease_id: str) -> dict[str, Any]: ...

    def list_leases(self, states: list[str] | None = None) -> list[dict[str, Any]]: ...

    def has_lease(self, lease_id: str) -> bool:
        """Whether a lease has this id (the API answers 404 when not, before it reads a body)."""
        ...

    def lease_view(self, lease_id: str) -> dict[str, Any]: ...

    async def lease_jobs(self, lease_id: str, limit: int = 1000) -> list[dict[str, Any]]:
        """The jobs the lease's rigs ran, each as `job` shows it plus rig, claimed_at, finished_at."""
        ...

    async def enqueue(self, queue: str, payload: Any, job_id: str | None = None) -> str:
        """Put a job on `queue`; its id (`job_id` when given: enqueueing it again changes nothing)."""
        ...

    async def enqueue_many(self, queue: str, jobs: Sequence[tuple[Any, str | None]]) -> list[str]:
        """Put a batch of (payload, job_id) on `queue` in one step, all or none; their ids in order."""
        ...

    async def job(self, job_id: str) -> dict[str, Any]:
        """{job_id, status, ...}; raises `UnknownJob` for an id never enqueued."""
        ...

    def events(self, buffer: int = 1000) -> AbstractAsyncContextManager[AsyncIterable[dict[str, Any]]]:
        """Subscribe to lease and job events; the iteration ends when the subscriber falls
        `buffer` events behind (it was dropped)."""
        ...

    def stats(self) -> dict[str, Any]: ...

    def integrator(self, token: str) -> str | None:
        """The integrator an API token belongs to, or None."""
        ...

    @property
    def has_integrators(self) -> bool:
        """Whether any integrator token exists (then every /v1 call needs a token)."""
        ...

    async def issue_token(self, name: Any) -> str:
        """A new token for integrator `name` (RequestError for a bad name)."""
        ...

    def lease_owner(self, lease_id: str) -> str | None:
        """The integrator the lease belongs to (None: made by the operator or an open API)."""
        ...

    async def health(self) -> dict[str, dict[str, Any]]:
        """Each part the integrator's calls need ("queue", ...) -> {"status": "ok" | ..., "error"?}."""
        ...


class PowerAPI(Protocol):
    """Prices, the policy, curtailment and energy (`stratumkit.power.service.PowerService`)."""

    async def call(self, method: str, path: str, body: object) -> dict[str, Any]:
        """Answer a /v1 power route; a ValueError is the client's fault (400, its message)."""
        ...

    def health(self) -> dict[str, Any]: ...

    def metrics(self) -> str: ...
