"""The trio side of leases: the pure LeaseController wired to rigs' connections and a job queue.

The pool hands the service one :class:`~stratumkit.session.ports.RigConnection` per connection and
calls it through :class:`~stratumkit.session.ports.ExtensionPort`: ``handle`` for the stratumkit.*
requests (the messages, their wire table and their rules are in :mod:`stratumkit.protocol.rig`),
``on_accepted`` for a registered rig's shares, ``on_closed`` when its connection ends. Plain miners
never see the extension: lease messages go only to connections that registered as rigs.

The service touches a connection only through that port: ``register_rig`` marks it a rig,
``set_mode(DIVERTED)`` stops its work when it is diverted, ``set_mode(MINING, difficulty=quick)``
sends it fresh work once it is back, ``notify`` carries divert and return. Lease state (tokens,
phases, times, rig health) is the controller's alone; per rig the service keeps only the
connection, the jobs it has claimed and its run of failed jobs.

Durability: with a lease store, the controller is restored from it at start and saved after every
change by the :mod:`.persister` (a reply that grants, extends or cancels a lease waits for the
save); see ``_restore`` for how lease clocks treat the outage, and ``freeze`` for a shutdown.
Failures: a queue outage is ``Unavailable`` (HTTP 503) and is tracked in ``queue_health``; a bad
request stays ``RequestError`` (400). Jobs are checked at submit when ``check_jobs`` is set
(:mod:`.job_check`); rigs authenticate with :mod:`.rig_auth` before they register; integrators'
tokens are :mod:`.integrators`.

Rigs claim jobs through the pool (the pool is the queue's consumer on the rig's behalf, with the
rig id as consumer name), so a rig needs nothing but its pool connection, and a rig that
disconnects has its claims requeued at once. A claim that has to wait for a job waits on its own
task in the service's nursery and is answered later, so the rig's other requests go on meanwhile.

The controller runs on trio's clock; ``ends_at`` is translated to unix time for the agent. Switch
latencies come from the controller's accounting: divert = DivertRig -> serving acknowledgement,
return = ReturnRig -> the first share accepted after it; ``stats`` summarises the latest
``STATS_WINDOW`` of each.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import structlog
import trio

from stratumkit.percentile import percentile
from stratumkit.protocol import rig as wire
from stratumkit.protocol.events import ExtensionRequest
from stratumkit.protocol.jsonrpc import RequestId
from stratumkit.queue.engine import ClaimedJob, NewJob, QueueEngine, QueueError, UnknownJob, check_name
from stratumkit.session.ports import RigConnection, RigMode

from .accounting import RESTART_CREDIT_S, SlaUsage, rig_usage, sla
from .actions import Action, DivertRig, LeaseExtended, LeaseStateChanged, RequeueInFlight, ReturnRig, RigReleased
from .controller import LeaseController
from .errors import LeaseError, RequestError, Unavailable
from .fan_out import FanOut
from .ids import LEASE_ID_PREFIX, new_lease_id
from .integrators import Integrators
from .job_check import check_job
from .job_times import lifecycle
from .model import GPU, Assignment, Lease, LeaseSpec, LeaseState, RigCapabilities, RigPhase, Selector
from .persister import Persister
from .queue_health import QueueHealth
from .rig_auth import RigAuth
from .store import JobRecord, LeaseStore, LeaseStoreError

__all__ = ["LeaseService", "RequestError", "RigLink", "lease_to_dict", "parse_lease_spec"]

log = structlog.get_logger("stratumkit.lease")

#: After a lease, a rig's first share difficulty is set so that a share is expected this soon
#: (from the hashrate it declared), so mining visibly resumes at once; vardiff takes it from there.
FIRST_SHARE_AFTER_RETURN_S = 0.1
#: How many of the latest divert and return latencies ``stats`` summarises.
STATS_WINDOW = 1024
#: A waiting claim looks at the queue at least this often: the engines offer no wake-up for jobs
#: enqueued behind the service's back (another pool process, a direct Redis client).
CLAIM_POLL_S = 0.05
#: A serving rig that gives back this many jobs in a row (its backend failing them) is marked
#: unhealthy and replaced; a recorded result resets the count.
RIG_FAILURE_LIMIT = 3
#: How many jobs' latest failure causes are remembered (in memory) for the job view.
CAUSES_KEPT = 10_000
#: /health asks the queue for its stats, and calls it down if no answer comes within this.
HEALTH_PROBE_S = 2.0


@dataclass
class RigLink:
    """A registered rig's live connection and the jobs it holds."""

    conn: RigConnection
    claims: dict[str, ClaimedJob] = field(default_factory=dict)
    failures: int = 0  # jobs its backend gave back in a row while serving


