"""The standalone CPU miner behind `stratumkit mine`: CpuMiner threads on one connection.

Each thread is a CpuMiner on its own extranonce2 lane of the one connection (so none hashes what
another does). The session subscribes to ``mining.set_extranonce`` unless told not to and ends on
the pool's ``client.reconnect`` (keep_connected follows it); answers and rates are logged.
"""

from __future__ import annotations

import structlog
import trio

from stratumkit.protocol.events import ErrorReply, Event, Reconnect, SubmitResult

from .cpu_miner import CpuMiner
from .pools import PoolEndpoint
from .stratum import StratumClient, tls_context

log = structlog.get_logger("stratumkit.mine")


class Miner:
    """One standalone miner: `threads` CpuMiners on each connection, counts kept across them."""

    def __init__(self, user: str, password: str, threads: int, *, extranonce_subscribe: bool = True) -> None:
        self.user = user
        self.password = password
        self.threads = threads
        self.extranonce_subscribe = extranonce_subscribe
        self.accepted = 0
        self.rejected = 0
        self.hashes = 0  # from connections that ended
        self.cpus: list[CpuMiner] = []
        self.context = tls_context()

    def _on_event(self, event: Event) -> None:
        if isinstance(event, SubmitResult):
            if event.accepted:
                self.accepted += 1
                log.info("share accepted", accepted=self.accepted, rejected=self.rejected)
            else:
                self.rejected += 1
                log.warning("share rejected", code=event.code, reason=event.message, rejected=self.rejected)
            return
        for cpu in self.cpus:
            cpu.on_event(event)

    @property
    def total_hashes(self) -> int:
        return self.hashes + sum(cpu.hashes for cpu in self.cpus)

    async def session(self, endpoint: PoolEndpoint, task_status: trio.TaskStatus[None]) -> Reconnect | None:
        async with trio.open_nursery() as nursery:
            client = await StratumClient.open(
                nursery, endpoint, self.context, on_event=self._on_event, user_agent="stratumkit-mine/0.1"
            )
            self.cpus = [CpuMiner(client, self.user, lane=i, lanes=self.threads) for i in range(self.threads)]
            try:
                sub = await client.handshake(self.user, self.password)
                for cpu in self.cpus:
                    cpu.attach(sub.extranonce1, sub.extranonce2_size)
                if self.extranonce_subscribe:
                    reply = await client.call(client.conn.extranonce_subscribe)
                    if isinstance(reply, ErrorReply):
                        log.info("the pool does not send mining.set_extranonce", reason=reply.message)
                for cpu in self.cpus:
                    nursery.start_soon(cpu.run)
                task_status.started()
                await client.closed.wait()
                nursery.cancel_scope.cancel()
            finally:
                self.hashes += sum(cpu.hashes for cpu in self.cpus)
                self.cpus = []
        return client.reconnect

    async def report(self, every: float) -> None:
        last, t0 = self.total_hashes, trio.current_time()
        while True:
            await trio.sleep(every)
            now, total = trio.current_time(), self.total_hashes
            log.info("hashrate", hashes_per_s=round((total - last) / (now - t0)), accepted=self.accepted)
            last, t0 = total, now
