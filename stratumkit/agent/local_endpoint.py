"""The trio shell of the relay: the agent's local stratum endpoint on 127.0.0.1, and its upstream pump.

Each accepted connection is one task reading into :class:`Relay` and one writing what the relay
queued for it (woken after every relay call). ``pump_upstream`` runs once per pool connection:
it submits the shares the relay checked, as the agent's worker, over the agent's own client, and
feeds the relay the pool's events (``on_event``). Nothing here decides anything: the rules are
the relay's.
"""

from __future__ import annotations

import structlog
import trio

from stratumkit.protocol.events import Event, SubmitResult

from .relay import Relay
from .stratum import StratumClient
from .waking import Changed

log = structlog.get_logger("stratumkit.agent")


class LocalEndpoint:
    def __init__(self, relay: Relay, worker: str) -> None:
        self.relay = relay
        self.worker = worker
        self.client: StratumClient | None = None
        self.port = 0
        self._changed = Changed()

    def wake(self) -> None:
        """After any relay call: writers and the upstream pump look at what it queued."""
        self._changed.notify()

    def on_event(self, event: Event) -> None:
        self.relay.upstream_event(event, trio.current_time())
        if isinstance(event, SubmitResult):
            log.info("miner share", accepted=event.accepted, code=event.code, reason=event.message)
        self.wake()

    async def serve(self, port: int = 0, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(port, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        self.relay.endpoint = ("127.0.0.1", self.port)
        log.info("local stratum endpoint listening", port=self.port)
        task_status.started(self.port)
        await trio.serve_listeners(self.handle, listeners)

    async def handle(self, stream: trio.abc.Stream) -> None:
        """One local miner on any stream (a loopback socket from serve, a memory stream in tests)."""
        mid = self.relay.add_miner()
        if mid is None:
            log.warning("local miner refused: every extranonce slot is taken")
            await trio.aclose_forcefully(stream)
            return
        log.info("local miner connected", miner=mid)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._write, stream, mid, nursery.cancel_scope)
                while not self.relay.should_close(mid):
                    try:
                        data = bytes(await stream.receive_some(65536))
                    except (trio.BrokenResourceError, trio.ClosedResourceError):
                        data = b""
                    self.relay.miner_data(mid, data, trio.current_time())
                    self.wake()
                    if not data:
                        break
                await trio.sleep_forever()  # the writer flushes the last replies, then ends both
        finally:
            self.relay.remove_miner(mid)
            self.wake()
            await trio.aclose_forcefully(stream)
            log.info("local miner disconnected", miner=mid)

    async def _write(self, stream: trio.abc.Stream, mid: int, scope: trio.CancelScope) -> None:
        try:
            while True:
                data = self.relay.data_for(mid)
                if data:
                    await stream.send_all(data)
                elif self.relay.should_close(mid):
                    return
                else:
                    await self._changed.wait()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return
        finally:
            scope.cancel()

    async def pump_upstream(self, client: StratumClient) -> None:
        """Submit checked shares over ``client`` until cancelled (the connection ended)."""
        self.client = client
        try:
            while True:
                while self.relay.upstream:
                    share = self.relay.upstream.popleft()
                    request_id = client.conn.submit(
                        self.worker, share.job_id, share.extranonce2, share.ntime, share.nonce
                    )
                    self.relay.sent(share.token, request_id)
                await client.flush()
                await self._changed.wait()
        finally:
            self.client = None
            self.relay.upstream_lost()
            self.wake()