class LeaseService:
    """The lease extension of a pool: an ExtensionPort over the controller, plus the HTTP API's calls."""

    def __init__(
        self,
        queue: QueueEngine,
        *,
        drain_timeout_s: float = 10.0,
        return_timeout_s: float = 10.0,
        resume_grace_s: float = 60.0,
        stats_window: int = STATS_WINDOW,
        store: LeaseStore | None = None,
        check_jobs: bool = False,
        rig_auth: RigAuth | None = None,
        integrators: Integrators | None = None,
    ) -> None:
        self.queue = queue
        self.rig_auth = rig_auth or RigAuth()
        self.integrators = integrators or Integrators()
        self.check_jobs = check_jobs  # refuse at submit what no rig would run (see job_check)
        self._timeouts: dict[str, Any] = {
            "drain_timeout_s": drain_timeout_s,
            "return_timeout_s": return_timeout_s,
            "reconnect_grace_s": resume_grace_s,
        }
        self.controller = LeaseController(**self._timeouts, lease_id_prefix=LEASE_ID_PREFIX)
        self.persister = (
            None if store is None else Persister(store, lambda: self.controller.snapshot(trio.current_time()))
        )
        self.links: dict[str, RigLink] = {}
        self.divert_latencies: deque[float] = deque(maxlen=stats_window)
        self.return_latencies: deque[float] = deque(maxlen=stats_window)
        self._fan_out = FanOut()
        self._wake = trio.Event()
        self._enqueued = trio.Event()  # set, then replaced, by each enqueue: wakes waiting claims
        self._nursery: trio.Nursery | None = None
        self._frozen = False
        self.queue_health = QueueHealth()
        self.job_causes: OrderedDict[str, str] = OrderedDict()  # job id -> why a rig last gave it back
        self.job_records: OrderedDict[str, JobRecord] = OrderedDict()  # the latest, by job id
        # SLA credits on the lease view: rig-seconds per forced restart, and the GPU-hour price
        # of a GPU model (None: unknown, no USD figure); the power service sets both
        self.sla_restart_s: float = RESTART_CREDIT_S
        self.gpu_hour_price: Callable[[str | None], float | None] | None = None
        #: Every published event is also handed here (a shared lease plane puts it on its stream).
        self.event_sink: Callable[[dict[str, Any]], None] | None = None
        #: A shared lease plane (:mod:`stratumkit.plane`): a rig registering again while its old
        #: connection (on another front end) is still linked is suspended, not disconnected, so
        #: its resume token resumes its stint; so is every rig of a front end that vanished.
        self.suspend_moved_rigs = False
        #: A shared lease plane's new leader: the claims of restored rigs stay in the queue until
        #: each rig registers again, so a rig whose connection outlived the old leader keeps the
        #: jobs it is running (its front end hands them over, ``adopt_claims``); a rig that comes
        #: back without them has them requeued then, one that never comes back when it is let go.
        self.defer_restored_requeue = False
        #: A shared lease plane's leader: asked before each tick acts on the queue and the rigs
        #: (a leader that was paused may wake to deadlines long past); False stops the ticks.
        self.still_leading: Callable[[], Awaitable[bool]] | None = None
        self._restored_claims: set[str] = set()
        self._adopting: dict[str, list[ClaimedJob]] = {}

    # ------------------------------------------------------------------ running

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Restore the stored leases, then wake at the controller's deadlines (lease ends, drain,
        return and resume timeouts); own the tasks of waiting claims and the store's writer."""
        async with trio.open_nursery() as nursery:
            if self.persister is not None:
                await self._restore(self.persister)
                await nursery.start(self.persister.run)
            self._nursery = nursery
            task_status.started()
            try:
                while True:
                    deadline = self.controller.next_deadline()
                    with trio.move_on_at(deadline if deadline is not None else trio.current_time() + 3600):
                        await self._wake.wait()
                    self._wake = trio.Event()
                    if self.still_leading is not None and not await self.still_leading():
                        await trio.sleep_forever()  # a newer leader decides now: ended by its node
                    actions = self.controller.tick(trio.current_time())
                    await self._apply(actions)
                    if actions:
                        self._changed()
            finally:
                self._nursery = None

    async def _restore(self, persister: Persister) -> None:
        """Rebuild the controller from the store. Lease clocks run on for the time the old process
        lived after its last save, and stand still for the outage: nothing is billed for it. Every
        restored rig is disconnected; jobs its old connection held go back to the queue now."""
        self.integrators.add_issued(await persister.store.integrators())
        stored = await persister.store.load()
        if stored is None:
            return
        self.controller = LeaseController.restore(
            stored.snapshot,
            trio.current_time(),
            downtime_s=stored.ran_after_save_s,
            lease_id_prefix=LEASE_ID_PREFIX,
            **self._timeouts,
        )
        requeued = 0
        for rig in self.controller.rigs():
            if self.defer_restored_requeue:
                self._restored_claims.add(rig.rig_id)
                continue
            try:
                requeued += await self.queue.requeue_consumer(rig.rig_id)
            except QueueError as exc:
                log.error("requeue failed", rig=rig.rig_id, error=str(exc))
        live = [lease.lease_id for lease in self.controller.leases() if not lease.state.is_terminal]
        log.info("leases restored", live=live, rigs=len(self.controller.rigs()), requeued=requeued,
                 outage_s=round(max(0.0, time.time() - stored.alive_at), 3))  # fmt: skip
        persister.mark()  # rewrite on this process's clock
        self._poke()

    def _changed(self) -> None:
        """The controller changed: save it soon."""
        if self.persister is not None:
            self.persister.mark()

    async def _durable(self) -> None:
        """The controller changed and the reply promises it: save it before answering."""
        if self.persister is None:
            return
        try:
            await self.persister.flush()
        except LeaseStoreError as exc:
            raise Unavailable(f"the lease was changed but not saved: {exc}") from None

    async def freeze(self) -> None:
        """The pool is stopping: save the leases as they are, and from now on treat closing rig
        connections as the shutdown they are, not as rigs leaving their leases."""
        self._frozen = True
        if self.persister is not None:
            await self.persister.freeze()

    def _poke(self) -> None:
        self._wake.set()

    # ------------------------------------------------------------------ the extension port

    @property
    def methods(self) -> frozenset[str]:
        return frozenset(wire.REQUESTS)

    async def handle(self, conn: RigConnection, event: ExtensionRequest) -> None:
        """Parse the request into its wire type and answer it (a waiting claim is answered later)."""
        kind = wire.REQUESTS.get(event.method)
        if kind is None:
            conn.respond_error(event.id, f"unknown method {event.method!r}")
            return
        try:
            msg = kind.from_params(event.params)
        except wire.RigMessageError as exc:
            conn.respond_error(event.id, str(exc))
            return
        if isinstance(msg, wire.RigRegister):
            await self._on_register(conn, event.id, msg)
            return
        rig_id = conn.rig_id
        link = self.links.get(rig_id or "")
        if rig_id is None or link is None or link.conn is not conn:
            conn.respond_error(event.id, f"not a registered rig: call {wire.RigRegister.METHOD}")
            return
        match msg:
            case wire.LeaseServing():
                await self._on_serving(conn, event.id, rig_id, msg)
            case wire.LeaseReturned():
                await self._on_returned(conn, event.id, rig_id, link, msg)
            case wire.JobClaim():
                await self._on_claim(conn, event.id, rig_id, link, msg)
            case wire.JobHeartbeat():
                await self._on_heartbeat(conn, event.id, link, msg)
            case wire.JobResult():
                await self._on_result(conn, event.id, rig_id, link, msg)
            case wire.JobRelease():
                await self._on_release(conn, event.id, rig_id, link, msg)

    def on_accepted(self, conn: RigConnection, now: float) -> None:
        """A registered rig's accepted share (``now`` on trio's clock): the first one after a
        return closes that return's latency."""
        rig_id = conn.rig_id
        link = self.links.get(rig_id or "")
        if rig_id is None or link is None or link.conn is not conn:
            return
        back = self.controller.rig_mining(rig_id, now)
        if back is not None and back.mining_latency_s is not None:
            self.return_latencies.append(back.mining_latency_s)

    async def on_closed(self, conn: RigConnection) -> None:
        """The rig's connection ended: the controller lets it go and its claims are requeued."""
        rig_id = conn.rig_id
        link = self.links.get(rig_id or "")
        if rig_id is None or link is None or link.conn is not conn:
            return  # never registered, or replaced by a newer connection of the same rig
        del self.links[rig_id]
        if self._frozen:
            return  # the pool is stopping: the stored stint waits for the rig to resume it
        await self._rig_gone(rig_id, link)

    def adopt_claims(self, rig_id: str, claims: Sequence[ClaimedJob]) -> None:
        """The jobs a restored rig's live connection holds: kept (not requeued) when its next
        registration succeeds (see ``defer_restored_requeue``)."""
        self._adopting[rig_id] = list(claims)

    async def suspend(self, conn: RigConnection) -> None:
        """The connection is gone with its front end (a shared lease plane): the rig keeps its
        stint for the resume grace, as after a restart (the controller's ``rig_suspended``)."""
        rig_id = conn.rig_id
        link = self.links.get(rig_id or "")
        if rig_id is None or link is None or link.conn is not conn:
            return
        del self.links[rig_id]
        if self._frozen:
            return
        await self._rig_suspended(rig_id, link)

    async def _rig_suspended(self, rig_id: str, link: RigLink) -> None:
        try:
            actions = self.controller.rig_suspended(rig_id, trio.current_time())
        except LeaseError:
            return
        self.publish({"type": "rig.disconnected", "rig_id": rig_id, "suspended": True})
        await self._apply(actions)
        self._changed()
        if link.claims:  # what its old connection held goes back now, as at a restore
            link.claims.clear()
            try:
                await self.queue.requeue_consumer(rig_id)
            except QueueError as exc:
                log.error("requeue failed", rig=rig_id, error=str(exc))
        self._poke()

    # ------------------------------------------------------------------ integrator API

    async def refresh(self, route: str, lease_id: str | None = None) -> None:
        """Nothing to fetch: the API reads this process's controller."""

    def rigs(self) -> list[dict[str, Any]]:
        out = []
        for rig in self.controller.rigs():
            link = self.links.get(rig.rig_id)
            out.append(
                {
                    "rig_id": rig.rig_id,
                    "worker": rig.worker,
                    "connected": rig.connected,
                    "lease_id": rig.lease_id,
                    "mode": "leased" if rig.lease_id else "mining",
                    "capabilities": rig.caps.to_dict(),
                    "healthy": rig.healthy,
                    "accepted_shares": link.conn.accepted if link else 0,
                    "jobs_in_flight": len(link.claims) if link else 0,
                }
            )
        return out

    async def create_lease(self, body: dict[str, Any]) -> dict[str, Any]:
        """A lease as the body asks; with ``wait_s`` a lease that cannot be filled now waits that
        long for rigs in ``requested`` (pending) instead of being refused."""
        body = dict(body)
        wait_s = body.pop("wait_s", None)
        if wait_s is not None and (isinstance(wait_s, bool) or not isinstance(wait_s, int | float)):
            raise RequestError(f"wait_s must be a number of seconds, got {wait_s!r}")
        spec = parse_lease_spec(body)
        try:
            check_name("queue", spec.queue)  # the engine's own rule: its rigs must be able to claim
        except QueueError as exc:
            raise RequestError(str(exc)) from None
        try:
            lease, actions = self.controller.create(spec, trio.current_time(), lease_id=new_lease_id(), wait_s=wait_s)
        except LeaseError as exc:
            raise RequestError(str(exc)) from None
        await self._apply(actions)
        self._poke()
        await self._durable()
        return self.lease_view(lease.lease_id)

    async def extend_lease(self, lease_id: str, extra_s: Any) -> dict[str, Any]:
        if isinstance(extra_s, bool) or not isinstance(extra_s, int | float) or not extra_s > 0:
            raise RequestError(f"seconds must be a positive number, got {extra_s!r}")
        try:  # the controller bounds the lease's new end
            actions = self.controller.extend(lease_id, float(extra_s), trio.current_time())
        except LeaseError as exc:
            raise RequestError(str(exc)) from None
        await self._apply(actions)
        self._poke()
        await self._durable()
        return self.lease_view(lease_id)

    async def cancel_lease(self, lease_id: str, *, curtailed: bool = False) -> dict[str, Any]:
        try:
            actions = self.controller.cancel(lease_id, trio.current_time(), curtailed=curtailed)
        except LeaseError as exc:
            raise RequestError(str(exc)) from None
        await self._apply(actions)
        self._poke()
        await self._durable()
        return self.lease_view(lease_id)

    def list_leases(self, states: list[str] | None = None) -> list[dict[str, Any]]:
        wanted = None
        if states:
            try:
                wanted = [LeaseState(s) for s in states]
            except ValueError:
                raise RequestError(f"unknown state in {states}; known: {[s.value for s in LeaseState]}") from None
        return [self.lease_view(lease.lease_id) for lease in self.controller.leases(wanted)]

    def integrator(self, token: str) -> str | None:
        """The integrator this API token belongs to, or None."""
        return self.integrators.name_of(token)

    @property
    def has_integrators(self) -> bool:
        return self.integrators.enabled

    async def issue_token(self, name: Any) -> str:
        """A new API token for integrator ``name``, kept (as a digest) in the lease store."""
        token, token_digest = self.integrators.issue(name)
        if self.persister is not None:
            try:
                await self.persister.store.add_integrator(token_digest, name)
            except LeaseStoreError as exc:
                raise Unavailable(f"the token was not saved: {exc}") from None
        self.integrators.admit(name, token_digest)
        return token

    def lease_owner(self, lease_id: str) -> str | None:
        """The integrator a lease belongs to (its spec's owner)."""
        try:
            return self.controller.get(lease_id).spec.owner
        except LeaseError as exc:
            raise RequestError(str(exc)) from None

    def has_lease(self, lease_id: str) -> bool:
        """Whether a lease has this id (the API answers 404 for one that has not)."""
        try:
            self.controller.get(lease_id)
        except LookupError:  # UnknownLease
            return False
        return True

    def lease_view(self, lease_id: str) -> dict[str, Any]:
        try:
            lease = self.controller.get(lease_id)
        except LeaseError as exc:
            raise RequestError(str(exc)) from None
        now = trio.current_time()
        price = None if self.gpu_hour_price is None else self.gpu_hour_price(lease.spec.selector.gpu_model)
        return lease_to_dict(lease, self.controller.usage(lease_id, now), sla(lease, now, self.sla_restart_s), price)

    def _refusal(self, exc: QueueError) -> Exception:
        """What an integrator is told of a failed queue call: 503 for an outage, else 400."""
        if self.queue_health.failed(exc):
            return Unavailable(f"the job queue is unavailable: {exc}")
        return RequestError(str(exc))

    async def health(self) -> dict[str, Any]:
        """Probe the queue (and report the lease store): {"queue": {...}, "lease_store": {...}}."""
        with trio.move_on_after(HEALTH_PROBE_S) as probe:
            try:
                await self.queue.stats("health")
                self.queue_health.succeeded()
            except QueueError as exc:
                self.queue_health.failed(exc)
        if probe.cancelled_caught:
            self.queue_health.failed(QueueError(f"no answer within {HEALTH_PROBE_S:g} s"))
        view: dict[str, Any] = {"queue": self.queue_health.view()}
        if self.persister is not None:
            failed = self.persister.failing
            view["lease_store"] = {"status": "ok"} if failed is None else {"status": "unavailable", "error": failed}
        return view

    def served_models(self, queue: str) -> set[str] | None:
        """The models the live leases on ``queue`` can serve (None: no live lease consumes it)."""
        leases = [lease for lease in self.controller.leases() if lease.state.is_live and lease.spec.queue == queue]
        if not leases:
            return None
        models: set[str] = set()
        for lease in leases:
            if lease.spec.selector.model is not None:
                models.add(lease.spec.selector.model)
            for stint in lease.active:
                models.update(self.controller.rig(stint.rig_id).caps.models)
        return models

    async def enqueue(self, queue: str, payload: Any, job_id: str | None = None) -> str:
        (job,) = await self.enqueue_many(queue, [(payload, job_id)])
        return job

    async def enqueue_many(self, queue: str, jobs: Sequence[tuple[Any, str | None]]) -> list[str]:
        """A batch of (payload, job_id), each checked first, then in one queue call: all or none."""
        models = self.served_models(queue) if self.check_jobs else None
        for i, (payload, _) in enumerate(jobs):
            where = "" if len(jobs) == 1 else f"jobs[{i}]: "
            if not isinstance(payload, dict):
                raise RequestError(f"{where}a job payload must be a JSON object")
            if self.check_jobs:
                try:
                    check_job(payload, queue, models)
                except RequestError as exc:
                    raise RequestError(f"{where}{exc}") from None
        try:
            ids = await self.queue.enqueue_many(queue, [NewJob(payload, job_id) for payload, job_id in jobs])
        except QueueError as exc:
            raise self._refusal(exc) from None
        self.queue_health.succeeded()
        self._enqueued.set()
        self._enqueued = trio.Event()
        for job in ids:
            self.publish({"type": "job.enqueued", "job_id": job, "queue": queue})
        return ids

    async def job(self, job_id: str) -> dict[str, Any]:
        try:
            result = await self.queue.result(job_id)
            letter = None if result is not None else await self.queue.dead_letter(job_id)
            info = await self.queue.info(job_id)
        except UnknownJob:
            raise
        except QueueError as exc:
            raise self._refusal(exc) from None
        self.queue_health.succeeded()
        times = lifecycle(info)
        if result is None:
            cause = self.job_causes.get(job_id) or info.cause  # the queue keeps it across restarts
            extra = {**times} if cause is None else {**times, "last_cause": cause}
            if letter is not None:  # it will never have a result: say so instead of "pending"
                extra.update({} if cause is None else {"cause": cause})
                return {"job_id": job_id, "status": "dead", "queue": letter.job.queue, "reason": letter.reason,
                        "deliveries": letter.job.deliveries, "dead_at": letter.dead_at, **extra}  # fmt: skip
            return {"job_id": job_id, "status": "pending", **extra}
        view = {
            "job_id": job_id,
            "status": "done",
            "queue": result.queue,
            "result": result.payload,
            "rig": result.consumer,
            "deliveries": result.deliveries,
            **times,
            "completed_at": result.completed_at,
        }
        cause = failure_cause(result.payload)
        if cause is not None:  # the backend refused or failed the job: its answer is an error
            view.update(status="failed", cause=cause)
        return view

    @asynccontextmanager
    async def events(self, buffer: int = 1000) -> AsyncIterator[trio.MemoryReceiveChannel[dict[str, Any]]]:
        """Subscribe to lease and job events; a subscriber that falls `buffer` behind is dropped."""
        async with self._fan_out.subscribe(buffer) as receive:
            yield receive

    def publish(self, event: dict[str, Any]) -> None:
        """Hand `event` to every subscriber (and the plane). An event of a lease carries the lease's
        owner, so a front end that never saw the lease can still show it to its integrator alone."""
        event.setdefault("time", time.time())
        lease_id = event.get("lease_id")
        if isinstance(lease_id, str) and "owner" not in event and self.has_lease(lease_id):
            event["owner"] = self.controller.get(lease_id).spec.owner
        if self.event_sink is not None:
            self.event_sink(event)
        self._fan_out.send(event)

    def stats(self) -> dict[str, Any]:
        return {
            "rigs": len(self.controller.rigs()),
            "leases_live": sum(1 for lease in self.controller.leases() if lease.state.is_live),
            "queue_up": self.queue_health.up,
            "queue_outages": self.queue_health.outages,
            "divert_latency_s": _percentiles(self.divert_latencies),
            "return_latency_s": _percentiles(self.return_latencies),
        }

    # ------------------------------------------------------------------ actions

    async def _apply(self, actions: list[Action]) -> None:
        now = trio.current_time()
        released: list[str] = []
        for action in actions:
            if isinstance(action, DivertRig):
                link = self.links.get(action.rig_id)
                if link is None:
                    continue  # not connected: the controller sends it again if the rig resumes
                link.conn.set_mode(RigMode.DIVERTED, now)
                wall_end = max(0.0, time.time() + (action.ends_at - now))
                divert = wire.LeaseDivert(action.lease_id, action.token, action.queue, wall_end)
                link.conn.notify(divert.METHOD, divert.to_params())
                self.publish({"type": "rig.diverted", "rig_id": action.rig_id, "lease_id": action.lease_id})
            elif isinstance(action, ReturnRig):
                link = self.links.get(action.rig_id)
                if link is None:
                    continue
                back = wire.LeaseReturn(action.lease_id, action.token)
                link.conn.notify(back.METHOD, back.to_params())
                self.publish({"type": "rig.returning", "rig_id": action.rig_id, "lease_id": action.lease_id})
            elif isinstance(action, RequeueInFlight):
                released.append(action.rig_id)
                link = self.links.get(action.rig_id)
                if link is not None:
                    link.claims.clear()
                try:
                    n = await self.queue.requeue_consumer(action.rig_id)
                except QueueError as exc:
                    log.error("requeue failed", rig=action.rig_id, error=str(exc))
                    continue
                if n:
                    log.info("requeued a rig's jobs", rig=action.rig_id, jobs=n, lease=action.lease_id)
                self.publish({"type": "jobs.requeued", "rig_id": action.rig_id, "lease_id": action.lease_id, "jobs": n})
            elif isinstance(action, LeaseStateChanged):
                old = action.old and action.old.value
                log.info("lease state", lease=action.lease_id, old=old, new=action.new.value)
                self.publish({"type": "lease.state", "lease_id": action.lease_id, "old": old, "new": action.new.value})
            elif isinstance(action, LeaseExtended):
                self.publish({"type": "lease.extended", "lease_id": action.lease_id})
            elif isinstance(action, RigReleased):
                self.publish(
                    {
                        "type": "rig.released",
                        "rig_id": action.rig_id,
                        "lease_id": action.lease_id,
                        "reason": action.reason.value,
                    }
                )
        for rig_id in released:  # a rig let go without its return (timeout): work for it again
            self._back_to_mining(rig_id, now)

    def _back_to_mining(self, rig_id: str, now: float) -> None:
        """Send fresh work to a diverted rig the controller no longer binds to a lease, at a
        difficulty that makes its first share come quickly."""
        link = self.links.get(rig_id)
        if link is None or link.conn.mode is not RigMode.DIVERTED:
            return
        rig = self.controller.rig(rig_id)
        if rig.lease_id is not None:  # drafted again straight away
            return
        quick = rig.caps.hashrate * FIRST_SHARE_AFTER_RETURN_S / 2**32 if rig.caps.hashrate > 0 else None
        link.conn.set_mode(RigMode.MINING, now, difficulty=quick)
        self.publish({"type": "rig.mining", "rig_id": rig_id})

    async def _rig_gone(self, rig_id: str, link: RigLink) -> None:
        """The rig's connection is over: tell the controller, put back what it held."""
        try:
            actions = self.controller.rig_disconnected(rig_id, trio.current_time())
        except LeaseError:
            return
        self.publish({"type": "rig.disconnected", "rig_id": rig_id})
        await self._apply(actions)
        self._changed()
        requeued = any(isinstance(a, RequeueInFlight) and a.rig_id == rig_id for a in actions)
        if link.claims and not requeued:  # jobs it held go back at once, lease or not
            try:
                await self.queue.requeue_consumer(rig_id)
            except QueueError as exc:
                log.error("requeue failed", rig=rig_id, error=str(exc))
        self._poke()

    # ------------------------------------------------------------------ rig calls

    async def _on_register(self, conn: RigConnection, request_id: RequestId, msg: wire.RigRegister) -> None:
        worker = conn.worker
        if worker is None:
            conn.respond_error(request_id, "rig registration refused: authorize a worker before registering the rig")
            return
        if conn.rig_id is not None:
            conn.respond_error(request_id, f"rig registration refused: this connection is already rig {conn.rig_id!r}")
            return
        rig_id = msg.rig_id or worker
        adopted = self._adopting.pop(rig_id, None)
        refusal = self.rig_auth.refusal(rig_id, msg.secret)
        if refusal is not None:  # not a rig: the connection goes on as a plain miner
            log.warning("rig registration refused", rig=rig_id, worker=worker, peer=conn.peer, reason=refusal)
            conn.respond_error(request_id, f"rig registration refused: {refusal}")
            return
        try:
            caps = RigCapabilities(
                gpus=tuple(GPU(g.model, g.vram_mb) for g in msg.gpus),
                models=msg.models,
                hashrate=msg.hashrate,
                power_w=msg.power_w,
            )
        except LeaseError as exc:
            conn.respond_error(request_id, f"rig registration refused: {exc}")
            return
        old = self.links.pop(rig_id, None)
        if old is not None:  # the controller has one connection per rig: the newer one wins
            old.conn.drop("the same rig registered on another connection")
            if self.suspend_moved_rigs and msg.resume_token is not None:
                await self._rig_suspended(rig_id, old)  # it moved front ends: let it resume
            else:
                await self._rig_gone(rig_id, old)
        try:
            actions = self.controller.register_rig(
                rig_id, worker, caps, trio.current_time(), resume_token=msg.resume_token
            )
        except LeaseError as exc:
            conn.respond_error(request_id, f"rig registration refused: {exc}")
            return
        self.links[rig_id] = RigLink(conn)
        if rig_id in self._restored_claims:  # the old leader's claims were left in the queue
            self._restored_claims.discard(rig_id)
            if adopted is not None:
                self.links[rig_id].claims = {claim.job_id: claim for claim in adopted}
            else:
                try:
                    await self.queue.requeue_consumer(rig_id)
                except QueueError as exc:
                    log.error("requeue failed", rig=rig_id, error=str(exc))
        conn.register_rig(rig_id)
        conn.respond(request_id, wire.RegisterReply(rig_id).to_result())
        log.info("rig registered", rig=rig_id, gpus=[g.model for g in caps.gpus], models=list(caps.models))
        self.publish({"type": "rig.registered", "rig_id": rig_id})
        await self._apply(actions)
        self._changed()
        self._poke()

    def _bound_stint(self, rig_id: str) -> Assignment | None:
        lease_id = self.controller.rig(rig_id).lease_id
        return None if lease_id is None else self.controller.get(lease_id).stint(rig_id)

    async def _on_serving(
        self, conn: RigConnection, request_id: RequestId, rig_id: str, msg: wire.LeaseServing
    ) -> None:
        before = self._bound_stint(rig_id)
        now = trio.current_time()
        try:
            actions = self.controller.rig_serving(rig_id, msg.token, now)
        except LeaseError as exc:
            conn.respond_error(request_id, str(exc))
            return
        conn.respond(request_id, True)
        after = self._bound_stint(rig_id)
        if before is not None and before.serving_at is None and after is not None:  # not a repeated ack
            drain = rig_usage(after, now).drain_latency_s
            if drain is not None:
                self.divert_latencies.append(drain)
        self.publish({"type": "rig.serving", "rig_id": rig_id, "lease_id": self.controller.rig(rig_id).lease_id})
        await self._apply(actions)
        self._changed()
        self._poke()

    async def _on_returned(
        self, conn: RigConnection, request_id: RequestId, rig_id: str, link: RigLink, msg: wire.LeaseReturned
    ) -> None:
        now = trio.current_time()
        try:
            actions = self.controller.rig_returned(rig_id, msg.token, now)
        except LeaseError as exc:
            conn.respond_error(request_id, str(exc))
            return
        conn.respond(request_id, True)
        await self._apply(actions)
        self._changed()
        if link.claims:  # the agent says it gave its jobs back: whatever it still holds goes back now
            link.claims.clear()
            try:
                await self.queue.requeue_consumer(rig_id)
            except QueueError as exc:
                log.error("requeue failed", rig=rig_id, error=str(exc))
        self._back_to_mining(rig_id, now)
        self._poke()

    def _serves(self, rig_id: str, conn: RigConnection, token: int) -> Lease | None:
        """The lease the rig serves under `token` on this connection, or None."""
        link = self.links.get(rig_id)
        if link is None or link.conn is not conn:
            return None
        try:
            return self.controller.serving_lease(rig_id, token)
        except LeaseError:
            return None

    async def _take(
        self, conn: RigConnection, request_id: RequestId, rig_id: str, link: RigLink, queue: str, msg: wire.JobClaim
    ) -> list[ClaimedJob] | None:
        """Claim from the queue for the rig; None once the error is answered."""
        try:
            claims = await self.queue.claim(queue, rig_id, msg.visibility_timeout, max_jobs=msg.max_jobs)
        except QueueError as exc:
            self.queue_health.failed(exc)
            conn.respond_error(request_id, f"queue: {exc}")
            return None
        self.queue_health.succeeded()
        if claims and self._serves(rig_id, conn, msg.token) is None:
            # the rig was sent back or went away while the engine worked: the jobs are not its
            for claim in claims:
                try:
                    await self.queue.nack(claim)
                except QueueError:
                    pass  # superseded already: nothing to give back
            return []
        lease_id = self.controller.rig(rig_id).lease_id
        for claim in claims:
            link.claims[claim.job_id] = claim
            if lease_id is not None:
                self._record(JobRecord(claim.job_id, lease_id, rig_id, time.time()))
        return claims

    def _answer_claim(self, conn: RigConnection, request_id: RequestId, claims: Sequence[ClaimedJob]) -> None:
        reply = wire.ClaimReply(tuple(wire.GrantedJob(c.job_id, c.payload, c.deliveries) for c in claims))
        conn.respond(request_id, reply.to_result())

    async def _on_claim(
        self, conn: RigConnection, request_id: RequestId, rig_id: str, link: RigLink, msg: wire.JobClaim
    ) -> None:
        try:
            lease = self.controller.serving_lease(rig_id, msg.token)  # the fence
        except LeaseError as exc:
            conn.respond_error(request_id, f"claim refused: {exc}")
            return
        claims = await self._take(conn, request_id, rig_id, link, lease.spec.queue, msg)
        if claims is None:
            return
        if claims or msg.wait_s <= 0 or self._nursery is None:
            self._answer_claim(conn, request_id, claims)
            return
        self._nursery.start_soon(self._wait_claim, conn, request_id, rig_id, link, lease.spec.queue, msg)

    async def _wait_claim(
        self, conn: RigConnection, request_id: RequestId, rig_id: str, link: RigLink, queue: str, msg: wire.JobClaim
    ) -> None:
        """A claim that found nothing: try again on each enqueue (and every CLAIM_POLL_S) until a
        job comes, `wait_s` runs out, or the rig no longer serves under the claim's token."""
        deadline = trio.current_time() + msg.wait_s
        while True:
            enqueued = self._enqueued
            with trio.move_on_at(min(deadline, trio.current_time() + CLAIM_POLL_S)):
                await enqueued.wait()
            if self.links.get(rig_id) is not link:
                return  # the connection is gone: nobody to answer
            if self._serves(rig_id, conn, msg.token) is None:
                self._answer_claim(conn, request_id, [])  # the lease moved on; the next claim is refused
                return
            claims = await self._take(conn, request_id, rig_id, link, queue, msg)
            if claims is None:
                return
            if claims or trio.current_time() >= deadline:
                self._answer_claim(conn, request_id, claims)
                return

    def _held(self, conn: RigConnection, request_id: RequestId, link: RigLink, job_id: str) -> ClaimedJob | None:
        claim = link.claims.get(job_id)
        if claim is None:
            conn.respond_error(request_id, f"no claimed job {job_id!r} on this rig")
        return claim

    async def _on_heartbeat(
        self, conn: RigConnection, request_id: RequestId, link: RigLink, msg: wire.JobHeartbeat
    ) -> None:
        claim = self._held(conn, request_id, link, msg.job_id)
        if claim is None:
            return
        try:
            link.claims[claim.job_id] = await self.queue.heartbeat(claim)
        except QueueError as exc:
            link.claims.pop(claim.job_id, None)
            conn.respond_error(request_id, f"heartbeat refused: {exc}")
            return
        conn.respond(request_id, True)

    async def _on_result(
        self, conn: RigConnection, request_id: RequestId, rig_id: str, link: RigLink, msg: wire.JobResult
    ) -> None:
        claim = self._held(conn, request_id, link, msg.job_id)
        if claim is None:
            return
        try:
            recorded = await self.queue.ack(claim, msg.result)
        except QueueError as exc:
            conn.respond_error(request_id, f"result refused: {exc}")
            return
        link.claims.pop(claim.job_id, None)
        if recorded and failure_cause(msg.result) is None:
            link.failures = 0  # its backend works
        # a rig holds claims only while bound to the lease it claimed them for
        lease_id = self.controller.rig(rig_id).lease_id
        if recorded and lease_id is not None:
            self.controller.record_job(lease_id, rig_id)
            held = self.job_records.get(claim.job_id)
            claimed_at = held.claimed_at if held is not None else time.time()
            self._record(JobRecord(claim.job_id, lease_id, rig_id, claimed_at, time.time()))
            self._changed()
        conn.respond(request_id, recorded)
        if recorded:
            self.publish({"type": "job.done", "job_id": claim.job_id, "rig_id": rig_id, "lease_id": lease_id})

    async def _on_release(
        self, conn: RigConnection, request_id: RequestId, rig_id: str, link: RigLink, msg: wire.JobRelease
    ) -> None:
        claim = self._held(conn, request_id, link, msg.job_id)
        if claim is None:
            return
        link.claims.pop(claim.job_id, None)
        stint = self._bound_stint(rig_id)
        failed = stint is not None and stint.phase is RigPhase.SERVING  # not a release at the lease's end
        cause = None
        if failed or msg.cause is not None:
            cause = msg.cause or "given back by the rig while serving (its backend failed)"
            self._note_cause(claim.job_id, cause)
        try:
            await self.queue.nack(claim, cause=cause)
        except QueueError as exc:
            conn.respond_error(request_id, f"release refused: {exc}")
            return
        conn.respond(request_id, True)
        if failed:
            link.failures += 1
            if link.failures >= RIG_FAILURE_LIMIT:
                await self._unhealthy(rig_id, link, msg.cause)

    def _record(self, record: JobRecord) -> None:
        """Which lease ran a job when: kept in memory (bounded) and in the lease store."""
        self.job_records[record.job_id] = record  # an update keeps the job's place (claim order)
        while len(self.job_records) > CAUSES_KEPT:
            self.job_records.popitem(last=False)
        if self.persister is not None:
            self.persister.note_job(record)

    async def lease_jobs(self, lease_id: str, limit: int = 1000) -> list[dict[str, Any]]:
        """The jobs the lease's rigs claimed, each with its status and times (wall clock):
        claimed_at (the latest claim by one of the lease's rigs), finished_at (its result)."""
        if self.persister is not None:
            try:
                records = await self.persister.store.lease_jobs(lease_id, limit)
            except LeaseStoreError as exc:
                raise Unavailable(f"the lease store is unavailable: {exc}") from None
            unsaved = [r for r in self.job_records.values() if r.lease_id == lease_id]
            merged = {r.job_id: r for r in records} | {r.job_id: r for r in unsaved}
            records = list(merged.values())[:limit]
        else:
            records = [r for r in self.job_records.values() if r.lease_id == lease_id][:limit]
        out = []
        for record in records:
            view = await self.job(record.job_id)
            view.update(rig=record.rig_id, claimed_at=record.claimed_at, finished_at=record.finished_at)
            view["started_at"] = record.claimed_at  # the lease's rig began it at its claim
            out.append(view)
        return out

    def _note_cause(self, job_id: str, cause: str) -> None:
        self.job_causes[job_id] = cause
        self.job_causes.move_to_end(job_id)
        while len(self.job_causes) > CAUSES_KEPT:
            self.job_causes.popitem(last=False)

    async def _unhealthy(self, rig_id: str, link: RigLink, cause: str | None) -> None:
        """The rig's backend failed RIG_FAILURE_LIMIT jobs in a row: off its lease, replaced."""
        log.warning("rig unhealthy", rig=rig_id, failures=link.failures, cause=cause)
        self.publish({"type": "rig.unhealthy", "rig_id": rig_id, "cause": cause})
        await self._apply(self.controller.rig_failed(rig_id, trio.current_time()))
        self._changed()
        self._poke()


