"""One miner's connection: a reader task and a writer task around a sans-I/O ServerConnection.

Containment rules (one miner never affects another):
- Anything this connection raises ends this connection only; `Pool._handle` catches it.
- Output is written straight to the non-blocking socket; what the kernel does not take waits in a
  bounded backlog that a writer task (started only then) drains. A miner that does not read
  (backlog past `send_queue` KiB, or one send blocked past `send_timeout`) is dropped: the pool
  never waits on it.
- Timeouts: the handshake (subscribe + authorize) must finish within `handshake_timeout`; a
  connection that sends nothing for `idle_timeout` is closed.
- A flood of invalid shares or malformed lines (`max_invalid_shares` in a row) drops the
  connection after each has been answered with its error.

Replies to accepted shares are sent only after the share log has the share on disk: the shares
of one read go into the log's open batch, and the connection's output from then on (replies, and
any job pushed meanwhile) is held, in order, until the log writer reports that batch durable and
releases it. The reader never waits for the disk: it goes on reading while the batch syncs.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

import structlog
import trio

from stratumkit.chain.block import assemble_block
from stratumkit.jobs.job import Job
from stratumkit.protocol.errors import ErrorCode, LocalProtocolError, RemoteProtocolError
from stratumkit.protocol.events import (
    Authorize,
    BadRequest,
    Configure,
    ConnectionClosed,
    Event,
    ExtensionRequest,
    ExtranonceSubscribe,
    ProtocolViolation,
    Submit,
    Subscribe,
    SuggestDifficulty,
)
from stratumkit.protocol.server import ServerConnection, ServerState
from stratumkit.shares.log import LogBatch, ShareRecord
from stratumkit.shares.validator import judge_share
from stratumkit.shares.vardiff import Vardiff

if TYPE_CHECKING:
    from .pool import Pool

log = structlog.get_logger("stratumkit.session")


class Dropped(Exception):
    """This connection is being closed on purpose; the message says why."""


class Session:
    """Pool-side state of one miner connection beyond the protocol itself."""

    def __init__(self, pool: Pool, stream: trio.abc.Stream, peer: str) -> None:
        cfg = pool.config
        self.pool = pool
        self.stream = stream
        self.peer = peer
        self.conn = ServerConnection(extension_methods=pool.extension_methods, max_line_length=cfg.max_line_length)
        now = trio.current_time()
        self.connected_at = now
        self.last_activity = now
        self.extranonce1: bytes = b""
        self.worker: str | None = None
        #: Solo mode: what this connection's coinbases pay (its first worker's address).
        self.payout_script: bytes | None = None
        self.vardiff = Vardiff(pool.vardiff_config, cfg.start_difficulty, now)
        self.min_difficulty = cfg.min_difficulty
        self.sent_difficulty: float | None = None
        self.job_difficulty: dict[str, float] = {}
        self.working = False  # has been sent work (subscribed + authorized, not leased)
        #: Set by the lease layer while the rig serves inference: no work is sent.
        self.leased = False
        #: Extension state owned by the lease layer (rig registration etc.).
        self.rig_id: str | None = None
        self.invalid_streak = 0
        self.accepted = 0
        self.rejected = 0
        self._fd = stream.socket.fileno() if isinstance(stream, trio.SocketStream) else -1
        self._backlog = bytearray()  # output the socket has not taken yet
        self._backlog_limit = cfg.send_queue * 1024
        self._writing = False  # a writer task is draining the backlog
        #: Output held behind share-log batches not yet durable, oldest first.
        self._held: list[tuple[LogBatch, bytes]] = []
        #: The batch holding the shares accepted from the read being handled now.
        self._batch: LogBatch | None = None
        self._nursery: trio.Nursery | None = None
        self._cancel = trio.CancelScope()
        self.drop_reason: str | None = None

    # ------------------------------------------------------------------------------ running

    async def run(self) -> None:
        structlog.contextvars.bind_contextvars(peer=self.peer)
        with self._cancel:
            try:
                async with trio.open_nursery() as nursery:
                    self._nursery = nursery
                    try:
                        await self._reader()
                    except Dropped as exc:
                        if self.drop_reason is None:
                            self.drop_reason = str(exc)
                    finally:
                        # deliver what was already answered (errors, goodbyes), briefly
                        with trio.move_on_after(1.0):
                            await self._drain()
                        nursery.cancel_scope.cancel()
            except* Dropped as group:
                if self.drop_reason is None:
                    self.drop_reason = str(group.exceptions[0])

    def drop(self, reason: str) -> None:
        """Close this connection from anywhere (slow reader, operator, lease layer)."""
        if self.drop_reason is None:
            self.drop_reason = reason
        self._cancel.cancel()

    # ------------------------------------------------------------------------------ output

    def flush(self) -> None:
        """Send what the protocol queued, in order, unless it must wait for the share log."""
        if self._batch is not None:
            return  # the read being handled accepted shares: its output goes out with them
        data = self.conn.data_to_send()
        if not data:
            return
        if self._held:
            batch, before = self._held[-1]
            self._held[-1] = (batch, before + data)
        else:
            self._write(data)

    def _hold_for_batch(self) -> None:
        """End of a read that accepted shares: its output waits for their batch to be durable."""
        batch, self._batch = self._batch, None
        if batch is None:
            return
        self._held.append((batch, self.conn.data_to_send()))
        if batch.done.is_set():  # durable already (its writer ran while this read was handled)
            self._release(batch)
        else:
            batch.callbacks.append(self._release)

    def _release(self, batch: LogBatch) -> None:
        """Called by the share log's writer when a batch is durable (or failed)."""
        if batch.error is not None:
            self._held.clear()  # never acknowledge what is not on disk
            log.error("share log write failed; dropping the connection unacknowledged", error=str(batch.error))
            self.drop("share log unavailable")
            return
        out = []
        while self._held and self._held[0][0].done.is_set():
            out.append(self._held.pop(0)[1])
        if out:
            self._write(b"".join(out))

    def _write(self, data: bytes) -> None:
        if self._backlog or self._writing or self._fd < 0:
            self._backlog += data
            if len(self._backlog) > self._backlog_limit:
                self.drop(f"slow reader: more than {self._backlog_limit // 1024} KiB unsent")
                return
            self._start_writer()
            return
        try:
            sent = os.write(self._fd, data)  # non-blocking: what the kernel takes now
        except BlockingIOError:
            sent = 0
        except OSError:
            self.drop("connection lost while sending")
            return
        if sent < len(data):
            self._backlog += data[sent:]
            self._start_writer()

    def _start_writer(self) -> None:
        if not self._writing and self._nursery is not None:
            self._writing = True
            self._nursery.start_soon(self._writer)

    async def _writer(self) -> None:
        """Drains the backlog when the socket would not take everything at once."""
        timeout = self.pool.config.send_timeout
        try:
            while self._backlog:
                data = bytes(self._backlog)
                self._backlog.clear()
                with trio.fail_after(timeout):
                    await self.stream.send_all(data)
        except trio.TooSlowError:
            self.drop(f"slow reader: a send blocked for {timeout:g} s")
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self.drop("connection lost while sending")
        finally:
            self._writing = False

    async def _drain(self) -> None:
        """Before closing: wait for held batches and an unsent backlog (the caller bounds it)."""
        self._hold_for_batch()
        self.flush()
        if self._held:
            await self._held[-1][0].done.wait()
        while self._writing or self._backlog:
            if not self._writing:
                self._start_writer()
            await trio.sleep(0.01)

    async def _reader(self) -> None:
        while True:
            data = await self._receive()
            self.last_activity = trio.current_time()
            try:
                events = self.conn.receive_data(data)
            except RemoteProtocolError as exc:
                # what arrived before the garbage still counts (a share may solve a block)
                try:
                    for event in exc.events:
                        if type(event) is not ConnectionClosed:
                            try:
                                await self._handle(event)
                            except LocalProtocolError:
                                pass  # judged and logged; the failed connection takes no reply
                finally:
                    self._hold_for_batch()
                    self.flush()
                raise Dropped(f"protocol error: {exc}") from None
            try:
                for event in events:
                    if type(event) is ConnectionClosed:
                        return
                    await self._handle(event)
            finally:
                self._hold_for_batch()
                self.flush()
            if not data:
                return

    async def _receive(self) -> bytes:
        """The next bytes from the miner (b"" at its end).

        Waits for readability, then reads the non-blocking socket directly: one wakeup and one
        read per burst of lines, without the layers of a generic stream. Timers are not checked
        here (that would cost a cancel scope per read): `Pool` calls `on_timer` for every session.
        """
        if self._fd < 0:  # not a socket (in-memory streams in tests)
            try:
                return await self.stream.receive_some(65536)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return b""
        while True:
            await trio.lowlevel.wait_readable(self._fd)
            try:
                return os.read(self._fd, 65536)
            except BlockingIOError:
                continue
            except OSError:
                return b""

    def on_timer(self, now: float) -> None:
        """Handshake and idle timeouts, and vardiff for a quiet miner; the pool calls this often."""
        cfg = self.pool.config
        if self.conn.state is not ServerState.AUTHORIZED and now >= self.connected_at + cfg.handshake_timeout:
            self.drop("handshake timeout")
        elif now >= self.last_activity + cfg.idle_timeout:
            self.drop("idle timeout")
        elif self.working and now >= self.vardiff.next_deadline():
            if self._retargeted(self.vardiff.tick(now), now):
                self._resend_work()

    # ------------------------------------------------------------------------------ events

    async def _handle(self, event: Event) -> None:
        kind = type(event)
        if kind is Submit:
            assert isinstance(event, Submit)
            await self._on_submit(event)
        elif kind is Subscribe:
            assert isinstance(event, Subscribe)
            self._on_subscribe(event)
        elif kind is Authorize:
            assert isinstance(event, Authorize)
            self._on_authorize(event)
        elif kind is Configure:
            assert isinstance(event, Configure)
            self._on_configure(event)
        elif kind is SuggestDifficulty:
            assert isinstance(event, SuggestDifficulty)
            self._on_suggest_difficulty(event)
        elif kind is ExtranonceSubscribe:
            assert isinstance(event, ExtranonceSubscribe)
            self.conn.respond(event.id, True)
        elif kind is ExtensionRequest:
            assert isinstance(event, ExtensionRequest)
            await self.pool.on_extension(self, event)
        elif kind is BadRequest or kind is ProtocolViolation:
            self._count_invalid()
        # Response (to client.get_version) and anything else: nothing to do

    def _count_invalid(self) -> None:
        self.invalid_streak += 1
        if self.invalid_streak >= self.pool.config.max_invalid_shares:
            self.flush()
            raise Dropped(f"{self.invalid_streak} invalid messages in a row")

    def _on_subscribe(self, event: Subscribe) -> None:
        if not self.extranonce1:
            self.extranonce1 = self.pool.extranonces.allocate(event.session_id)
        en1 = self.extranonce1.hex()
        self.conn.respond_subscribe(event.id, en1, self.pool.config.extranonce2_size)
        self._maybe_start_work()

    def _on_authorize(self, event: Authorize) -> None:
        script, reason = self.pool.check_worker(event.username)
        if reason is None and self.payout_script is not None and script != self.payout_script:
            reason = "solo mode pays one address per connection: name the same address"
        if reason is not None:
            self.conn.respond_error(event.id, ErrorCode.UNAUTHORIZED, reason)
            self._count_invalid()
            return
        self.conn.respond(event.id, True)
        if self.worker is None:
            self.worker = event.username
            self.payout_script = script
            structlog.contextvars.bind_contextvars(worker=self.worker)
            log.info("miner authorized", user_agent=self.conn.user_agent)
        self._maybe_start_work()

    def _on_configure(self, event: Configure) -> None:
        if event.minimum_difficulty:
            self.min_difficulty = max(self.pool.config.min_difficulty, event.minimum_difficulty)
            if self.vardiff.difficulty < self.min_difficulty:
                self.vardiff.reset(self.min_difficulty, trio.current_time())
        self.conn.respond_configure(
            event.id,
            version_rolling_mask=self.pool.config.version_mask if event.version_rolling_mask is not None else None,
            minimum_difficulty=event.minimum_difficulty is not None,
            subscribe_extranonce=event.subscribe_extranonce,
        )

    def _on_suggest_difficulty(self, event: SuggestDifficulty) -> None:
        cfg = self.pool.config
        wanted = min(max(event.difficulty, self.min_difficulty, cfg.min_difficulty), cfg.max_difficulty)
        self.vardiff.reset(wanted, trio.current_time())
        self.conn.respond(event.id, True)
        if self.working:
            self._resend_work()

    # ------------------------------------------------------------------------------ work

    def _maybe_start_work(self) -> None:
        if self.working or self.leased or self.conn.state is not ServerState.AUTHORIZED:
            return
        job = self.pool.registry.current
        if job is None:
            return  # no template yet (node down at start): work follows the first template
        self.working = True
        self.vardiff.reset(self.vardiff.difficulty, trio.current_time())
        self.send_job(job, clean=True)

    def send_job(self, job: Job, clean: bool) -> None:
        """Queue a job (and the difficulty it is sent at) for this miner."""
        if self.leased or not self.working or self.conn.state in (ServerState.ERROR, ServerState.CLOSED):
            return
        if self.payout_script is not None:
            job = self.pool.registry.job_for(job, self.payout_script, trio.current_time())
        elif self.pool.config.solo:
            return  # solo: the pool-level job pays no one's address; never hand it out
        difficulty = self.vardiff.difficulty
        if difficulty != self.sent_difficulty:
            self.conn.send_set_difficulty(difficulty)
            self.sent_difficulty = difficulty
        if clean:
            self.job_difficulty.clear()
        elif len(self.job_difficulty) > 64:
            for job_id in list(self.job_difficulty)[:32]:
                del self.job_difficulty[job_id]
        # A job sent again at a new difficulty keeps the lower of the two: shares already on the
        # wire were found at the old one and still count at it.
        held = self.job_difficulty.get(job.job_id)
        self.job_difficulty[job.job_id] = difficulty if held is None else min(held, difficulty)
        self.conn.send_notify(job.notify_clean if clean else job.notify_update)
        self.flush()

    def _retargeted(self, new: float | None, now: float) -> bool:
        """Apply the miner's configured floor to a vardiff change; True if work must be re-sent."""
        if new is None:
            return False
        if new < self.min_difficulty:
            self.vardiff.reset(self.min_difficulty, now)
        return self.vardiff.difficulty != self.sent_difficulty

    def _resend_work(self) -> None:
        job = self.pool.registry.current
        if job is not None:
            self.send_job(job, clean=False)

    def start_work_if_ready(self) -> None:
        """Send the first job if the miner is now subscribed and authorized (e.g. the first
        template arrived after its handshake)."""
        self._maybe_start_work()
        self.flush()

    def start_work(self) -> None:
        """Back to mining (after a lease): fresh difficulty and a clean job."""
        self.leased = False
        self.working = False
        self.sent_difficulty = None
        self._maybe_start_work()
        self.flush()

    async def _on_submit(self, event: Submit) -> None:
        pool = self.pool
        if event.worker not in self.conn.authorized_workers:
            self.conn.respond_error(event.id, ErrorCode.UNAUTHORIZED, f"worker {event.worker[:64]!r} is not authorized")
            self._count_invalid()
            return
        job = pool.registry.get(event.job_id, self.payout_script)
        difficulty = self.job_difficulty.get(event.job_id, self.vardiff.difficulty)
        verdict = judge_share(
            job,
            extranonce1=self.extranonce1,
            extranonce2_size=pool.config.extranonce2_size,
            version_mask=self.conn.version_rolling_mask,
            share_target=pool.share_target(difficulty),
            extranonce2_hex=event.extranonce2,
            ntime_hex=event.ntime,
            nonce_hex=event.nonce,
            version_bits_hex=event.version_bits,
            now=time.time(),
        )
        if verdict.block:
            assert verdict.job is not None and verdict.result is not None
            coinbase = verdict.job.coinbase.join(self.extranonce1, verdict.extranonce2)
            block = assemble_block(verdict.job.template, verdict.result.header, coinbase)
            await pool.found_block(verdict.job, verdict.result.hash, block, event.worker)
        if verdict.error is not None:
            pool.stats.on_rejected(event.worker, verdict.error.name.lower())
            self.rejected += 1
            self.conn.respond_error(event.id, verdict.error, verdict.message)
            self._count_invalid()
            return
        assert verdict.result is not None and verdict.job is not None
        self._batch = pool.share_log.append_nowait(
            ShareRecord(
                time=time.time(),
                worker=event.worker,
                job_id=event.job_id,
                extranonce1=self.extranonce1,
                extranonce2=verdict.extranonce2,
                ntime=verdict.ntime,
                nonce=verdict.nonce,
                version=verdict.version,
                difficulty=difficulty,
                hash=verdict.result.hash,
                block=verdict.block,
            )
        )
        self.invalid_streak = 0
        self.accepted += 1
        pool.stats.on_accepted(event.worker, difficulty, time.time(), verdict.block)
        self.conn.respond(event.id, True)
        for listener in pool.share_listeners:
            listener(self)
        now = trio.current_time()
        if self._retargeted(self.vardiff.on_share(now), now):
            self._resend_work()


__all__ = ["Dropped", "Session"]
