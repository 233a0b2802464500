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
(``run`` once per connection), so the token outlives a dropped connection.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from typing import Any

import structlog
import trio

from stratumkit.inference.backend import InferenceBackend, run_job
from stratumkit.inference.errors import InferenceError
from stratumkit.protocol import rig as wire
from stratumkit.protocol.events import ErrorReply, Event, ExtensionNotification, Response

from .cpu_miner import CpuMiner
from .stratum import StratumClient, StratumClientError

log = structlog.get_logger("stratumkit.agent")

#: The longest line the agent accepts from its pool (inference job payloads ride on stratum).
RIG_MAX_LINE_LENGTH = 16 * 1024 * 1024
#: How long a claim asks the pool to wait for a job before answering with none.
CLAIM_WAIT_S = 0.5


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


class RigAgent:
    def __init__(self, config: AgentConfig, backend: InferenceBackend | None) -> None:
        self.config = config
        self.backend = backend
        self.rig_id = config.rig_id or f"{socket.gethostname()}-{config.worker}"
        self.client: StratumClient | None = None
        self.miner: CpuMiner | None = None
        self.mode = "connecting"
        self.lease_id: str | None = None
        #: the token of the divert or return the agent is acting on, kept across connections
        self.resume_token: int | None = None
        self.jobs_done = 0
        self._commands_send, self._commands = trio.open_memory_channel[wire.RigNotification](16)
        self._serving: trio.CancelScope | None = None
        self._in_flight: set[str] = set()

    def _on_event(self, event: Event) -> None:
        if isinstance(event, ExtensionNotification) and event.method == wire.RigCurtail.METHOD:
            try:
                curtail = wire.RigCurtail.from_params(event.params)
            except wire.RigMessageError as exc:
                log.warning("malformed curtail command ignored", error=str(exc))
                return
            if self.miner is not None:
                if curtail.curtailed:
                    self.miner.pause()
                    self.mode = "curtailed"
                else:
                    self.mode = "mining"
                    self.miner.resume()
                log.info("curtailed" if curtail.curtailed else "curtailment over: mining")
        elif isinstance(event, ExtensionNotification) and event.method in wire.NOTIFICATIONS:
            try:
                command = wire.NOTIFICATIONS[event.method].from_params(event.params)
            except wire.RigMessageError as exc:
                log.warning("malformed lease command ignored", error=str(exc))
                return
            self._commands_send.send_nowait(command)
        elif self.miner is not None:
            self.miner.on_event(event)

    async def _call(self, method: str, params: Any) -> Any:
        assert self.client is not None
        reply = await self.client.call(self.client.conn.send_request, method, params)
        if isinstance(reply, ErrorReply):
            raise StratumClientError(f"{method}: {reply.message}")
        assert isinstance(reply, Response)
        return reply.result

    async def run(self, *, task_status: trio.TaskStatus[RigAgent] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve one pool connection until it closes (call again to reconnect)."""
        cfg = self.config
        self.mode = "connecting"
        self.lease_id = None
        self._serving = None
        self._in_flight = set()  # the pool requeues a dropped connection's jobs itself
        self._commands_send, self._commands = trio.open_memory_channel[wire.RigNotification](16)
        async with trio.open_nursery() as nursery:
            self.client = await StratumClient.connect(
                nursery,
                cfg.host,
                cfg.port,
                on_event=self._on_event,
                user_agent="stratumkit-agent/0.1",
                max_line_length=RIG_MAX_LINE_LENGTH,  # claimed jobs can carry long inputs
            )
            self.miner = CpuMiner(self.client, cfg.worker, duty=cfg.duty, chunk=cfg.chunk)
            hashrate = await trio.to_thread.run_sync(self.miner.measure_hashrate)
            sub = await self.client.handshake(cfg.worker, cfg.password)
            self.miner.attach(sub.extranonce1, sub.extranonce2_size)
            models = self.backend.models() if self.backend is not None else []
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
                    )
                    reply = wire.RegisterReply.from_result(await self._call(register.METHOD, register.to_params()))
                    log.info("rig registered", rig=reply.rig_id, hashrate=round(hashrate), models=models, resume=resume)
                except (StratumClientError, wire.RigMessageError) as exc:  # the pool said no: still a miner
                    log.warning("rig registration refused: mining only", error=str(exc))
            self.mode = "mining"
            nursery.start_soon(self.miner.run)
            nursery.start_soon(self._command_loop)
            task_status.started(self)
            await self.client.closed.wait()
            log.warning("pool connection closed")
            nursery.cancel_scope.cancel()

    async def _command_loop(self) -> None:
        assert self.miner is not None
        async with trio.open_nursery() as nursery:
            async for command in self._commands:
                self.resume_token = command.token
                if isinstance(command, wire.LeaseDivert):
                    self.miner.pause()
                    self.lease_id = command.lease_id
                    if self._serving is not None:
                        self._serving.cancel()
                    if self.backend is not None:
                        await self.backend.wake()
                    serving = wire.LeaseServing(command.token)
                    await self._call(serving.METHOD, serving.to_params())
                    self.mode = "serving"
                    log.info("serving lease", lease=self.lease_id, queue=command.queue)
                    scope = trio.CancelScope()
                    self._serving = scope
                    nursery.start_soon(self._serve, command.token, scope)
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
                    self.miner.resume()
                    log.info("back to mining")

    async def _release_unfinished(self) -> None:
        for job_id in list(self._in_flight):
            release = wire.JobRelease(job_id)
            try:
                await self._call(release.METHOD, release.to_params())
            except StratumClientError:
                pass
            self._in_flight.discard(job_id)

    async def _serve(self, token: int, scope: trio.CancelScope) -> None:
        cfg = self.config
        with scope:
            try:
                claim = wire.JobClaim(token, cfg.claim_batch, cfg.visibility_timeout, CLAIM_WAIT_S)
            except wire.RigMessageError as exc:
                log.error("cannot claim jobs", error=str(exc))
                return
            while True:
                try:
                    reply = wire.ClaimReply.from_result(await self._call(claim.METHOD, claim.to_params()))
                except (StratumClientError, wire.RigMessageError) as exc:
                    log.info("stopped claiming", reason=str(exc))
                    return
                for job in reply.jobs:
                    self._in_flight.add(job.job_id)
                    try:
                        if self.backend is None:
                            raise InferenceError("this rig has no inference backend")
                        result = await run_job(self.backend, job.payload)
                    except InferenceError as exc:
                        if exc.retryable:
                            release = wire.JobRelease(job.job_id)
                            await self._call(release.METHOD, release.to_params())
                            self._in_flight.discard(job.job_id)
                            continue
                        result = {"error": {"message": str(exc), "type": type(exc).__name__}}
                    done = wire.JobResult(job.job_id, result)
                    with trio.CancelScope(shield=True):  # a finished result is worth delivering
                        await self._call(done.METHOD, done.to_params())
                    self._in_flight.discard(job.job_id)
                    self.jobs_done += 1