_SPEC_FIELDS = frozenset({"count", "gpu_model", "min_vram_mb", "model", "min_count", "queue", "duration_s", "priority",
                          "owner", "availability", "rigs"})  # fmt: skip


def parse_lease_spec(body: Any) -> LeaseSpec:
    """A LeaseSpec from an integrator's JSON: {count, gpu_model?, min_vram_mb?, model?, min_count?,
    queue, duration_s, priority?, owner?, availability?, rigs?}. Only the fields are checked here; the model's
    constructors check the values. RequestError says what is wrong."""
    if not isinstance(body, dict):
        raise RequestError("a lease request must be a JSON object")
    unknown = sorted(set(body) - _SPEC_FIELDS)
    if unknown:
        raise RequestError(f"unknown field(s): {', '.join(unknown)}")
    for key in ("count", "queue", "duration_s"):
        if key not in body:
            raise RequestError(f"missing field: {key}")
    try:
        selector = Selector(
            count=body["count"],
            gpu_model=body.get("gpu_model"),
            min_vram_mb=body.get("min_vram_mb", 0),
            model=body.get("model"),
            min_count=body.get("min_count"),
            rigs=() if body.get("rigs") is None else body["rigs"],
        )
        return LeaseSpec(
            selector=selector,
            queue=body["queue"],
            duration_s=body["duration_s"],
            priority=body.get("priority", 0),
            owner=body.get("owner"),
            availability=body.get("availability"),
        )
    except LeaseError as exc:
        raise RequestError(str(exc)) from None


