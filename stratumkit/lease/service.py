"""The trio side of leases: the pure LeaseController wired to rigs' stratum connections and a queue.

The stratumkit lease extension rides on the rig's own stratum connection. Plain miners never see
it: the pool sends lease messages only to connections that called `stratumkit.rig.register`.

Rig -> pool (requests):
    stratumkit.rig.register   [{rig_id, gpus: [{model, vram_mb}], models, hashrate, power_w,
                                resume_token?}]                         -> {"rig_id"}
    stratumkit.lease.serving  [token]    the agent stopped mining and its backend is ready
    stratumkit.lease.returned [token]    the agent released its jobs and is ready to mine
    stratumkit.job.claim      [token, max_jobs, visibility_timeout, wait_s]
                                         -> [{"job_id", "payload", "deliveries"}]
    stratumkit.job.heartbeat  [job_id]   keep a claimed job invisible to others
    stratumkit.job.result     [job_id, result]  -> true if this is the job's recorded result
    stratumkit.job.release    [job_id]   give a claimed job back unfinished
Pool -> rig (notifications):
    stratumkit.lease.divert   [{lease_id, token, queue, ends_at (unix time)}]
    stratumkit.lease.return   [{lease_id, token}]

Rigs claim jobs through the pool (the pool is the queue's consumer on the rig's behalf, with the
rig id as consumer name), so a rig needs nothing but its pool connection, and a rig that
disconnects has its claims requeued at once. The controller runs on trio's clock; `ends_at` is
translated to unix time for the agent.

Switch latencies are measured here: `divert_latency` (divert sent -> rig says serving) and
`return_latency` (return sent -> first accepted share after it), per rig.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import structlog
import trio

from stratumkit.percentile import percentile
from stratumkit.protocol.errors import ErrorCode
from stratumkit.protocol.events import ExtensionRequest
from stratumkit.queue.engine import ClaimedJob, QueueEngine, QueueError, check_name
from stratumkit.server.pool import Pool
from stratumkit.server.session import Session

from .actions import Action, DivertRig, LeaseExtended, LeaseStateChanged, RequeueInFlight, ReturnRig, RigReleased
from .controller import LeaseController
from .errors import LeaseError
from .model import GPU, Lease, LeaseSpec, LeaseState, RigCapabilities, Selector

log = structlog.get_logger("stratumkit.lease")

REGISTER = "stratumkit.rig.register"
SERVING = "stratumkit.lease.serving"
RETURNED = "stratumkit.lease.returned"
CLAIM = "stratumkit.job.claim"
HEARTBEAT = "stratumkit.job.heartbeat"
RESULT = "stratumkit.job.result"
RELEASE = "stratumkit.job.release"
DIVERT = "stratumkit.lease.divert"
RETURN = "stratumkit.lease.return"

#: After a lease, a rig's first share difficulty is set so that a share is expected this soon
#: (from the hashrate it declared), so mining visibly resumes at once; vardiff takes it from there.
FIRST_SHARE_AFTER_RETURN_S = 0.1


#: The longest a lease may run (a year): bounds durations and extensions to sane, finite times.
MAX_LEASE_S = 365 * 86400.0


class RequestError(ValueError):
    """An integrator's request is invalid (the HTTP API answers 400 with the message)."""


@dataclass
class RigLink:
    """What the service knows of one registered rig's connection."""

    rig_id: str
    session: Session
    claims: dict[str, ClaimedJob] = field(default_factory=dict)
    lease_id: str | None = None
    diverted_at: float | None = None
    return_sent_at: float | None = None


