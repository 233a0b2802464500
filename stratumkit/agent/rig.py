"""The rig agent (`stratumkit agent`): mines for the pool, and serves inference while leased.

One stratum connection carries both jobs. The agent opts into the stratumkit lease extension by
registering its capabilities (`stratumkit.rig.register`); plain miners never do, so they never
see lease messages. On `stratumkit.lease.divert` it pauses mining, wakes its inference backend,
says `stratumkit.lease.serving`, and consumes the lease's queue through the pool (claim, run,
result). On `stratumkit.lease.return` it stops claiming, gives back any job it has not finished,
says `stratumkit.lease.returned`, and resumes mining on the fresh work the pool then sends.

A job whose inference fails with a retryable error is released for another rig; a non-retryable
error (a bad request) is recorded as that job's result, so it is answered exactly once.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from typing import Any

import structlog
import trio

from stratumkit.inference.backend import InferenceBackend, run_job
from stratumkit.inference.errors import InferenceError
from stratumkit.protocol.events import ErrorReply, Event, ExtensionNotification, Response

from .cpu_miner import CpuMiner
from .stratum import StratumClient, StratumClientError

log = structlog.get_logger("stratumkit.agent")

#: The longest line the agent accepts from its pool (inference job payloads ride on stratum).
RIG_MAX_LINE_LENGTH = 16 * 1024 * 1024


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
        self.jobs_done = 0
        self._commands_send, self._commands = trio.open_memory_channel[ExtensionNotification](16)
        self._serving: trio.CancelScope | None = None
        self._in_flight: set[str] = set()

    def _on_event(self, event: Event) -> None:
        if isinstance(event, ExtensionNotification) and event.method.startswith("stratumkit.lease."):
            self._commands_send.send_nowait(event)
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
        cfg = self.config
        async with trio.open_nursery() as nursery:
            self.client = await StratumClient.connect(
                nursery,
                cfg.host,
                cfg.port,
                on_event=self._on_event,
                user_agent="stratumkit-agent/0.1",
                max_line_length=RIG_MAX_LINE_LENGTH,  # claimed jobs can carry long inputs
            )
            self.miner = CpuMiner(self.client, cfg.worker, duty=cfg.duty)
            hashrate = await trio.to_thread.run_sync(self.miner.measure_hashrate)
            sub = await self.client.handshake(cfg.worker, cfg.password)
            self.miner.attach(sub.extranonce1, sub.extranonce2_size)
            models = self.backend.models() if self.backend is not None else []
            if not cfg.gpus:
                log.warning("no --gpu declared: mining only, this rig cannot be leased")
            else:
                try:
                    await self._call(
                        "stratumkit.rig.register",
                        [
                            {
                                "rig_id": self.rig_id,
                                "gpus": [{"model": m, "vram_mb": v} for m, v in cfg.gpus],
                                "models": models,
                                "hashrate": hashrate,
                                "power_w": cfg.power_w,
                            }
                        ],
                    )
                    log.info("rig registered", rig=self.rig_id, hashrate=round(hashrate), models=models)
                except StratumClientError as exc:  # the pool said no: still a miner
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
                info = command.params[0] if isinstance(command.params, list) and command.params else {}
                token = info.get("token")
                if command.method == "stratumkit.lease.divert":
                    self.miner.pause()
                    self.lease_id = info.get("lease_id")
                    if self._serving is not None:
                        self._serving.cancel()
                    if self.backend is not None:
                        await self.backend.wake()
                    await self._call("stratumkit.lease.serving", [token])
                    self.mode = "serving"
                    log.info("serving lease", lease=self.lease_id, queue=info.get("queue"))
                    scope = trio.CancelScope()
                    self._serving = scope
                    nursery.start_soon(self._serve, token, scope)
                elif command.method == "stratumkit.lease.return":
                    if self._serving is not None:
                        self._serving.cancel()
                        self._serving = None
                    await self._release_unfinished()
                    await self._call("stratumkit.lease.returned", [token])
                    self.mode = "mining"
                    self.lease_id = None
                    self.miner.resume()
                    log.info("back to mining")

    async def _release_unfinished(self) -> None:
        for job_id in list(self._in_flight):
            try:
                await self._call("stratumkit.job.release", [job_id])
            except StratumClientError:
                pass
            self._in_flight.discard(job_id)

    async def _serve(self, token: int, scope: trio.CancelScope) -> None:
        cfg = self.config
        with scope:
            while True:
                try:
                    jobs = await self._call(
                        "stratumkit.job.claim", [token, cfg.claim_batch, cfg.visibility_timeout, 0.5]
                    )
                except StratumClientError as exc:
                    log.info("stopped claiming", reason=str(exc))
                    return
                for job in jobs:
                    job_id = job["job_id"]
                    self._in_flight.add(job_id)
                    try:
                        if self.backend is None:
                            raise InferenceError("this rig has no inference backend")
                        result = await run_job(self.backend, job["payload"])
                    except InferenceError as exc:
                        if exc.retryable:
                            await self._call("stratumkit.job.release", [job_id])
                            self._in_flight.discard(job_id)
                            continue
                        result = {"error": {"message": str(exc), "type": type(exc).__name__}}
                    with trio.CancelScope(shield=True):  # a finished result is worth delivering
                        await self._call("stratumkit.job.result", [job_id, result])
                    self._in_flight.discard(job_id)
                    self.jobs_done += 1