def lease_to_dict(
    lease: Lease, usage: Any, sla_usage: SlaUsage | None = None, gpu_usd_per_hour: float | None = None
) -> dict[str, Any]:
    sel = lease.spec.selector
    view = {
        "lease_id": lease.lease_id,
        "state": lease.state.value,
        "queue": lease.spec.queue,
        "selector": {
            "count": sel.count,
            "gpu_model": sel.gpu_model,
            "min_vram_mb": sel.min_vram_mb,
            "model": sel.model,
            "rigs": list(sel.rigs),
        },
        "priority": lease.spec.priority,
        "owner": lease.spec.owner,
        "remaining_s": max(0.0, lease.ends_at - trio.current_time()) if lease.state.is_live else 0.0,
        "duration_s": lease.ends_at - lease.created_at,  # extensions included
        "pending": lease.state is LeaseState.REQUESTED and lease.fill_by is not None,  # remaining_s: the wait
        "rigs": [{"rig_id": a.rig_id, "phase": a.phase.value, "jobs": a.jobs} for a in lease.rigs],
        "note": lease.note,
        "usage": {
            "gpu_seconds": usage.gpu_seconds,
            "jobs_done": usage.jobs_done,
            "hashes_foregone": usage.hashes_foregone,
            "drain_latencies_s": list(usage.drain_latencies_s),
            "return_latencies_s": list(usage.return_latencies_s),
            "rigs_left_early": usage.rigs_left_early,
        },
    }
    if sla_usage is not None:
        view["sla"] = sla_to_dict(sla_usage, gpu_usd_per_hour)
    return view


