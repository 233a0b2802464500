"""The pool service: listeners, sessions, job fan-out, found blocks, graceful shutdown.

Structure (one root nursery, services started with `nursery.start`):

    Pool.run
    ├── ShareLog.run            the group-commit writer; outlives every connection
    ├── template source         pushes TemplateUpdates
    ├── _consume_templates      template -> job -> every working session
    ├── BlockSubmitter          resubmits blocks left pending by a previous run
    └── serve_tcp               one Session task per miner (errors contained per connection)

Shutdown (`shutdown()` or cancelling the caller's scope): stop accepting, end the connections,
flush the share log, close the block ledger.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
import trio

from stratumkit.chain.address import Network, address_to_script
from stratumkit.chain.errors import AddressError
from stratumkit.chain.targets import difficulty_to_target
from stratumkit.jobs.blocks import BlockLedger, BlockSubmitter
from stratumkit.jobs.extranonce import ExtranonceAllocator
from stratumkit.jobs.job import Job
from stratumkit.jobs.registry import JobRegistry
from stratumkit.jobs.sources import TemplateSource, TemplateUpdate
from stratumkit.protocol.errors import ErrorCode
from stratumkit.protocol.events import ExtensionRequest
from stratumkit.shares.log import ShareLog
from stratumkit.shares.stats import PoolStats
from stratumkit.shares.vardiff import VardiffConfig

from .config import PoolConfig
from .session import Session

log = structlog.get_logger("stratumkit.pool")

#: Paid by the embedded chain when no payout address is configured (anyone can spend: it is a
#: demonstration chain).
OP_TRUE_SCRIPT = b"\x51"

#: How often session timers are checked (timeouts fire up to this late).
TIMER_TICK = 1.0
TIMER_SLICES = 10

ExtensionHandler = Callable[[Session, ExtensionRequest], Awaitable[None]]


class Pool:
    def __init__(self, config: PoolConfig, source: TemplateSource) -> None:
        self.config = config.validate()
        self.source = source
        self.network = Network.from_chain_name(
            {"mainnet": "main", "testnet": "test"}.get(config.network, config.network)
        )
        data = config.data_path
        data.mkdir(parents=True, exist_ok=True)
        self.share_log = ShareLog(data / "shares")
        self.ledger = BlockLedger(data / "blocks.sqlite")
        self.submitter = BlockSubmitter(self.ledger, source)
        self.extranonces = ExtranonceAllocator(size=4, prefix=config.instance_id)
        self.registry = JobRegistry(
            payout_script=self._payout_script(),
            extranonce1_size=4,
            extranonce2_size=config.extranonce2_size,
            pool_tag=config.pool_tag.encode()[:40],
            stale_window=config.stale_window,
        )
        self.vardiff_config = VardiffConfig(
            target_interval=config.share_interval,
            retarget_time=config.retarget_time,
            minimum=config.min_difficulty,
            maximum=config.max_difficulty,
        )
        self.stats = PoolStats()
        self.sessions: set[Session] = set()
        self._per_ip: dict[str, int] = {}
        self._targets: dict[float, int] = {}
        self.extension_methods: frozenset[str] = frozenset()
        self._extension_handlers: dict[str, ExtensionHandler] = {}
        self.port: int | None = None
        self.started_at = time.time()
        self.last_fanout: float | None = None  # seconds the last job took to reach every session
        #: Called after each accepted share (the lease layer times a rig's return to mining).
        self.share_listeners: list[Callable[[Session], None]] = []
        #: Called when a connection ends (the lease layer requeues a rig's jobs here).
        self.session_closed_hooks: list[Callable[[Session], Awaitable[None]]] = []
        self._nursery: trio.Nursery | None = None
        self._cancel = trio.CancelScope()

    # ---------------------------------------------------------------------------- config

    def _payout_script(self) -> bytes:
        address = self.config.payout_address
        if address is None:
            return OP_TRUE_SCRIPT
        try:
            return address_to_script(address, self.network)
        except AddressError as exc:
            raise ValueError(f"payout_address: {exc}") from None

    def check_worker(self, username: str) -> tuple[bytes | None, str | None]:
        """(payout script, refusal) for a worker name: the refusal says why it may not mine here;
        the script is what solo mode pays (the address before the first "."), None otherwise."""
        if not username or len(username) > 128 or not username.isprintable():
            return None, "worker name must be 1..128 printable characters"
        if not self.config.solo:
            return None, None
        try:
            return address_to_script(username.split(".", 1)[0], self.network), None
        except AddressError as exc:
            return None, f"solo mode pays the worker's address: {exc}"

    def share_target(self, difficulty: float) -> int:
        target = self._targets.get(difficulty)
        if target is None:
            if len(self._targets) > 4096:
                self._targets.clear()
            target = self._targets[difficulty] = difficulty_to_target(difficulty)
        return target

    def register_extension(self, method: str, handler: ExtensionHandler) -> None:
        """Let rigs call `method` over stratum (the lease layer registers its calls here)."""
        self._extension_handlers[method] = handler
        self.extension_methods = frozenset(self._extension_handlers)

    async def on_extension(self, session: Session, event: ExtensionRequest) -> None:
        handler = self._extension_handlers.get(event.method)
        if handler is None:
            session.conn.respond_error(event.id, ErrorCode.OTHER, f"unknown method {event.method!r}")
            return
        await handler(session, event)

    # ---------------------------------------------------------------------------- running

    async def run(self, *, task_status: trio.TaskStatus[Pool] = trio.TASK_STATUS_IGNORED) -> None:
        with self._cancel:
            try:
                async with trio.open_nursery() as nursery:
                    self._nursery = nursery
                    await nursery.start(self.share_log.run)
                    send, receive = trio.open_memory_channel[TemplateUpdate](16)
                    nursery.start_soon(self._consume_templates, receive)
                    nursery.start_soon(self.source.run, send)
                    nursery.start_soon(self.submitter.resubmit_pending)
                    nursery.start_soon(self._timers)
                    listeners = await nursery.start(
                        functools.partial(trio.serve_tcp, self._handle, self.config.port, host=self.config.host)
                    )
                    self.port = listeners[0].socket.getsockname()[1]
                    log.info(
                        "pool listening",
                        host=self.config.host,
                        port=self.port,
                        source=self.source.name,
                        data_dir=self.config.data_dir,
                    )
                    task_status.started(self)
            finally:
                self.ledger.close()
                log.info(
                    "pool stopped",
                    accepted=self.stats.accepted,
                    blocks=self.stats.blocks,
                    share_log=self.share_log.statistics(),
                )

    def shutdown(self) -> None:
        """Stop accepting, end every connection, flush the share log, and return from run()."""
        self._cancel.cancel()

    async def _handle(self, stream: trio.SocketStream) -> None:
        try:
            host, port = stream.socket.getpeername()[:2]
        except OSError:
            await stream.aclose()
            return
        peer = f"{host}:{port}"
        if self._per_ip.get(host, 0) >= self.config.max_connections_per_ip:
            log.warning("connection refused: per-IP cap", peer=peer, cap=self.config.max_connections_per_ip)
            await trio.aclose_forcefully(stream)
            return
        self._per_ip[host] = self._per_ip.get(host, 0) + 1
        session = Session(self, stream, peer)
        self.sessions.add(session)
        self.stats.connections = len(self.sessions)
        try:
            await session.run()
        except Exception as exc:  # one miner's failure must never reach the server
            session.drop_reason = f"internal error: {exc!r}"
            log.exception("connection failed", peer=peer)
        finally:
            self.sessions.discard(session)
            self.stats.connections = len(self.sessions)
            self._per_ip[host] -= 1
            if not self._per_ip[host]:
                del self._per_ip[host]
            if session.extranonce1:
                self.extranonces.release(session.extranonce1)
            for hook in self.session_closed_hooks:
                with trio.CancelScope(shield=True):
                    await hook(session)
            log.info(
                "connection closed",
                peer=peer,
                worker=session.worker,
                reason=session.drop_reason or "closed by miner",
                accepted=session.accepted,
                rejected=session.rejected,
            )
            await trio.aclose_forcefully(stream)

    async def _timers(self) -> None:
        """Every session's timers (handshake, idle, quiet-miner vardiff), each checked once per
        TIMER_TICK: one loop for all, instead of a deadline per read on every connection. The
        sessions are visited in TIMER_SLICES slices spread over the tick, so that with 10,000
        miners no single pass holds up the event loop for long."""
        turn = 0
        while True:
            await trio.sleep(TIMER_TICK / TIMER_SLICES)
            now = trio.current_time()
            for session in list(self.sessions)[turn::TIMER_SLICES]:
                try:
                    session.on_timer(now)
                except Exception as exc:
                    log.exception("session timer failed", peer=session.peer)
                    session.drop(f"internal error in timers: {exc!r}")
            turn = (turn + 1) % TIMER_SLICES

    async def _consume_templates(self, updates: trio.MemoryReceiveChannel[TemplateUpdate]) -> None:
        async for update in updates:
            try:
                job, clean = self.registry.new_job(update.template, trio.current_time(), ntime=int(time.time()))
            except Exception:
                log.exception("template could not be turned into a job", reason=update.reason)
                continue
            self.broadcast(job, clean)
            log.info(
                "new job",
                job_id=job.job_id,
                height=job.template.height,
                clean=clean,
                reason=update.reason,
                sessions=len(self.sessions),
                fanout_ms=round((self.last_fanout or 0) * 1000, 2),
            )

    def broadcast(self, job: Job, clean: bool) -> None:
        t0 = time.perf_counter()
        for session in list(self.sessions):
            try:
                if session.working:
                    session.send_job(job, clean)
                else:
                    session.start_work_if_ready()
            except Exception as exc:  # one connection's trouble never stops the fan-out
                log.exception("could not send work", peer=session.peer)
                session.drop(f"internal error sending work: {exc!r}")
        self.last_fanout = time.perf_counter() - t0

    async def found_block(self, job: Job, block_hash: bytes, block: bytes, worker: str) -> None:
        """Write the block down durably, then submit it in the background (with retries)."""
        hash_hex = block_hash[::-1].hex()
        await self.submitter.record(hash_hex, job.template.height, worker, block)
        log.info("block found", block=hash_hex, height=job.template.height, worker=worker)
        assert self._nursery is not None
        self._nursery.start_soon(self.submitter.submit, hash_hex, block)

    def snapshot(self) -> dict[str, Any]:
        now = time.time()
        snap = self.stats.snapshot(now)
        current = self.registry.current
        snap.update(
            source=self.source.name,
            uptime=now - self.started_at,
            height=current.template.height if current else None,
            network_difficulty=(0xFFFF << 208) / current.network_target if current else None,
            last_fanout_ms=None if self.last_fanout is None else round(self.last_fanout * 1000, 3),
            blocks_found=[b.as_dict() for b in self.ledger.list(limit=50)],
        )
        if not math.isfinite(snap["hashrate"]):  # type: ignore[arg-type]
            snap["hashrate"] = 0.0
        return snap