class LeaseService:
    def __init__(
        self, pool: Pool, queue: QueueEngine, *, drain_timeout_s: float = 10.0, return_timeout_s: float = 10.0
    ) -> None:
        self.pool = pool
        self.queue = queue
        self.controller = LeaseController(drain_timeout_s=drain_timeout_s, return_timeout_s=return_timeout_s)
        self.links: dict[str, RigLink] = {}
        self.divert_latencies: list[float] = []
        self.return_latencies: list[float] = []
        self._subscribers: set[trio.MemorySendChannel[dict[str, Any]]] = set()
        self._wake = trio.Event()
        for method, handler in (
            (REGISTER, self._on_register),
            (SERVING, self._on_serving),
            (RETURNED, self._on_returned),
            (CLAIM, self._on_claim),
            (HEARTBEAT, self._on_heartbeat),
            (RESULT, self._on_result),
            (RELEASE, self._on_release),
        ):
            pool.register_extension(method, handler)
        pool.session_closed_hooks.append(self._on_session_closed)
        pool.share_listeners.append(self._on_share)

    # ------------------------------------------------------------------ running

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Wake at the controller's deadlines (lease ends, drain and return timeouts)."""
        task_status.started()
        while True:
            deadline = self.controller.next_deadline()
            with trio.move_on_at(deadline if deadline is not None else trio.current_time() + 3600):
                await self._wake.wait()
            self._wake = trio.Event()
            await self._apply(self.controller.tick(trio.current_time()))

    def _poke(self) -> None:
        self._wake.set()

    # ------------------------------------------------------------------ integrator API

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
                    "accepted_shares": link.session.accepted if link else 0,
                    "jobs_in_flight": len(link.claims) if link else 0,
                }
            )
        return out

    async def create_lease(self, body: dict[str, Any]) -> dict[str, Any]:
        spec = parse_lease_spec(body)
        try:
            check_name("queue", spec.queue)  # the engine's own rule: its rigs must be able to claim
        except QueueError as exc:
            raise RequestError(str(exc)) from None
        now = trio.current_time()
        try:
            lease, actions = self.controller.create(spec, now)
        except LeaseError as exc:
            raise RequestError(str(exc)) from None
        await self._apply(actions)
        self._poke()
        return self.lease_view(lease.lease_id)

    async def extend_lease(self, lease_id: str, extra_s: Any) -> dict[str, Any]:
        if isinstance(extra_s, bool) or not isinstance(extra_s, int | float) or not 0 < extra_s <= MAX_LEASE_S:
            raise RequestError(f"seconds must be a positive number of at most {MAX_LEASE_S:g}")
        if self.controller.get(lease_id).ends_at - trio.current_time() + extra_s > MAX_LEASE_S:
            raise RequestError(f"a lease may not run longer than {MAX_LEASE_S:g} s from now")
        try:
            actions = self.controller.extend(lease_id, float(extra_s), trio.current_time())
        except LeaseError as exc:
            raise RequestError(str(exc)) from None
        await self._apply(actions)
        self._poke()
        return self.lease_view(lease_id)

    async def cancel_lease(self, lease_id: str) -> dict[str, Any]:
        try:
            actions = self.controller.cancel(lease_id, trio.current_time())
        except LeaseError as exc:
            raise RequestError(str(exc)) from None
        await self._apply(actions)
        self._poke()
        return self.lease_view(lease_id)

    def list_leases(self, states: list[str] | None = None) -> list[dict[str, Any]]:
        wanted = None
        if states:
            try:
                wanted = [LeaseState(s) for s in states]
            except ValueError:
                raise RequestError(f"unknown state in {states}; known: {[s.value for s in LeaseState]}") from None
        return [self.lease_view(lease.lease_id) for lease in self.controller.leases(wanted)]

    def lease_view(self, lease_id: str) -> dict[str, Any]:
        try:
            lease = self.controller.get(lease_id)
        except LeaseError as exc:
            raise RequestError(str(exc)) from None
        return lease_to_dict(lease, self.controller.usage(lease_id, trio.current_time()))

    async def enqueue(self, queue: str, payload: Any, job_id: str | None = None) -> str:
        if not isinstance(payload, dict):
            raise RequestError("a job payload must be a JSON object")
        try:
            job = await self.queue.enqueue(queue, payload, job_id=job_id)
        except QueueError as exc:
            raise RequestError(str(exc)) from None
        self.publish({"type": "job.enqueued", "job_id": job, "queue": queue})
        return job

    async def job(self, job_id: str) -> dict[str, Any]:
        result = await self.queue.result(job_id)
        if result is None:
            letter = await self.queue.dead_letter(job_id)
            if letter is not None:  # it will never have a result: say so instead of "pending"
                return {"job_id": job_id, "status": "dead", "queue": letter.job.queue, "reason": letter.reason,
                        "deliveries": letter.job.deliveries, "dead_at": letter.dead_at}  # fmt: skip
            return {"job_id": job_id, "status": "pending"}
        return {
            "job_id": job_id,
            "status": "done",
            "queue": result.queue,
            "result": result.payload,
            "rig": result.consumer,
            "deliveries": result.deliveries,
            "completed_at": result.completed_at,
        }

    @asynccontextmanager
    async def events(self, buffer: int = 1000) -> AsyncIterator[trio.MemoryReceiveChannel[dict[str, Any]]]:
        """Subscribe to lease and job events; a subscriber that falls `buffer` behind is dropped."""
        send, receive = trio.open_memory_channel[dict[str, Any]](buffer)
        self._subscribers.add(send)
        try:
            yield receive
        finally:
            self._subscribers.discard(send)
            send.close()

    def publish(self, event: dict[str, Any]) -> None:
        event.setdefault("time", time.time())
        for send in list(self._subscribers):
            try:
                send.send_nowait(event)
            except (trio.WouldBlock, trio.ClosedResourceError, trio.BrokenResourceError):
                self._subscribers.discard(send)
                send.close()

    def stats(self) -> dict[str, Any]:
        return {
            "rigs": len(self.controller.rigs()),
            "leases_live": sum(1 for lease in self.controller.leases() if lease.state.is_live),
            "divert_latency_s": _percentiles(self.divert_latencies),
            "return_latency_s": _percentiles(self.return_latencies),
        }

    # ------------------------------------------------------------------ actions

    async def _apply(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, DivertRig):
                link = self.links.get(action.rig_id)
                if link is None:
                    continue
                link.lease_id = action.lease_id
                link.diverted_at = trio.current_time()
                link.return_sent_at = None
                link.session.leased = True
                wall_end = time.time() + (action.ends_at - trio.current_time())
                link.session.conn.send_notification(
                    DIVERT,
                    [
                        {
                            "lease_id": action.lease_id,
                            "token": action.token,
                            "queue": action.queue,
                            "ends_at": wall_end,
                        }
                    ],
                )
                link.session.flush()
                self.publish({"type": "rig.diverted", "rig_id": action.rig_id, "lease_id": action.lease_id})
            elif isinstance(action, ReturnRig):
                link = self.links.get(action.rig_id)
                if link is None:
                    continue
                link.return_sent_at = trio.current_time()
                link.session.conn.send_notification(RETURN, [{"lease_id": action.lease_id, "token": action.token}])
                link.session.flush()
                self.publish({"type": "rig.returning", "rig_id": action.rig_id, "lease_id": action.lease_id})
            elif isinstance(action, RequeueInFlight):
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
                log.info(
                    "lease state", lease=action.lease_id, old=action.old and action.old.value, new=action.new.value
                )
                self.publish(
                    {
                        "type": "lease.state",
                        "lease_id": action.lease_id,
                        "old": action.old and action.old.value,
                        "new": action.new.value,
                    }
                )
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

    # ------------------------------------------------------------------ rig calls

    def _link(self, session: Session, event: ExtensionRequest) -> RigLink | None:
        link = self.links.get(session.rig_id or "")
        if link is None or link.session is not session:
            session.conn.respond_error(event.id, ErrorCode.OTHER, "not a registered rig: call stratumkit.rig.register")
            return None
        return link

    async def _on_register(self, session: Session, event: ExtensionRequest) -> None:
        try:
            info = event.params[0] if isinstance(event.params, list) and event.params else None
            if not isinstance(info, dict):
                raise ValueError("params must be [{rig_id, gpus, models, hashrate, power_w}]")
            rig_id = info.get("rig_id") or session.worker
            if not isinstance(rig_id, str) or not rig_id or len(rig_id) > 128:
                raise ValueError("rig_id must be a non-empty string of at most 128 characters")
            if session.worker is None:
                raise ValueError("authorize a worker before registering the rig")
            caps = RigCapabilities(
                gpus=tuple(GPU(str(g["model"]), int(g["vram_mb"])) for g in info.get("gpus", [])),
                models=tuple(str(m) for m in info.get("models", [])),
                hashrate=float(info.get("hashrate", 0.0)),
                power_w=float(info.get("power_w", 0.0)),
            )
            resume = info.get("resume_token")
            actions = self.controller.register_rig(
                rig_id,
                session.worker,
                caps,
                trio.current_time(),
                resume_token=resume if isinstance(resume, int) else None,
            )
        except (LeaseError, ValueError, TypeError, KeyError) as exc:
            session.conn.respond_error(event.id, ErrorCode.OTHER, f"rig registration refused: {exc}")
            return
        old = self.links.get(rig_id)
        if old is not None and old.session is not session:
            old.session.drop("the same rig registered on another connection")
        self.links[rig_id] = RigLink(rig_id, session)
        session.rig_id = rig_id
        # a rig's job results (embeddings, completions) are far longer than any mining message
        session.conn.max_line_length = self.pool.config.rig_max_line_length
        session.conn.respond(event.id, {"rig_id": rig_id})
        log.info("rig registered", rig=rig_id, gpus=[g.model for g in caps.gpus], models=list(caps.models))
        self.publish({"type": "rig.registered", "rig_id": rig_id})
        await self._apply(actions)
        self._poke()

    def _token(self, event: ExtensionRequest) -> int | None:
        params = event.params
        if isinstance(params, list) and params and isinstance(params[0], int) and not isinstance(params[0], bool):
            return params[0]
        return None

    def _acknowledge(
        self, session: Session, event: ExtensionRequest, step: Callable[[str, int, float], list[Action]]
    ) -> tuple[RigLink, list[Action]] | None:
        """A rig's [token] acknowledgement, checked by the controller; answers the rig either way."""
        link = self._link(session, event)
        if link is None:
            return None
        token = self._token(event)
        if token is None:
            session.conn.respond_error(event.id, ErrorCode.OTHER, "params must be [token]")
            return None
        try:
            actions = step(link.rig_id, token, trio.current_time())
        except LeaseError as exc:
            session.conn.respond_error(event.id, ErrorCode.OTHER, str(exc))
            return None
        session.conn.respond(event.id, True)
        return link, actions

    async def _on_serving(self, session: Session, event: ExtensionRequest) -> None:
        acked = self._acknowledge(session, event, self.controller.rig_serving)
        if acked is None:
            return
        link, actions = acked
        if link.diverted_at is not None:
            self.divert_latencies.append(trio.current_time() - link.diverted_at)
        self.publish({"type": "rig.serving", "rig_id": link.rig_id, "lease_id": link.lease_id})
        await self._apply(actions)
        self._poke()

    async def _on_returned(self, session: Session, event: ExtensionRequest) -> None:
        acked = self._acknowledge(session, event, self.controller.rig_returned)
        if acked is None:
            return
        link, actions = acked
        link.lease_id = None
        link.claims.clear()
        caps = self.controller.rig(link.rig_id).caps
        if caps.hashrate > 0:
            quick = caps.hashrate * FIRST_SHARE_AFTER_RETURN_S / 2**32
            session.vardiff.reset(max(quick, session.min_difficulty), trio.current_time())
        session.start_work()  # set_difficulty + notify(clean_jobs=true)
        self.publish({"type": "rig.mining", "rig_id": link.rig_id})
        await self._apply(actions)
        self._poke()

    def _on_share(self, session: Session) -> None:
        """First accepted share after a return closes the return-latency measurement."""
        link = self.links.get(session.rig_id or "")
        if link is not None and link.return_sent_at is not None and link.lease_id is None:
            self.return_latencies.append(trio.current_time() - link.return_sent_at)
            link.return_sent_at = None

    async def _on_claim(self, session: Session, event: ExtensionRequest) -> None:
        link = self._link(session, event)
        if link is None:
            return
        params = event.params if isinstance(event.params, list) else []
        token = self._token(event)
        try:
            max_jobs = int(params[1]) if len(params) > 1 else 1
            visibility = float(params[2]) if len(params) > 2 else 30.0
            wait_s = min(float(params[3]), 5.0) if len(params) > 3 else 0.0
            if not 1 <= max_jobs <= 64:
                raise ValueError("max_jobs must be 1..64")
        except (TypeError, ValueError) as exc:
            session.conn.respond_error(event.id, ErrorCode.OTHER, f"bad claim: {exc}")
            return
        rig = self.controller.rig(link.rig_id)
        if token is None or rig.token != token or rig.lease_id is None:
            session.conn.respond_error(event.id, ErrorCode.OTHER, "stale lease token: not serving a lease")
            return
        lease = self.controller.get(rig.lease_id)
        deadline = trio.current_time() + wait_s
        while True:
            try:
                claims = await self.queue.claim(lease.spec.queue, link.rig_id, visibility, max_jobs=max_jobs)
            except QueueError as exc:
                session.conn.respond_error(event.id, ErrorCode.OTHER, f"queue: {exc}")
                return
            if claims or trio.current_time() >= deadline or self.controller.rig(link.rig_id).token != token:
                break
            await trio.sleep(0.05)
        for claim in claims:
            link.claims[claim.job_id] = claim
        session.conn.respond(
            event.id, [{"job_id": c.job_id, "payload": c.payload, "deliveries": c.deliveries} for c in claims]
        )

    def _claim_of(self, session: Session, event: ExtensionRequest) -> tuple[RigLink, ClaimedJob] | None:
        link = self._link(session, event)
        if link is None:
            return None
        params = event.params if isinstance(event.params, list) else []
        job_id = params[0] if params and isinstance(params[0], str) else None
        claim = link.claims.get(job_id or "")
        if claim is None:
            session.conn.respond_error(event.id, ErrorCode.OTHER, f"no claimed job {job_id!r} on this rig")
            return None
        return link, claim

    async def _on_heartbeat(self, session: Session, event: ExtensionRequest) -> None:
        found = self._claim_of(session, event)
        if found is None:
            return
        link, claim = found
        try:
            link.claims[claim.job_id] = await self.queue.heartbeat(claim)
        except QueueError as exc:
            link.claims.pop(claim.job_id, None)
            session.conn.respond_error(event.id, ErrorCode.OTHER, f"heartbeat refused: {exc}")
            return
        session.conn.respond(event.id, True)

    async def _on_result(self, session: Session, event: ExtensionRequest) -> None:
        found = self._claim_of(session, event)
        if found is None:
            return
        link, claim = found
        params = event.params
        result = params[1] if isinstance(params, list) and len(params) > 1 else None
        if not isinstance(result, dict):
            session.conn.respond_error(event.id, ErrorCode.OTHER, "params must be [job_id, result object]")
            return
        try:
            recorded = await self.queue.ack(claim, result)
        except QueueError as exc:
            session.conn.respond_error(event.id, ErrorCode.OTHER, f"result refused: {exc}")
            return
        link.claims.pop(claim.job_id, None)
        if recorded and link.lease_id is not None:
            self.controller.record_job(link.lease_id, link.rig_id)
        session.conn.respond(event.id, recorded)
        if recorded:
            self.publish({"type": "job.done", "job_id": claim.job_id, "rig_id": link.rig_id, "lease_id": link.lease_id})

    async def _on_release(self, session: Session, event: ExtensionRequest) -> None:
        found = self._claim_of(session, event)
        if found is None:
            return
        link, claim = found
        link.claims.pop(claim.job_id, None)
        try:
            await self.queue.nack(claim)
        except QueueError as exc:
            session.conn.respond_error(event.id, ErrorCode.OTHER, f"release refused: {exc}")
            return
        session.conn.respond(event.id, True)

    async def _on_session_closed(self, session: Session) -> None:
        link = self.links.get(session.rig_id or "")
        if link is None or link.session is not session:
            return
        del self.links[link.rig_id]
        try:
            actions = self.controller.rig_disconnected(link.rig_id, trio.current_time())
        except LeaseError:
            return
        self.publish({"type": "rig.disconnected", "rig_id": link.rig_id})
        await self._apply(actions)
        if link.claims:  # jobs it held go back at once, lease or not
            await self.queue.requeue_consumer(link.rig_id)
        self._poke()


