"""The pool service: listeners, connections, job fan-out, found blocks, graceful shutdown.

Structure (one root nursery, services started with `nursery.start`), after the stratum ports
are bound (a port in use ends `run` before anything has started):

    Pool.run
    ├── ShareLog.run            the group-commit writer; outlives every connection
    ├── SocketReactor.run       every plain-TCP connection, served in batches
    ├── HistoryService.run      per-minute share counts and block rounds to history.sqlite
    ├── template source         pushes TemplateUpdates
    ├── _consume_templates      template -> job -> every working session
    ├── BlockSubmitter          resubmits blocks left pending by a previous run
    ├── _timers                 handshake / idle / slow-reader timeouts, quiet-miner vardiff
    └── _accept                 hands each new socket (plain, or TLS on tls_port) to the reactor

The pool is the sessions' block port and holds their work port (`PoolWork`; see
`stratumkit.session.ports`); the share log and the stats are the other two. The extension port
(the lease service) is given to it.

Shutdown (`shutdown()` or cancelling the caller's scope): stop accepting, end the connections,
flush the share log, close the block ledger.
"""

from __future__ import annotations

import functools
import math
import os
import ssl
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import structlog
import trio

from stratumkit.chain.address import Network, address_to_script
from stratumkit.chain.errors import AddressError
from stratumkit.chain.targets import target_to_difficulty
from stratumkit.jobs.blocks import BlockLedger, BlockSubmitter
from stratumkit.jobs.extranonce import ExtranonceAllocator
from stratumkit.jobs.job import Job
from stratumkit.jobs.registry import JobRegistry
from stratumkit.jobs.sources import TemplateSource, TemplateUpdate
from stratumkit.jobs.work import PoolWork
from stratumkit.session.mining import MiningSession, SessionConfig, SessionPorts
from stratumkit.session.ports import ExtensionPort, NoExtensions
from stratumkit.shares.history_service import HistoryService
from stratumkit.shares.log import ShareLog
from stratumkit.shares.stats import PoolStats
from stratumkit.shares.vardiff import VardiffConfig

from .config import ConfigError, PoolConfig
from .connection import MinerConnection, SocketConnection, StreamConnection, TlsSocketConnection
from .listeners import open_listeners
from .reactor import SocketReactor
from .tls import stratum_context

log = structlog.get_logger("stratumkit.pool")

#: Paid by the embedded chain when no payout address is configured (anyone can spend: it is a
#: demonstration chain).
OP_TRUE_SCRIPT = b"\x51"

#: How often session timers are checked (timeouts fire up to this late).
TIMER_TICK = 1.0
TIMER_SLICES = 10

#: Addresses whose misbehaviour is remembered at once (past it, those quiet for ban_window go).
MAX_TRACKED_HOSTS = 10_000

#: Below this many miners a job is written to them from the loop thread alone.
PARALLEL_FANOUT_MIN = 256


def payout_script(address: str | None, network: Network) -> bytes:
    """The script the coinbase pays: `address`'s, or OP_TRUE when there is none (embedded chain)."""
    if address is None:
        return OP_TRUE_SCRIPT
    try:
        return address_to_script(address, network)
    except AddressError as exc:
        raise ConfigError(f"payout_address {address}: {exc}: give a {network.value} address (see network)") from None


