"""One miner's connection: a reader task and a writer task around a sans-I/O ServerConnection.

Containment rules (one miner never affects another):
- Anything this connection raises ends this connection only; `Pool._handle` catches it.
- Output goes through a bounded queue drained by the writer task. A miner that does not read
  (queue full, or one send blocked past `send_timeout`) is dropped: the pool never waits on it.
- Timeouts: the handshake (subscribe + authorize) must finish within `handshake_timeout`; a
  connection that sends nothing for `idle_timeout` is closed.
- A flood of invalid shares or malformed lines (`max_invalid_shares` in a row) drops the
  connection after each has been answered with its error.

Replies to accepted shares are sent only after the share log has the share on disk: the shares
of one read go into the log's open batch, the connection waits once for that batch, and only then
is its output (replies, and any job pushed meanwhile) released, in order.
"""

from __future__ import annotations

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
from stratumkit.shares.log import ShareLogError, ShareRecord
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
        self.conn = ServerConnection(
            extension_methods=pool.extension_methods, max_line_length=cfg.max_line_length
        )
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
        self._send, self._outbox = trio.open_memory_channel[bytes](cfg.send_queue)
        self._send_lock = trio.StrictFIFOLock()
        self._writer_holding = False  # the writer took a chunk off the queue and has not sent it
        self._cancel = trio.CancelScope()
        self.drop_reason: str | None = None
        #: The share-log batch holding shares this connection accepted but has not yet confirmed
        #: to the miner; output waits for it.
        self._unsynced: object | None = None

    # ------------------------------------------------------------------------------ running

    async def run(self) -> None:
        structlog.contextvars.bind_contextvars(peer=self.peer)
        with self._cancel:
            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._writer)
                    try:
                        await self._reader()
                    except Dropped as exc:
                        # ends the reader only: the writer still delivers the last replies
                        if self.drop_reason is None:
                            self.drop_reason = str(exc)
                    finally:
                        # give the writer a moment to deliver the last replies (errors, goodbyes)
                        self._send.close()
                        nursery.cancel_scope.deadline = trio.current_time() + 1.0
            except* Dropped as group:
                if self.drop_reason is None:
                    self.drop_reason = str(group.exceptions[0])

    def drop(self, reason: str) -> None:
        """Close this connection from anywhere (slow reader, operator, lease layer)."""
        if self.drop_reason is None:
            self.drop_reason = reason
        self._cancel.cancel()

    def _queue(self, data: bytes) -> None:
        try:
            self._send.send_nowait(data)
        except trio.WouldBlock:
            self.drop("slow reader: send queue full")
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            pass

    def flush(self) -> None:
        if self._unsynced is not None:
            return  # acknowledgements not yet on disk: the reader flushes after the sync
        data = self.conn.data_to_send()
        if data:
            self._queue(data)

    async def _send_all(self, data: bytes) -> None:
        timeout = self.pool.config.send_timeout
        async with self._send_lock:
            try:
                with trio.fail_after(timeout):
                    await self.stream.send_all(data)
            except trio.TooSlowError:
                raise Dropped(f"slow reader: a send blocked for {timeout:g} s") from None
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                raise Dropped("connection lost while sending") from None

    async def _writer(self) -> None:
        """Sends what other tasks queued (jobs pushed by the pool, output while the reader waits)."""
        try:
            async for data in self._outbox:
                self._writer_holding = True
                await self._send_all(data)
                self._writer_holding = False
        except Dropped as exc:
            self.drop(str(exc))

    async def _send_output(self) -> None:
        """The reader's own output: sent from this task when nothing is queued ahead of it, which
        saves a task switch per reply; otherwise queued behind what is already waiting."""
        if self._unsynced is not None:
            return
        data = self.conn.data_to_send()
        if not data:
            return
        if self._writer_holding or self._outbox.statistics().current_buffer_used:
            self._queue(data)
        else:
            await self._send_all(data)

    def _deadline(self) -> float:
        cfg = self.pool.config
        deadline = self.last_activity + cfg.idle_timeout
        if self.conn.state is not ServerState.AUTHORIZED:
            deadline = min(deadline, self.connected_at + cfg.handshake_timeout)
        if self.working:
            deadline = min(deadline, self.vardiff.next_deadline())
        return deadline

    async def _reader(self) -> None:
        cfg = self.pool.config
        while True:
            data: bytes | None = None
            # Only the wait for input is bounded: handling a line (a share waiting for the log)
            # is never cut short by a timer.
            with trio.move_on_at(self._deadline()):
                try:
                    data = await self.stream.receive_some(65536)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    data = b""
            if data is None:
                now = trio.current_time()
                if self.conn.state is not ServerState.AUTHORIZED and now >= self.connected_at + cfg.handshake_timeout:
                    raise Dropped("handshake timeout")
                if now >= self.last_activity + cfg.idle_timeout:
                    raise Dropped("idle timeout")
                if self.working and self._retargeted(self.vardiff.tick(now), now):
                    self._resend_work()
                continue
            self.last_activity = trio.current_time()
            try:
                events = self.conn.receive_data(data)
            except RemoteProtocolError as exc:
                # what arrived before the garbage still counts (a share may solve a block)
                for event in exc.events:
                    if type(event) is not ConnectionClosed:
                        await self._handle(event)
                await self._sync()
                self.flush()
                raise Dropped(f"protocol error: {exc}") from None
            try:
                for event in events:
                    if type(event) is ConnectionClosed:
                        await self._sync()
                        self.flush()
                        return
                    await self._handle(event)
            except BaseException:
                await self._sync()
                self.flush()  # answer what was answered before the drop
                raise
            await self._sync()
            await self._send_output()
            if not data:
                return

    async def _sync(self) -> None:
        """Wait until the shares accepted from the last read are on disk."""
        batch, self._unsynced = self._unsynced, None
        if batch is not None:
            try:
                await self.pool.share_log.wait(batch)  # type: ignore[arg-type]
            except ShareLogError as exc:
                self._unsynced = batch  # never release acknowledgements that are not on disk
                log.error("share log write failed; dropping the connection unacknowledged", error=str(exc))
                raise Dropped("share log unavailable") from None

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
        reason = self.pool.check_worker(event.username, event.password)
        script = self.pool.worker_payout_script(event.username) if reason is None else None
        if self.payout_script is not None and script != self.payout_script:
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
        if self.leased or not self.working:
            return
        if self.payout_script is not None:
            job = self.pool.registry.job_for(job, self.payout_script, trio.current_time())
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
        self._unsynced = pool.share_log.append_nowait(
            ShareRecord(
                time=time.time(), worker=event.worker, job_id=event.job_id,
                extranonce1=self.extranonce1, extranonce2=verdict.extranonce2, ntime=verdict.ntime,
                nonce=verdict.nonce, version=verdict.version, difficulty=difficulty,
                hash=verdict.result.hash, block=verdict.block,
            )  # fmt: skip
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


__all__ = ["Dropped", "LocalProtocolError", "Session"]
