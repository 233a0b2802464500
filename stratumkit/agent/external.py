"""An external miner under the agent: its process, the local endpoint it mines on, and the relay.

It stands where the built-in CpuMiner stands in the rig agent (the same ``attach`` / ``on_event``
/ ``pause`` / ``resume`` / ``run`` calls), so divert and return drive it the same way. ``serve``
runs for the agent's whole life (the local endpoint and the process outlive pool connections);
``run`` runs once per pool connection and pumps the checked shares up over it.
"""

from __future__ import annotations

from dataclasses import dataclass

import structlog
import trio

from stratumkit.protocol.events import Event

from .child_process import StopMethod, SupervisedProcess, command_argv
from .local_endpoint import LocalEndpoint
from .relay import Relay
from .stratum import StratumClient

log = structlog.get_logger("stratumkit.agent")


@dataclass(frozen=True)
class MinerSettings:
    """The ``--miner-*`` flags, or the agent TOML's ``[miner]`` table."""

    command: str
    method: StopMethod = StopMethod.STOP
    port: int = 0  # the local endpoint's port on 127.0.0.1 (0: any free one)
    user: str = "rig"  # the name the local miner authorizes with (the pool sees the agent's worker)
    log_lines: int = 200
    report_every: float = 10.0  # seconds between "miner rate" lines


class ExternalMiner:
    def __init__(self, settings: MinerSettings, worker: str) -> None:
        self.settings = settings
        self.relay = Relay()
        self.endpoint = LocalEndpoint(self.relay, worker)
        self.process: SupervisedProcess | None = None
        self.client: StratumClient | None = None
        self.paused = False

    # -- what the rig agent calls, as on CpuMiner --------------------------------------------

    def attach(self, extranonce1: str, extranonce2_size: int) -> None:
        relay = self.relay
        before = (relay.extranonces_sent, relay.reconnects_sent)
        relay.upstream_subscribed(extranonce1, extranonce2_size, keep_jobs=True)
        if (relay.extranonces_sent, relay.reconnects_sent) != before:
            log.info(
                "local miners told of a new extranonce",
                extranonce1=extranonce1,
                set_extranonce=relay.extranonces_sent - before[0],
                reconnect=relay.reconnects_sent - before[1],
            )
        self.endpoint.wake()

    def on_event(self, event: Event) -> None:
        self.endpoint.on_event(event)

    def pause(self) -> None:
        self.paused = True
        if self.settings.method is StopMethod.WITHHOLD:
            self.relay.withhold()
            self.endpoint.wake()
        if self.process is not None:
            self.process.pause()
        log.info("miner paused", method=self.settings.method.value)

    def resume(self) -> None:
        self.paused = False
        if self.settings.method is StopMethod.WITHHOLD:
            self.relay.release()
            self.endpoint.wake()
        if self.process is not None:
            self.process.resume()
        log.info("miner resumed", method=self.settings.method.value)

    def measure_hashrate(self) -> float:
        return self.relay.observed_hashrate(trio.current_time())

    async def run(self, client: StratumClient) -> None:
        await self.endpoint.pump_upstream(client)

    # -- for the agent's whole life ----------------------------------------------------------

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The local endpoint, then the miner process pointed at it, then rate reports; forever."""
        s = self.settings
        async with trio.open_nursery() as nursery:
            port = await nursery.start(self.endpoint.serve, s.port)
            values = {
                "url": f"stratum+tcp://127.0.0.1:{port}",
                "host": "127.0.0.1",
                "port": str(port),
                "user": s.user,
                "password": "x",
            }
            self.process = SupervisedProcess(command_argv(s.command, values), s.method, log_lines=s.log_lines)
            nursery.start_soon(self.process.run)
            nursery.start_soon(self._report)
            task_status.started()

    async def _report(self) -> None:
        while True:
            await trio.sleep(self.settings.report_every)
            log.info(
                "miner rate",
                hashrate=round(self.measure_hashrate()),
                accepted=self.relay.accepted,
                rejected=self.relay.rejected,
                refused_locally=self.relay.refused,
                miners=len(self.relay.miners),
                restarts=self.process.crashes if self.process else 0,
            )