def sla_to_dict(s: SlaUsage, gpu_usd_per_hour: float | None) -> dict[str, Any]:
    return {
        "target": s.target,
        "availability": s.availability,
        "owed_rig_s": s.owed_rig_s,
        "served_rig_s": s.served_rig_s,
        "lost_rig_s": s.lost_rig_s,
        "shortfall_rig_s": s.shortfall_rig_s,
        "restarts": s.restarts,
        "restart_credit_s": s.restart_credit_s,
        "credited_rig_s": s.credited_rig_s,
        "credited_gpu_s": s.credited_gpu_s,
        "credit_usd": None if gpu_usd_per_hour is None else s.credit_usd(gpu_usd_per_hour),
    }


def failure_cause(result: Any) -> str | None:
    """The cause of a failed job from its recorded result (an OpenAI-shaped ``{"error": ...}``,
    which a successful embeddings or chat answer never has), or None for a job that succeeded."""
    if not isinstance(result, dict) or "error" not in result:
        return None
    error = result["error"]
    if isinstance(error, dict):
        return str(error.get("message") or error.get("type") or error)
    return str(error)


def _percentiles(values: Sequence[float]) -> dict[str, float] | None:
    if not values:
        return None
    ordered = list(values)
    return {"n": len(ordered), "p50": percentile(ordered, 0.5), "p99": percentile(ordered, 0.99), "max": max(ordered)}
