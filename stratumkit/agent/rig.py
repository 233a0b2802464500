"""The rig agent (`stratumkit agent`): mines for the pool, and serves inference while leased.

One stratum connection carries both jobs. The agent opts into the stratumkit lease extension by
registering its capabilities (`stratumkit.rig.register`); plain miners never do, so they never
see lease messages. On `stratumkit.lease.divert` it pauses mining, wakes its inference backend,
says `stratumkit.lease.serving`, and consumes the lease's queue through the pool (claim, run,
result). On `stratumkit.lease.return` it stops claiming, gives back any job it has not finished,
says `stratumkit.lease.returned`, and resumes mining on the fresh work the pool then sends.
On `stratumkit.rig.curtail` (power is shed) it stops hashing until told to hash again.

A job whose inference fails with a retryable error is released for another rig; a non-retryable
error (a bad request) is recorded as that job's result, so it is answered exactly once.

Every message is built and read through :mod:`stratumkit.protocol.rig`. The agent remembers the
token of the last divert or return it saw while it holds a stint, and quotes it as ``resume_token``
when it registers again on a new connection: a pool restored from a snapshot then lets it resume
that stint (and sends the command again) instead of ending it. One agent serves many connections
(``run`` once per connection, ``session`` for keep_connected), so the token outlives a dropped
connection.

Rules for failures: a lost pool ends only the connection (keep_connected plans the next one); a
backend that cannot be reached is retried with backoff and logged each time ("inference backend
unavailable"), and the agent says ``serving`` only once it answers; a job the backend failed with
a retryable error is released at once (not left to time out) with the error as its cause, and the
backend is waited for again, up to ``failed_backend_wait`` s (the ready timeout of a server the
agent runs and restarts), before the next claim: a backend that stays down fails the next jobs
too, each released with its cause, so the pool (whose job views carry the cause) marks the rig
unhealthy after a few in a row and replaces it. A rig whose connection was lost during a lease is
a miner again (its external miner resumed, its inference server stopped) if the new connection
brings no divert within ``RESUME_GRACE_S``.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
import trio

from stratumkit.inference.backend import InferenceBackend, run_job
from stratumkit.inference.errors import InferenceError
from stratumkit.protocol import rig as wire
from stratumkit.protocol.events import ErrorReply, Event, ExtensionNotification, Reconnect, Response

from .backoff import Backoff
from .cpu_miner import CpuMiner
from .external import ExternalMiner
from .inference_server import InferenceServer
from .pools import PoolEndpoint
from .stratum import StratumClient, StratumClientError

log = structlog.get_logger("stratumkit.agent")

#: The longest line the agent accepts from its pool (inference job payloads ride on stratum).
RIG_MAX_LINE_LENGTH = 16 * 1024 * 1024
#: How long a claim asks the pool to wait for a job before answering with none.
CLAIM_WAIT_S = 0.5
#: After a reconnect, how long a rig whose miner was stopped for a lease waits for the pool to
#: divert it again (it resumes a stint it knows of at once) before it mines again.
RESUME_GRACE_S = 2.0
#: Seconds after a mode change before the GPUs' draw is read for that mode (clocks settle).
POWER_SETTLE_S = 3.0


@dataclass
class AgentConfig:
    host: str
    port: int
    worker: str
    password: str = "x"
    rig_id: str | None = None
    gpus: list[tuple[str, int]] = field(default_factory=list)  # (model, VRAM MB)
    power_w: float = 0.0
    duty: float = 1.0  # fraction of time the CPU miner hashes
    chunk: int = 1 << 17  # nonces per CPU-miner scan: a pause or new job waits for the scan and its duty pause
    claim_batch: int = 1
    visibility_timeout: float = 30.0
    rig_secret: str | None = None  # presented at registration to a pool that authenticates rigs
    ssl_context: ssl.SSLContext | None = None  # for stratum+ssl:// endpoints
    backend_retry: Backoff = field(default_factory=lambda: Backoff(0.5, 10.0))
    #: after a job failed, how long the backend is waited for before the next claim (the next
    #: job, failing too, tells the pool again: enough in a row and it replaces the rig); a server
    #: the agent runs itself is waited for up to its ready timeout instead
    failed_backend_wait: float = 2.0


class RigAgent:
    def __init__(
        self,
        config: AgentConfig,
        backend: InferenceBackend | None,
        external: ExternalMiner | None = None,
        inference_server: InferenceServer | None = None,
    ) -> None:
        """``external``: mine with that miner process through the local endpoint (its ``serve``
        must run beside the agent) instead of the built-in CpuMiner. ``inference_server``: the
        process behind ``backend``, started on divert (its ``run`` must run beside the agent)."""
        self.config = config
        self.backend = backend
        self.external = external
        self.inference_server = inference_server
        #: reads the GPUs' draw (nvidia-smi), sampled once per mode change; set where the tool exists
        self.power_probe: Callable[[], Awaitable[float | None]] | None = None
        self.power_by_mode: dict[str, float] = {}
        self.rig_id = config.rig_id or f"{socket.gethostname()}-{config.worker}"
        self.client: StratumClient | None = None
        self.miner: CpuMiner | None = None  # the built-in miner of the current connection
        self.hashing: CpuMiner | ExternalMiner | None = None  # whichever mines: paused on divert
        self.mode = "connecting"
        self.lease_id: str | None = None
        #: the token of the divert or return the agent is acting on, kept across connections
        self.resume_token: int | None = None
        self.jobs_done = 0
        self._commands_send, self._commands = trio.open_memory_channel[wire.RigNotification](16)
        self._serving: trio.CancelScope | None = None
        self._in_flight: set[str] = set()
        self._hashrate: float | None = None  # measured once: a reconnect does not pay for it again
        self.backend_ok = backend is None  # False until the backend has answered once

    def _on_event(self, event: Event) -> None:
        if isinstance(event, ExtensionNotification) and event.method == wire.RigCurtail.METHOD:
            try:
                curtail = wire.RigCurtail.from_params(event.params)
            except wire.RigMessageError as exc:
                log.warning("malformed curtail command ignored", error=str(exc))
                return
            if self.hashing is not None:
                if curtail.curtailed:
                    self.hashing.pause()
                    self.mode = "curtailed"
                else:
                    self.mode = "mining"
                    self.hashing.resume()
                log.info("curtailed" if curtail.curtailed else "curtailment over: mining")
        elif isinstance(event, ExtensionNotification) and event.method in wire.NOTIFICATIONS:
            try:
                command = wire.NOTIFICATIONS[event.method].from_params(event.params)
            except wire.RigMessageError as exc:
                log.warning("malformed lease command ignored", error=str(exc))
                return
            self._commands_send.send_nowait(command)
        elif self.hashing is not None:
            self.hashing.on_event(event)

    async def _call(self, method: str, params: Any) -> Any:
        if self.client is None:
            raise StratumClientError(f"{method}: not connected")
        reply = await self.client.call(self.client.conn.send_request, method, params)
        if isinstance(reply, ErrorReply):
            raise StratumClientError(f"{method}: {reply.message}")
        assert isinstance(reply, Response)
        return reply.result

    async def session(self, endpoint: PoolEndpoint, task_status: trio.TaskStatus[None]) -> Reconnect | None:
        """One connection, for keep_connected: started once registered; the pool's client.reconnect
        (if that is how it ended) as the value."""
        async with trio.open_nursery() as nursery:
            await nursery.start(self.run, endpoint)
            task_status.started()
        return self.client.reconnect if self.client is not None else None

    async def wait_backend(self) -> None:
        """Until the backend answers (wake), retrying with backoff and saying so each time."""
        if self.backend is None:
            return
        retry = self.config.backend_retry
        while True:
            try:
                if self.inference_server is not None:
                    await self.inference_server.ready(self.backend)
                else:
                    await self.backend.wake()
            except (InferenceError, OSError) as exc:
                self.backend_ok = False
                delay = retry.next_delay()
                log.warning("inference backend unavailable", error=str(exc), retry_in=delay)
                await trio.sleep(delay)
                continue
            retry.reset()
            if not self.backend_ok:
                log.info("inference backend ready", models=self.backend.models())
            self.backend_ok = True
            return

    async def run(
        self, endpoint: PoolEndpoint | None = None, *, task_status: trio.TaskStatus[RigAgent] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Serve one pool connection until it closes (call again to reconnect)."""
        cfg = self.config
        endpoint = endpoint or PoolEndpoint(cfg.host, cfg.port)
        was_leased = self.lease_id is not None  # the connection was lost during a lease
        self.mode = "connecting"
        self.lease_id = None
        self._serving = None
        self._in_flight = set()  # the pool requeues a dropped connection's jobs itself
        self._commands_send, self._commands = trio.open_memory_channel[wire.RigNotification](16)
        async with trio.open_nursery() as nursery:
            self.client = await StratumClient.open(
                nursery,
                endpoint,
                cfg.ssl_context,
                on_event=self._on_event,
                user_agent="stratumkit-agent/0.1",
                max_line_length=RIG_MAX_LINE_LENGTH,  # claimed jobs can carry long inputs
            )
            if self.external is not None:
                self.hashing = self.external
                hashrate = self.external.measure_hashrate()  # what its shares showed so far
            else:
                self.hashing = self.miner = cpu = CpuMiner(self.client, cfg.worker, duty=cfg.duty, chunk=cfg.chunk)
                if self._hashrate is None:
                    self._hashrate = await trio.to_thread.run_sync(cpu.measure_hashrate)
                hashrate = self._hashrate
            sub = await self.client.handshake(cfg.worker, cfg.password)
            self.hashing.attach(sub.extranonce1, sub.extranonce2_size)
            models = self.backend.models() if self.backend is not None else []
            if not models and self.inference_server is not None and self.inference_server.settings.model:
                models = [self.inference_server.settings.model]  # what the server it starts will serve
            if not cfg.gpus:
                log.warning("no --gpu declared: mining only, this rig cannot be leased")
            else:
                resume, self.resume_token = self.resume_token, None  # set again if the pool resends
                try:
                    register = wire.RigRegister(
                        gpus=tuple(wire.GpuInfo(m, v) for m, v in cfg.gpus),
                        hashrate=hashrate,
                        rig_id=self.rig_id,
                        models=tuple(models),
                        power_w=cfg.power_w,
                        resume_token=resume,
                        secret=cfg.rig_secret,
                    )
                    reply = wire.RegisterReply.from_result(await self._call(register.METHOD, register.to_params()))
                    log.info("rig registered", rig=reply.rig_id, hashrate=round(hashrate), models=models, resume=resume)
                except (StratumClientError, wire.RigMessageError) as exc:  # the pool said no: still a miner
                    log.warning("rig registration refused: mining only", error=str(exc))
            self.mode = "mining"
            if isinstance(self.hashing, ExternalMiner):
                nursery.start_soon(self.hashing.run, self.client)
                was_leased = was_leased or self.hashing.paused
            else:
                nursery.start_soon(self.hashing.run)
            if was_leased:
                nursery.start_soon(self._mine_unless_diverted)
            nursery.start_soon(self._command_loop)
            task_status.started(self)
            await self.client.closed.wait()
            nursery.cancel_scope.cancel()

    async def _mine_unless_diverted(self) -> None:
        """The last connection was lost during a lease: unless this one is diverted again soon,
        the rig is a miner (its external miner resumed, its inference server stopped)."""
        await trio.sleep(RESUME_GRACE_S)
        if self.lease_id is None and self.hashing is not None:
            log.info("no lease after the reconnect: mining again")
            if self.inference_server is not None:
                self.inference_server.done()
            self.hashing.resume()
            await self._power_after("mining")

    async def _power_after(self, mode: str) -> None:
        await trio.sleep(POWER_SETTLE_S)
        if self.power_probe is None or self.mode != mode:
            return
        watts = await self.power_probe()
        if watts is not None and self.mode == mode:
            self.power_by_mode[mode] = watts
            log.info("power", mode=mode, watts=watts)

    async def _command_loop(self) -> None:
        assert self.hashing is not None
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._power_after, "mining")
            async for command in self._commands:
                self.resume_token = command.token
                if isinstance(command, wire.LeaseDivert):
                    self.hashing.pause()
                    self.lease_id = command.lease_id
                    if self._serving is not None:
                        self._serving.cancel()
                    scope = trio.CancelScope()
                    self._serving = scope
                    nursery.start_soon(self._divert, command, scope)
                else:
                    if self._serving is not None:
                        self._serving.cancel()
                        self._serving = None
                    await self._release_unfinished()
                    returned = wire.LeaseReturned(command.token)
                    await self._call(returned.METHOD, returned.to_params())
                    self.resume_token = None  # a returned rig holds no stint
                    self.mode = "mining"
                    self.lease_id = None
                    if self.inference_server is not None:
                        self.inference_server.done()
                    self.hashing.resume()
                    log.info("back to mining")
                    nursery.start_soon(self._power_after, "mining")

    async def _divert(self, command: wire.LeaseDivert, scope: trio.CancelScope) -> None:
        """Wake the backend, say serving, serve: all of it ends when a return cancels ``scope``."""
        with scope:
            await self.wait_backend()  # serving is said only once the backend answers
            serving = wire.LeaseServing(command.token)
            await self._call(serving.METHOD, serving.to_params())
            self.mode = "serving"
            log.info("serving lease", lease=self.lease_id, queue=command.queue)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._power_after, "serving")
                await self._serve(command.token)

    def _failed_backend_wait(self) -> float:
        """How long a failed job's backend is waited for before the next claim: a server the
        agent runs (and restarts) gets its ready timeout, any other backend failed_backend_wait."""
        if self.inference_server is not None:
            return max(self.config.failed_backend_wait, self.inference_server.settings.ready_timeout)
        return self.config.failed_backend_wait

    async def _release_unfinished(self) -> None:
        for job_id in list(self._in_flight):
            release = wire.JobRelease(job_id)
            try:
                await self._call(release.METHOD, release.to_params())
            except StratumClientError:
                pass
            self._in_flight.discard(job_id)

    async def _serve(self, token: int) -> None:
        """Claim and run jobs until cancelled. A refused claim (the pool's queue is down) is
        retried with backoff; only a closed connection stops it."""
        cfg = self.config
        try:
            claim = wire.JobClaim(token, cfg.claim_batch, cfg.visibility_timeout, CLAIM_WAIT_S)
        except wire.RigMessageError as exc:
            log.error("cannot claim jobs", error=str(exc))
            return
        retry = Backoff(0.25, 5.0)
        while True:
            try:
                reply = wire.ClaimReply.from_result(await self._call(claim.METHOD, claim.to_params()))
            except (StratumClientError, wire.RigMessageError) as exc:
                if self.client is None or self.client.closed.is_set():
                    log.info("stopped claiming", reason=str(exc))
                    return
                delay = retry.next_delay()
                log.warning("claim refused: retrying", reason=str(exc), retry_in=delay)
                await trio.sleep(delay)
                continue
            retry.reset()
            for job in reply.jobs:
                self._in_flight.add(job.job_id)
                try:
                    if self.backend is None:
                        raise InferenceError("this rig has no inference backend")
                    result = await run_job(self.backend, job.payload)
                except InferenceError as exc:
                    if exc.retryable:
                        log.warning("inference failed: job released", job=job.job_id, error=str(exc))
                        release = wire.JobRelease(job.job_id, cause=backend_cause(exc))
                        await self._call(release.METHOD, release.to_params())
                        self._in_flight.discard(job.job_id)
                        self.backend_ok = False
                        with trio.move_on_after(self._failed_backend_wait()):
                            await self.wait_backend()
                        continue
                    result = {"error": {"message": str(exc), "type": type(exc).__name__}}
                done = wire.JobResult(job.job_id, result)
                with trio.CancelScope(shield=True):  # a finished result is worth delivering
                    await self._call(done.METHOD, done.to_params())
                self._in_flight.discard(job.job_id)
                self.jobs_done += 1


def backend_cause(exc: InferenceError) -> str:
    """What a release tells the pool: the error's type and message, cut to the protocol's limit."""
    return f"{type(exc).__name__}: {exc}"[: wire.MAX_CAUSE]
