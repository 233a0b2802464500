"""What the leader of a lease plane runs for the rigs of every front end, and for their API calls.

Rules:

- :class:`RemoteRigConnection` is a rig connection of some front end as the lease service sees it
  (:class:`~stratumkit.session.ports.RigConnection`): each call queues a command for that front
  end (``send(front_end, command)``, never blocking), tagged with the leader's epoch. It keeps
  what the service reads of it (rig id, mode, accepted shares, worker, peer) from the front end's
  messages and from its own calls.
- :meth:`PlaneHost.dispatch` takes the inbox in stream order and drops every message of another
  epoch. Messages of one connection are carried out in order, one at a time, on that
  connection's own task (as the pool handles one connection's requests), so a slow call of one
  rig does not hold the others up.
- Every answer to a rig carries the jobs its rig holds (the claims, without their payloads); a
  hello brings them back, so a new leader keeps the jobs of a rig whose connection outlived the
  old leader (``LeaseService.adopt_claims``) instead of requeueing them under it.
- ``suspend`` (a front end stopped, its alive key expired, or it holds a new boot nonce: it was
  restarted within the ttl): its rigs (of the connections it no longer has) are suspended, keeping
  their stints for the resume grace (``LeaseService.suspend``).
- :func:`serve_call` answers an API call forwarded by another front end (``view`` gives every
  rig, lease and the stats at once, for a front end's reads; ``power`` a /v1 power route on the
  leader's power service).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog
import trio

from stratumkit.lease.errors import RequestError, Unavailable
from stratumkit.lease.queue_health import is_outage
from stratumkit.lease.service import LeaseService
from stratumkit.protocol.events import ExtensionRequest
from stratumkit.protocol.jsonrpc import RequestId
from stratumkit.queue.engine import ClaimedJob, QueueClosed, QueueError, UnknownJob
from stratumkit.session.ports import RigMode

if TYPE_CHECKING:
    from stratumkit.api.ports import PowerAPI

__all__ = ["PlaneHost", "RemoteRigConnection", "error_reply", "serve_call"]

log = structlog.get_logger("stratumkit.plane")

Send = Callable[[str, dict[str, Any]], None]


class RemoteRigConnection:
    """A rig connection held by front end ``front_end`` (connection id ``cid``)."""

    def __init__(
        self,
        send: Send,
        front_end: str,
        cid: str,
        epoch: int,
        first: dict[str, Any],
        claims: Callable[[RemoteRigConnection], list[dict[str, Any]]] | None = None,
    ) -> None:
        self.front_end = front_end
        self._claims = claims
        self.cid = cid
        self._send = send
        self._epoch = epoch
        self._rig_id: str | None = None
        self._mode = RigMode(first.get("mode", RigMode.MINING.value))
        self.shares = int(first.get("n", 0))
        self._peer = str(first.get("peer", ""))
        self._worker: str | None = first.get("w")

    def seen(self, message: dict[str, Any]) -> None:
        """What a message of the front end says of the connection now."""
        self._peer = str(message.get("peer", self._peer))
        self._worker = message.get("w", self._worker)

    def _command(self, kind: str, **fields: Any) -> None:
        self._send(self.front_end, {"k": kind, "e": self._epoch, "c": self.cid, **fields})

    @property
    def peer(self) -> str:
        return f"{self._peer} via {self.front_end}"

    @property
    def worker(self) -> str | None:
        return self._worker

    @property
    def rig_id(self) -> str | None:
        return self._rig_id

    @property
    def accepted(self) -> int:
        return self.shares

    @property
    def mode(self) -> RigMode:
        return self._mode

    def register_rig(self, rig_id: str) -> None:
        self._rig_id = rig_id
        self._command("register", r=rig_id)

    def set_mode(self, mode: RigMode, now: float, *, difficulty: float | None = None) -> None:
        self._mode = mode
        self._command("mode", mode=mode.value, d=difficulty)

    def respond(self, request_id: RequestId, result: Any) -> None:
        self._command("respond", i=request_id, v=result, **self._held())

    def respond_error(self, request_id: RequestId, message: str) -> None:
        self._command("error", i=request_id, v=message, **self._held())

    def _held(self) -> dict[str, Any]:
        """The jobs the rig holds now, with every answer: the front end hands them to a new leader."""
        if self._claims is None or self._rig_id is None:
            return {}
        return {"claims": self._claims(self)}

    def notify(self, method: str, params: Any) -> None:
        self._command("notify", m=method, p=params)

    def drop(self, reason: str) -> None:
        self._command("drop", v=reason)


@dataclass
class _Remote:
    conn: RemoteRigConnection
    inbox: trio.MemorySendChannel[dict[str, Any]]


class PlaneHost:
    """The leader's side of every front end's rig connections (see the module docstring)."""

    def __init__(self, service: LeaseService, epoch: int, send: Send) -> None:
        self.service = service
        self.epoch = epoch
        self._send = send
        self._remotes: dict[tuple[str, str], _Remote] = {}
        self._nursery: trio.Nursery | None = None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            await trio.sleep_forever()

    def front_ends(self) -> set[str]:
        return {fe for fe, _ in self._remotes}

    def dispatch(self, message: dict[str, Any]) -> None:
        """One inbox message, in stream order."""
        if message.get("e") != self.epoch or self._nursery is None:
            return
        key = (str(message.get("f")), str(message.get("c")))
        remote = self._remotes.get(key)
        if remote is None:
            if message.get("k") != "req":
                return  # a share or an end of a connection this leader never knew
            send, receive = trio.open_memory_channel[dict[str, Any]](math.inf)
            conn = RemoteRigConnection(self._send, key[0], key[1], self.epoch, message, self._claims_of)
            remote = _Remote(conn, send)
            self._remotes[key] = remote
            self._nursery.start_soon(self._serve, key, remote.conn, receive)
        remote.inbox.send_nowait(message)

    def _claims_of(self, conn: RemoteRigConnection) -> list[dict[str, Any]]:
        link = self.service.links.get(conn.rig_id or "")
        if link is None or link.conn is not conn:
            return []
        return [
            {k: v for k, v in dataclasses.asdict(claim).items() if k != "payload"} for claim in link.claims.values()
        ]

    def suspend(self, front_end: str, keep: str | None = None) -> int:
        """The front end is gone (or restarted: ``keep`` is the boot nonce it runs under now):
        suspend the rigs of every one of its connections (of an earlier boot); how many."""
        gone = 0
        for (fe, cid), remote in list(self._remotes.items()):
            if fe == front_end and (keep is None or not cid.startswith(f"{keep}-")):
                remote.inbox.send_nowait({"k": "suspend"})
                gone += 1
        return gone

    async def _serve(
        self, key: tuple[str, str], conn: RemoteRigConnection, receive: trio.MemoryReceiveChannel[dict[str, Any]]
    ) -> None:
        service = self.service
        try:
            async for message in receive:
                kind = message.get("k")
                conn.seen(message)
                if kind == "req":
                    try:
                        request = ExtensionRequest(message["i"], str(message["m"]), message.get("p", ()))
                    except (ValueError, TypeError) as exc:
                        log.warning("bad relayed request", front_end=key[0], error=str(exc))
                        continue
                    held = message.get("claims")
                    if isinstance(held, list) and isinstance(message.get("r"), str):  # a hello
                        service.adopt_claims(message["r"], [ClaimedJob(payload={}, **claim) for claim in held])
                    await service.handle(conn, request)
                    if conn.rig_id is None and not receive.statistics().current_buffer_used:
                        return  # not a rig (refused): its next request starts over
                elif kind == "share":
                    conn.shares += 1
                    if conn.rig_id is not None:
                        service.on_accepted(conn, trio.current_time())
                elif kind == "closed":
                    await service.on_closed(conn)
                    return
                elif kind == "suspend":
                    await service.suspend(conn)
                    return
        finally:
            self._remotes.pop(key, None)


async def serve_call(service: LeaseService, method: str, args: list[Any], *, power: PowerAPI | None = None) -> Any:
    """One API call of another front end, on the leader's service (``power``: a /v1 power route,
    args = [method, path, body], on the leader's power service; its ValueErrors are the client's)."""
    match method:
        case "power":
            if power is None:
                raise Unavailable("the power layer is not running on the lease plane's leader")
            try:
                return await power.call(str(args[0]), str(args[1]), args[2])
            except ValueError as exc:  # BadPrice, BadCurtail
                raise RequestError(str(exc)) from None
        case "view":  # what a front end's read needs: args = [parts, lease id or None]
            parts, lease_id = set(args[0]), args[1]
            view: dict[str, Any] = {}
            if "rigs" in parts:
                view["rigs"] = service.rigs()
            if "leases" in parts:
                view["leases"] = service.list_leases()
            if "lease" in parts:
                view["lease"] = service.lease_view(lease_id) if service.has_lease(lease_id) else None
            if "stats" in parts:
                view["stats"] = service.stats()
            return view
        case "create_lease":
            return await service.create_lease(args[0])
        case "extend_lease":
            return await service.extend_lease(args[0], args[1])
        case "cancel_lease":
            return await service.cancel_lease(args[0])
        case "lease_jobs":
            return await service.lease_jobs(args[0], args[1])
        case "enqueue_many":
            return await service.enqueue_many(args[0], [(payload, job_id) for payload, job_id in args[1]])
        case "job":
            return await service.job(args[0])
        case "issue_token":
            return await service.issue_token(args[0])
        case "health":
            return await service.health()
    raise RequestError(f"unknown lease plane call {method!r}")


def error_reply(exc: Exception) -> dict[str, Any]:
    """How a failed call is told to the front end that forwarded it."""
    if isinstance(exc, RequestError):
        return {"error": "request", "message": str(exc)}
    if isinstance(exc, UnknownJob):
        return {"error": "unknown_job", "message": str(exc)}
    if isinstance(exc, Unavailable | QueueClosed) or (isinstance(exc, QueueError) and is_outage(exc)):
        return {"error": "unavailable", "message": str(exc)}
    if isinstance(exc, QueueError):
        return {"error": "request", "message": str(exc)}
    return {"error": "internal", "message": f"{type(exc).__name__}: {exc}"}