class Pool:
    def __init__(self, config: PoolConfig, source: TemplateSource, extensions: ExtensionPort | None = None) -> None:
        self.config = config.validate()
        self.source = source
        self.extensions: ExtensionPort = extensions if extensions is not None else NoExtensions()
        self.network = Network.from_chain_name(config.network)
        data = config.data_path
        data.mkdir(parents=True, exist_ok=True)
        self.share_log = ShareLog(data / "shares")
        self.ledger = BlockLedger(data / "blocks.sqlite")
        self.submitter = BlockSubmitter(self.ledger, source)
        self.extranonces = ExtranonceAllocator(size=4, prefix=config.instance_id)
        self.registry = JobRegistry(
            payout_script=payout_script(config.payout_address, self.network),
            extranonce1_size=4,
            extranonce2_size=config.extranonce2_size,
            pool_tag=config.pool_tag.encode()[:40],
            stale_window=config.stale_window,
        )
        self.session_config = session_config(config)
        # totals from the durable record, so a restart does not zero them: every share-log record
        # is an accepted share (counted by the segment scan at open), every ledger row a found block
        self.stats = PoolStats(accepted=self.share_log.records, blocks=self.ledger.count())
        # per-minute counts and block rounds, kept in history.sqlite (the rest of the stats port)
        self.history = HistoryService(data / "history.sqlite", self.share_log, self.ledger, self.stats)
        self.work = PoolWork(self.registry, self.extranonces, self.network, solo=config.solo)
        self.ports = SessionPorts(
            work=self.work,
            shares=self.share_log,
            blocks=self,
            stats=self.history,
            extension_methods=self.extensions.methods,
        )
        self.reactor = SocketReactor(self.share_log)
        self.tls: ssl.SSLContext | None = None
        if config.tls_port is not None:
            assert config.tls_cert is not None and config.tls_key is not None  # PoolConfig.validate
            self.tls = stratum_context(config.tls_cert, config.tls_key)
        self.sessions: set[MinerConnection] = set()
        #: Each connection's timers are checked in one fixed slice of the tick (see _timers).
        self._timer_slots: list[set[MinerConnection]] = [set() for _ in range(TIMER_SLICES)]
        self._slot_of: dict[MinerConnection, int] = {}
        self._next_slot = 0
        self._per_ip: dict[str, int] = {}
        self._strikes: dict[str, deque[float]] = {}  # host -> when its connections misbehaved
        self._banned_until: dict[str, float] = {}
        self.port: int | None = None
        self.tls_port: int | None = None
        self.started_at = time.time()
        self.last_fanout: float | None = None  # seconds the last job took to reach every session
        self._senders = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fanout")
        self._nursery: trio.Nursery | None = None
        self._cancel = trio.CancelScope()

    # ---------------------------------------------------------------------------- ports

    def found(self, job: Job, block_hash: bytes, block: bytes, worker: str) -> None:
        """Write the block down durably (before the share's reply is queued), then submit it in
        the background, with retries. Blocks are rare: the ledger write runs on the loop thread."""
        hash_hex = block_hash[::-1].hex()
        found_at = time.time()
        self.ledger.add(hash_hex, job.template.height, worker, block, found_at)
        self.history.on_block(hash_hex, found_at)
        log.info("block found", block=hash_hex, height=job.template.height, worker=worker)
        assert self._nursery is not None
        self._nursery.start_soon(self.submitter.submit, hash_hex, block)

    # ---------------------------------------------------------------------------- running

    async def run(self, *, task_status: trio.TaskStatus[Pool] = trio.TASK_STATUS_IGNORED) -> None:
        with self._cancel:
            try:
                listeners = await self._bind()  # a port in use ends the start before anything has run
            except BaseException:
                self._release()
                raise
            try:
                async with trio.open_nursery() as nursery:
                    self._nursery = nursery
                    await nursery.start(self.share_log.run)
                    await nursery.start(self.reactor.run)
                    await nursery.start(self.history.run)
                    send, receive = trio.open_memory_channel[TemplateUpdate](16)
                    nursery.start_soon(self._consume_templates, receive)
                    nursery.start_soon(self.source.run, send)
                    nursery.start_soon(self.submitter.resubmit_pending)
                    nursery.start_soon(self._timers)
                    nursery.start_soon(self._close_all_on_exit)
                    for listener, tls in listeners:
                        nursery.start_soon(self._accept, listener, tls)
                    log.info(
                        "pool listening",
                        host=self.config.host,
                        port=self.port,
                        tls_port=self.tls_port,
                        source=self.source.name,
                        data_dir=self.config.data_dir,
                    )
                    task_status.started(self)
            finally:
                self._release()
                log.info(
                    "pool stopped",
                    accepted=self.stats.accepted,
                    blocks=self.stats.blocks,
                    share_log=self.share_log.statistics(),
                )

    async def _bind(self) -> list[tuple[trio.SocketListener, ssl.SSLContext | None]]:
        """The stratum listeners, plain and (when tls_port is set) TLS, each with its context."""
        cfg = self.config
        plain = await open_listeners(cfg.host, cfg.port, port_key="port")
        self.port = plain[0].socket.getsockname()[1]
        bound: list[tuple[trio.SocketListener, ssl.SSLContext | None]] = [(listener, None) for listener in plain]
        if cfg.tls_port is not None:
            try:
                secure = await open_listeners(cfg.host, cfg.tls_port, port_key="tls_port")
            except BaseException:
                for listener in plain:
                    await trio.aclose_forcefully(listener)
                raise
            self.tls_port = secure[0].socket.getsockname()[1]
            bound += [(listener, self.tls) for listener in secure]
        return bound

    def _release(self) -> None:
        self.ledger.close()
        self._senders.shutdown(wait=False)

    async def _close_all_on_exit(self) -> None:
        """At shutdown, end every connection while the nursery can still run their rig hooks;
        each miner is first told to come back (`client.reconnect`), so it does not wait for its
        own retry timer once the pool is up again."""
        try:
            await trio.sleep_forever()
        finally:
            cfg = self.config
            for conn in list(self.sessions):
                address = conn.local_address()
                host = cfg.reconnect_host or (address[0] if address else None)
                port = cfg.reconnect_port or (address[1] if address else None)
                try:
                    conn.session.say_goodbye(host, port, cfg.reconnect_wait)
                except Exception:
                    log.exception("could not say goodbye", peer=conn.peer)
                conn.drop("pool shutting down")

    def shutdown(self) -> None:
        """Stop accepting, end every connection, flush the share log, and return from run()."""
        self._cancel.cancel()

    def _admit(self, host: str, peer: str) -> bool:
        until = self._banned_until.get(host)
        if until is not None:
            if trio.current_time() < until:
                return False
            del self._banned_until[host]
        if self._per_ip.get(host, 0) >= self.config.max_connections_per_ip:
            log.warning("connection refused: per-IP cap", peer=peer, cap=self.config.max_connections_per_ip)
            return False
        self._per_ip[host] = self._per_ip.get(host, 0) + 1
        return True

    def _new_session(self, peer: str) -> MiningSession:
        return MiningSession(self.session_config, self.ports, trio.current_time(), peer)

    def _opened(self, conn: MinerConnection) -> None:
        self.sessions.add(conn)
        self.stats.connections = len(self.sessions)
        self._timer_slots[self._next_slot].add(conn)
        self._slot_of[conn] = self._next_slot
        self._next_slot = (self._next_slot + 1) % TIMER_SLICES

    def _closed(self, conn: MinerConnection) -> None:
        """A connection's end, from either shell: the pool's books."""
        if isinstance(conn, SocketConnection):
            self.reactor.remove(conn)
        self.sessions.discard(conn)
        self.stats.connections = len(self.sessions)
        slot = self._slot_of.pop(conn, None)
        if slot is not None:
            self._timer_slots[slot].discard(conn)
        host = conn.peer.rsplit(":", 1)[0]
        self._per_ip[host] -= 1
        if not self._per_ip[host]:
            del self._per_ip[host]
        if conn.session.extranonce1:
            self.extranonces.release(conn.session.extranonce1)
        if conn.session.misbehaved:
            self._strike(host)

    def _strike(self, host: str) -> None:
        """One more misbehaving connection from `host`: ban it after ban_after within ban_window."""
        cfg = self.config
        if cfg.ban_time <= 0:
            return
        now = trio.current_time()
        strikes = self._strikes.setdefault(host, deque())
        strikes.append(now)
        while strikes and strikes[0] <= now - cfg.ban_window:
            strikes.popleft()
        if len(strikes) >= cfg.ban_after:
            del self._strikes[host]
            self._banned_until[host] = now + cfg.ban_time
            log.warning("address banned", host=host, seconds=cfg.ban_time, dropped=cfg.ban_after)
        if len(self._strikes) > MAX_TRACKED_HOSTS:  # many addresses: forget the quiet ones
            self._strikes = {h: s for h, s in self._strikes.items() if s and s[-1] > now - cfg.ban_window}
        if len(self._banned_until) > MAX_TRACKED_HOSTS:
            self._banned_until = {h: t for h, t in self._banned_until.items() if t > now}

    async def _accept(self, listener: trio.SocketListener, tls: ssl.SSLContext | None = None) -> None:
        async with listener:
            await self._accept_from(listener, tls)

    async def _accept_from(self, listener: trio.SocketListener, tls: ssl.SSLContext | None) -> None:
        assert self._nursery is not None
        while True:
            try:
                stream = await listener.accept()
            except OSError as exc:  # out of file descriptors and the like: back off, keep serving
                log.warning("accept failed", error=str(exc))
                await trio.sleep(0.1)
                continue
            sock = stream.socket
            try:
                host, port = sock.getpeername()[:2]
            except OSError:
                sock.close()
                continue
            peer = f"{host}:{port}"
            if not self._admit(host, peer):
                sock.close()
                continue
            session = self._new_session(peer)
            kind: Callable[..., SocketConnection] = (
                SocketConnection if tls is None else functools.partial(TlsSocketConnection, context=tls)
            )
            conn = kind(
                sock,
                session,
                self.extensions,
                self._nursery,
                send_queue_bytes=self.config.send_queue * 1024,
                on_close=self._closed,
                want_write=self.reactor.want_write,
            )
            self._opened(conn)
            self.reactor.add(conn)

    async def serve_stream(self, stream: trio.abc.Stream, peer: str) -> StreamConnection | None:
        """Serve one miner over any stream (in-memory streams in tests), until it ends; None if
        its address was refused (per-IP cap, or banned)."""
        assert self._nursery is not None
        if not self._admit(peer.rsplit(":", 1)[0], peer):
            await trio.aclose_forcefully(stream)
            return None
        conn = StreamConnection(
            stream,
            self._new_session(peer),
            self.extensions,
            self._nursery,
            self.share_log,
            send_queue_bytes=self.config.send_queue * 1024,
            send_timeout=self.config.send_timeout,
            on_close=self._closed,
        )
        self._opened(conn)
        await conn.run()
        return conn

    async def _timers(self) -> None:
        """Every connection's timers, each checked once per TIMER_TICK: one loop for all instead
        of a deadline per read. A connection belongs to one of TIMER_SLICES fixed slices from its
        start to its end, and the slices are visited in turn on a fixed schedule, so every
        deadline fires within one tick however many connections come and go, and with 10,000
        miners no single pass holds up the event loop for long."""
        turn = 0
        send_timeout = self.config.send_timeout
        step = TIMER_TICK / TIMER_SLICES
        wake = trio.current_time()
        while True:
            wake = max(wake + step, trio.current_time() - TIMER_TICK)  # no burst after a stall
            await trio.sleep_until(wake)
            now = trio.current_time()
            for conn in list(self._timer_slots[turn]):
                if conn.closed:
                    continue
                try:
                    conn.session.on_timer(now)
                    if isinstance(conn, SocketConnection) and conn.backlog and now - conn.backlog_since > send_timeout:
                        conn.session.drop(f"slow reader: a send blocked for {send_timeout:g} s")
                    if conn.session.closing:
                        conn.close()
                    else:
                        conn.flush()
                except Exception as exc:
                    log.exception("session timer failed", peer=conn.peer)
                    conn.drop(f"internal error in timers: {exc!r}")
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
        """A new job to every working miner.

        Miners that get exactly the shared notify line (same difficulty as before, not solo, no
        backlog) are written the one pre-serialised buffer straight to their sockets, the sends
        split between the loop thread and a sender thread (a send releases the GIL, and on
        loopback it also runs the receiver's TCP path inside the sender's call), and their books
        (the job's difficulty) are kept after the sends. The loop thread waits for both halves:
        nothing else touches a socket meanwhile.
        Every other miner gets its own output through its session.
        """
        t0 = time.perf_counter()
        now = trio.current_time()
        wire = (job.notify_clean if clean else job.notify_update).wire
        shared: list[SocketConnection] = []
        for conn in list(self.sessions):
            if conn.closed:
                continue
            try:
                if (
                    type(conn) is SocketConnection  # plain text: the shared bytes go out as they are
                    and not conn.backlog
                    and not conn.holding
                    and conn.session.takes_shared_notify(job)
                ):
                    shared.append(conn)
                else:
                    conn.session.send_job(job, clean, now)
                    conn.flush()
            except Exception as exc:  # one connection's trouble never stops the fan-out
                log.exception("could not send work", peer=conn.peer)
                conn.drop(f"internal error sending work: {exc!r}")
        if len(shared) >= PARALLEL_FANOUT_MIN:
            half = len(shared) // 2
            other = self._senders.submit(_send_all, [c.fd for c in shared[half:]], wire)
            short = _send_all([c.fd for c in shared[:half]], wire)
            short_other = other.result()
            unsent = [(shared[i], n) for i, n in short] + [(shared[half + i], n) for i, n in short_other]
        else:
            unsent = [(shared[i], n) for i, n in _send_all([c.fd for c in shared], wire)]
        job_id = job.job_id
        for conn in shared:  # the books after the sends: the miners get the job sooner
            conn.session.note_job_sent(job_id, clean, min(conn.session.difficulty, job.max_difficulty))
        for conn, sent in unsent:
            if sent < 0:
                conn.drop("connection lost while sending")
            else:
                conn.write(wire[sent:])  # what the socket did not take joins its backlog
        self.last_fanout = time.perf_counter() - t0

    def send_message(self, text: str, worker: str | None = None) -> int:
        """`client.show_message` to every subscribed miner of `worker` (all when None); how many."""
        sent = 0
        for conn in list(self.sessions):
            session = conn.session
            if conn.closed or session.worker is None or (worker is not None and not session.is_authorized(worker)):
                continue
            session.conn.send_show_message(text)
            conn.flush()
            sent += 1
        return sent

    def snapshot(self) -> dict[str, Any]:
        now = time.time()
        snap = self.stats.snapshot(now)
        current = self.registry.current
        snap.update(
            source=self.source.name,
            uptime=now - self.started_at,
            height=current.template.height if current else None,
            network_difficulty=target_to_difficulty(current.network_target) if current else None,
            last_fanout_ms=None if self.last_fanout is None else round(self.last_fanout * 1000, 3),
            # the ledger's count, like blocks_found: it also holds blocks whose share was refused
            blocks=self.ledger.count(),
            blocks_found=[b.as_dict() for b in self.ledger.list(limit=50)],
            share_log=self.share_log.statistics(),
        )
        if not math.isfinite(snap["hashrate"]):  # type: ignore[arg-type]
            snap["hashrate"] = 0.0
        return snap


def _send_all(fds: list[int], data: bytes) -> list[tuple[int, int]]:
    """Write `data` to every fd (non-blocking); return (index, bytes sent or -1) where short."""
    short = []
    size = len(data)
    write = os.write
    for i, fd in enumerate(fds):
        try:
            sent = write(fd, data)
        except BlockingIOError:
            sent = 0
        except OSError:
            sent = -1
        if sent != size:
            short.append((i, sent))
    return short


def session_config(config: PoolConfig) -> SessionConfig:
    """What each miner's session is given from the pool's configuration."""
    return SessionConfig(
        extranonce2_size=config.extranonce2_size,
        version_mask=config.version_mask,
        start_difficulty=config.start_difficulty,
        vardiff=VardiffConfig(
            target_interval=config.share_interval,
            retarget_time=config.retarget_time,
            minimum=config.min_difficulty,
            maximum=config.max_difficulty,
        ),
        solo=config.solo,
        handshake_timeout=config.handshake_timeout,
        idle_timeout=config.idle_timeout,
        max_invalid=config.max_invalid_shares,
        max_line_length=config.max_line_length,
        rig_max_line_length=config.rig_max_line_length,
    )