def parse_lease_spec(body: Any) -> LeaseSpec:
    """A LeaseSpec from an integrator's JSON: {count, gpu_model?, min_vram_mb?, model?, min_count?,
    queue, duration_s, priority?, owner?}; RequestError says what is wrong."""
    if not isinstance(body, dict):
        raise RequestError("a lease request must be a JSON object")
    known = {"count", "gpu_model", "min_vram_mb", "model", "min_count", "queue", "duration_s", "priority", "owner"}
    unknown = sorted(set(body) - known)
    if unknown:
        raise RequestError(f"unknown field(s): {', '.join(unknown)}")
    for key in ("count", "queue", "duration_s"):
        if key not in body:
            raise RequestError(f"missing field: {key}")
    duration = body["duration_s"]
    if isinstance(duration, int | float) and not isinstance(duration, bool) and not duration <= MAX_LEASE_S:
        raise RequestError(f"duration_s must be at most {MAX_LEASE_S:g} s")
    try:
        selector = Selector(
            count=body["count"],
            gpu_model=body.get("gpu_model"),
            min_vram_mb=body.get("min_vram_mb", 0),
            model=body.get("model"),
            min_count=body.get("min_count"),
        )
        return LeaseSpec(
            selector=selector,
            queue=body["queue"],
            duration_s=body["duration_s"],
            priority=body.get("priority", 0),
            owner=body.get("owner"),
        )
    except (LeaseError, ValueError, TypeError) as exc:
        raise RequestError(str(exc)) from None


def lease_to_dict(lease: Lease, usage: Any) -> dict[str, Any]:
    sel = lease.spec.selector
    return {
        "lease_id": lease.lease_id,
        "state": lease.state.value,
        "queue": lease.spec.queue,
        "selector": {
            "count": sel.count,
            "gpu_model": sel.gpu_model,
            "min_vram_mb": sel.min_vram_mb,
            "model": sel.model,
        },
        "priority": lease.spec.priority,
        "owner": lease.spec.owner,
        "remaining_s": max(0.0, lease.ends_at - trio.current_time()) if lease.state.is_live else 0.0,
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


def _percentiles(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {"n": len(values), "p50": percentile(values, 0.5), "p99": percentile(values, 0.99), "max": max(values)}
