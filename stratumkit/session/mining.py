"""One miner's session, pool side, with no I/O: bytes and time in, bytes and decisions out.

The I/O shell (stratumkit.server) feeds `receive_data(data, now, wall)`, ships `data_to_send()`,
calls `on_timer(now)` now and then, and closes the connection once `drop_reason` is set. Nothing
here reads a clock, touches a socket or awaits; the pool's parts are reached through the narrow
ports of `stratumkit.session.ports`.

Rules:
- Work goes only to a MINING connection that is subscribed and authorized. DIVERTED (leased out)
  and CURTAILED connections are sent nothing until `set_mode(MINING)`, which starts over with a
  fresh difficulty and a clean job. While not mining, vardiff stands still (no shares are
  expected, so the difficulty must not decay towards the minimum meanwhile).
- A CURTAILED connection's shares are refused (21, the work it holds was withdrawn) and not
  credited, without counting against the miner: the pool asked it to stop, and a plain miner
  cannot be made to. A block solution among them still goes to the block port. A curtailed
  connection is never dropped for being silent.
- A share is credited at the difficulty its job id was sent at to this miner. A difficulty
  change takes effect with a new job id (the work port reissues the job): a job id is never
  sent to one miner at two difficulties.
- A job is never sent at a share difficulty above its network difficulty (`Job.max_difficulty`):
  a miner sends only hashes that meet its share target, so a block solution between the two
  targets would never reach the pool.
- A share that solves a block goes to the block port before anything can reject it, and before
  its reply is queued (the block port writes it down durably first).
- An accepted share goes to the share port's open batch; `take_batch()` hands the shell that
  batch, and the shell sends nothing queued after it before the batch is durable.
- A miner is dropped once `max_invalid` of its last 2 x `max_invalid` judged messages (shares and
  malformed requests) were bad, each having had its answer: a valid share slipped in now and then
  does not reset the count, and honest stale shares after a block stay far below it.
  Such a drop, or bytes that break the protocol, mark the session `misbehaved` (the pool may ban
  the address); a TLS ClientHello on the plain port only closes it (bfgminer 5.x tries TLS first
  on every connection, then plain text: a farm behind one address would otherwise be banned).
- A miner that does not finish subscribe + authorize within `handshake_timeout`, or is silent
  for `idle_timeout`, is dropped by `on_timer`.
- Extension requests (`stratumkit.*`) are not answered here: `receive_data` returns them, in
  order, for the shell to hand to the extension port.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from stratumkit.chain.block import assemble_block
from stratumkit.chain.targets import target_to_difficulty
from stratumkit.jobs.job import Job
from stratumkit.protocol.errors import ErrorCode, LocalProtocolError, RemoteProtocolError, TlsOnPlainPort
from stratumkit.protocol.events import (
    Authorize,
    BadRequest,
    Configure,
    ConnectionClosed,
    Event,
    ExtensionRequest,
    ExtranonceSubscribe,
    ProtocolViolation,
    Response,
    Submit,
    Subscribe,
    SuggestDifficulty,
    SuggestTarget,
)
from stratumkit.protocol.jsonrpc import RequestId
from stratumkit.protocol.server import ServerConnection, ServerState
from stratumkit.shares.log import LogBatch, pack_share
from stratumkit.shares.validator import judge_share
from stratumkit.shares.vardiff import Vardiff, VardiffConfig

from .ports import BlockPort, RigMode, SharePort, StatsPort, WorkPort

#: The longest miner version kept (it is the miner's text: logged, never trusted).
MAX_VERSION_CHARS = 128

#: The largest read a shell makes for one connection.
MAX_READ = 65536

#: Jobs whose sent difficulty a session remembers between clean jobs (oldest half forgotten past it).
MAX_REMEMBERED_JOBS = 64


@dataclass(frozen=True, slots=True)
class SessionConfig:
    """What a session needs of the pool's configuration."""

    extranonce2_size: int = 4
    version_mask: int = 0x1FFFE000
    start_difficulty: float = 0.001
    vardiff: VardiffConfig = field(default_factory=VardiffConfig)
    solo: bool = False
    handshake_timeout: float = 30.0
    idle_timeout: float = 600.0
    max_invalid: int = 100
    max_line_length: int = 16 * 1024
    rig_max_line_length: int = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class SessionPorts:
    work: WorkPort
    shares: SharePort
    blocks: BlockPort
    stats: StatsPort
    extension_methods: frozenset[str] = frozenset()


class MiningSession:
    """Subscribe/authorize state, vardiff, per-job difficulty, payout and rig mode of one miner."""

    __slots__ = (
        "_batch",
        "_cfg",
        "_job_difficulty",
        "_judged",
        "_min_difficulty",
        "_ports",
        "_sent_difficulty",
        "_version_request",
        "_workers",
        "_working",
        "accepted",
        "conn",
        "connected_at",
        "drop_reason",
        "extranonce1",
        "invalid_recent",
        "last_activity",
        "miner_version",
        "misbehaved",
        "mode",
        "payout_script",
        "peer",
        "read_size",
        "rejected",
        "rig_id",
        "vardiff",
        "worker",
    )

    def __init__(self, config: SessionConfig, ports: SessionPorts, now: float, peer: str = "") -> None:
        self._cfg = config
        self._ports = ports
        self.peer = peer
        self.conn = ServerConnection(extension_methods=ports.extension_methods, max_line_length=config.max_line_length)
        self.connected_at = now
        self.last_activity = now
        self.extranonce1 = b""
        self.worker: str | None = None
        self._workers: set[str] = set()  # every username whose authorize was granted
        #: Solo mode: what this connection's coinbases pay (its first worker's address).
        self.payout_script: bytes | None = None
        self.vardiff = Vardiff(config.vardiff, config.start_difficulty, now)
        self._min_difficulty = config.vardiff.minimum
        self._sent_difficulty: float | None = None
        self._job_difficulty: dict[str, float] = {}
        self._working = False  # has been sent work since it last (re)started mining
        self.mode = RigMode.MINING
        self.rig_id: str | None = None
        self._version_request: int | None = None
        #: What the miner answered to client.get_version (None: not asked, not answered, or refused).
        self.miner_version: str | None = None
        #: The most a shell reads at once: a line over the cap is refused without reading more.
        self.read_size = min(MAX_READ, config.max_line_length + 2)
        self._judged: deque[bool] = deque()  # the last judged messages: True for a bad one
        self.invalid_recent = 0  # bad ones among them
        #: Dropped for a flood or for bytes that break the protocol (the pool may ban the address).
        self.misbehaved = False
        self.accepted = 0
        self.rejected = 0
        self.drop_reason: str | None = None
        self._batch: LogBatch | None = None

    # ------------------------------------------------------------------------------ state

    @property
    def difficulty(self) -> float:
        return self.vardiff.difficulty

    @property
    def working(self) -> bool:
        """True once this MINING miner has been sent work."""
        return self._working

    @property
    def closing(self) -> bool:
        return self.drop_reason is not None

    def is_authorized(self, worker: str) -> bool:
        """Whether `worker` was granted on this connection (one connection may carry several)."""
        return worker in self._workers

    def job_difficulty(self, job_id: str) -> float | None:
        """The difficulty `job_id` was sent at to this miner (None: never sent)."""
        return self._job_difficulty.get(job_id)

    def drop(self, reason: str) -> None:
        """Ask the shell to close this connection (the first reason given is kept)."""
        if self.drop_reason is None:
            self.drop_reason = reason

    def data_to_send(self) -> bytes:
        return self.conn.data_to_send()

    def take_batch(self) -> LogBatch | None:
        """The share-log batch holding shares accepted since the last call (None: none were)."""
        batch, self._batch = self._batch, None
        return batch

    # ------------------------------------------------------------------------------ input

    def receive_data(self, data: bytes, now: float, wall: float) -> list[ExtensionRequest]:
        """Handle bytes from the miner (b"" = it closed); return its extension requests, in order.

        After a protocol error the messages before the garbage are still handled (a share may
        solve a block) and the session is dropped.
        """
        self.last_activity = now
        requests: list[ExtensionRequest] = []
        try:
            events = self.conn.receive_data(data)
        except RemoteProtocolError as exc:
            for event in exc.events:
                if type(event) is not ConnectionClosed and self.drop_reason is None:
                    try:
                        self._handle(event, now, wall, requests)
                    except LocalProtocolError:
                        pass  # judged and recorded; a failed connection takes no reply
            if not isinstance(exc, TlsOnPlainPort):  # a TLS probe (bfgminer's every connect) is no offence
                self.misbehaved = True
            self.drop(f"protocol error: {exc}")
            return requests
        for event in events:
            if type(event) is ConnectionClosed:
                self.drop("closed by miner")
                break
            self._handle(event, now, wall, requests)
            if self.drop_reason is not None:
                break
        return requests

    def on_timer(self, now: float) -> None:
        """Handshake and idle timeouts, and vardiff for a quiet miner."""
        cfg = self._cfg
        if self.conn.state is not ServerState.AUTHORIZED and now >= self.connected_at + cfg.handshake_timeout:
            self.drop("handshake timeout")
        elif now >= self.last_activity + cfg.idle_timeout and self.mode is not RigMode.CURTAILED:
            self.drop("idle timeout")
        elif self._working and now >= self.vardiff.next_deadline():
            if self._retargeted(self.vardiff.tick(now), now):
                self._resend_work(now)

    def _handle(self, event: Event, now: float, wall: float, requests: list[ExtensionRequest]) -> None:
        kind = type(event)
        if kind is Submit:
            assert isinstance(event, Submit)
            self._on_submit(event, now, wall)
        elif kind is Subscribe:
            assert isinstance(event, Subscribe)
            self._on_subscribe(event, now)
        elif kind is Authorize:
            assert isinstance(event, Authorize)
            self._on_authorize(event, now, wall)
        elif kind is Configure:
            assert isinstance(event, Configure)
            self._on_configure(event, now)
        elif kind is SuggestDifficulty:
            assert isinstance(event, SuggestDifficulty)
            self._suggested(event.id, event.difficulty, now)
        elif kind is SuggestTarget:
            assert isinstance(event, SuggestTarget)
            self._suggested(event.id, target_to_difficulty(event.target), now)
        elif kind is ExtranonceSubscribe:
            assert isinstance(event, ExtranonceSubscribe)
            self.conn.respond(event.id, True)
        elif kind is ExtensionRequest:
            assert isinstance(event, ExtensionRequest)
            requests.append(event)
        elif kind is BadRequest or kind is ProtocolViolation:
            self._count_invalid()
        elif kind is Response:
            assert isinstance(event, Response)
            if event.id == self._version_request and type(event.result) is str:
                self.miner_version = event.result[:MAX_VERSION_CHARS]
        # an error reply (a miner without client.get_version) and anything else: nothing to do

    def _judge(self, bad: bool) -> None:
        judged = self._judged
        judged.append(bad)
        self.invalid_recent += bad
        if len(judged) > 2 * self._cfg.max_invalid:
            self.invalid_recent -= judged.popleft()
        if self.invalid_recent >= self._cfg.max_invalid:
            self.misbehaved = True
            self.drop(f"{self.invalid_recent} invalid messages among the last {len(judged)}")

    def _count_invalid(self) -> None:
        self._judge(True)

    def _on_subscribe(self, event: Subscribe, now: float) -> None:
        if not self.extranonce1:
            self.extranonce1 = self._ports.work.allocate_extranonce1(event.session_id)
        self.conn.respond_subscribe(event.id, self.extranonce1.hex(), self._cfg.extranonce2_size)
        self._maybe_start_work(now)

    def _on_authorize(self, event: Authorize, now: float, wall: float) -> None:
        script, reason = self._ports.work.check_worker(event.username)
        if reason is None and self.payout_script is not None and script != self.payout_script:
            reason = "solo mode pays one address per connection: name the same address"
        if reason is not None:
            self.conn.respond_error(event.id, ErrorCode.UNAUTHORIZED, reason)
            self._count_invalid()
            return
        self.conn.respond(event.id, True)
        if event.username not in self._workers:
            self._workers.add(event.username)
            self._ports.stats.on_worker_started(event.username, wall)  # its hashrate is timed from here
        if self.worker is None:
            self.worker = event.username
            self.payout_script = script
        self._maybe_start_work(now)

    def _on_configure(self, event: Configure, now: float) -> None:
        if event.minimum_difficulty:
            self._min_difficulty = max(self._cfg.vardiff.minimum, event.minimum_difficulty)
            if self.vardiff.difficulty < self._min_difficulty:
                self.vardiff.reset(self._min_difficulty, now)
        self.conn.respond_configure(
            event.id,
            version_rolling_mask=self._cfg.version_mask if event.version_rolling_mask is not None else None,
            minimum_difficulty=event.minimum_difficulty is not None,
            subscribe_extranonce=event.subscribe_extranonce,
        )

    def _suggested(self, request_id: RequestId, difficulty: float, now: float) -> None:
        """mining.suggest_difficulty / suggest_target: the miner's wish, within the pool's bounds
        (and each job's network difficulty, when sent)."""
        cfg = self._cfg.vardiff
        wanted = min(max(difficulty, self._min_difficulty, cfg.minimum), cfg.maximum)
        self.vardiff.reset(wanted, now)
        self.conn.respond(request_id, True)
        if self._working:
            self._resend_work(now)

    # ------------------------------------------------------------------------------ work

    def _maybe_start_work(self, now: float) -> None:
        if self._working or self.mode is not RigMode.MINING or self.conn.state is not ServerState.AUTHORIZED:
            return
        job = self._ports.work.current
        if job is None:
            return  # no template yet (node down at start): work follows the first template
        self._working = True
        self.vardiff.reset(self.vardiff.difficulty, now)
        self.send_job(job, True, now)
        if self._version_request is None:  # once per connection, after its first work
            self._version_request = self.conn.send_get_version()

    def send_job(self, job: Job, clean: bool, now: float) -> None:
        """Queue a job (and the difficulty it is sent at), or the first job if work can start now."""
        if not self._working:
            self._maybe_start_work(now)
            return
        if self.mode is not RigMode.MINING or self.conn.state in (ServerState.ERROR, ServerState.CLOSED):
            return
        if self.payout_script is not None:
            job = self._ports.work.job_for(job, self.payout_script, now)
        elif self._cfg.solo:
            return  # solo: the pool-level job pays no one's address; never hand it out
        difficulty = min(self.vardiff.difficulty, job.max_difficulty)
        held = self._job_difficulty.get(job.job_id)
        if held is not None and held != difficulty:
            # the miner holds this job at another difficulty: the change comes with a new job id
            job = self._ports.work.reissue(job, self._job_difficulty, now)
        if difficulty != self._sent_difficulty:
            self.conn.send_set_difficulty(difficulty)
            self._sent_difficulty = difficulty
        self.note_job_sent(job.job_id, clean, difficulty)
        self.conn.send_notify(job.notify_clean if clean else job.notify_update)

    def takes_shared_notify(self, job: Job) -> bool:
        """True if the new `job` would send this session exactly its shared notify line and
        nothing else (no set_difficulty, not a solo job of its own): the shell may then write the
        one pre-serialised buffer to it directly, and calls `note_job_sent` after."""
        return (
            self._working
            and self.mode is RigMode.MINING
            and self.payout_script is None
            and not self._cfg.solo
            and min(self.vardiff.difficulty, job.max_difficulty) == self._sent_difficulty
            and self.drop_reason is None
        )

    def note_job_sent(self, job_id: str, clean: bool, difficulty: float) -> None:
        remembered = self._job_difficulty
        if clean:
            remembered.clear()
        elif len(remembered) > MAX_REMEMBERED_JOBS:
            for old in list(remembered)[: MAX_REMEMBERED_JOBS // 2]:
                del remembered[old]
        remembered[job_id] = difficulty

    def _retargeted(self, new: float | None, now: float) -> bool:
        """Apply the miner's configured floor to a vardiff change; True if work must be re-sent."""
        if new is None:
            return False
        if new < self._min_difficulty:
            self.vardiff.reset(self._min_difficulty, now)
        return self.vardiff.difficulty != self._sent_difficulty

    def _resend_work(self, now: float) -> None:
        job = self._ports.work.current
        if job is not None:
            self.send_job(job, False, now)

    # ------------------------------------------------------------------------------ rig mode

    def register_rig(self, rig_id: str) -> None:
        """This connection is the rig `rig_id`: its job results are far longer than mining lines."""
        self.rig_id = rig_id
        self.conn.max_line_length = self._cfg.rig_max_line_length
        self.read_size = MAX_READ

    def set_mode(self, mode: RigMode, now: float, *, difficulty: float | None = None) -> None:
        """Change what the hardware does. MINING starts over: the difficulty (floored at the
        miner's minimum), set_difficulty, then a clean job."""
        self.mode = mode
        self._working = False
        self.last_activity = now  # the idle timeout counts from the change
        if mode is not RigMode.MINING:
            return
        self._sent_difficulty = None
        if difficulty is not None:
            self.vardiff.reset(max(difficulty, self._min_difficulty), now)
        self._maybe_start_work(now)

    def say_goodbye(self, host: str | None, port: int | None, wait: float) -> None:
        """Before the pool closes the connection: `client.reconnect` to `host:port` after `wait`
        seconds, to a miner that can use it (subscribed, the connection still healthy)."""
        if self.conn.state in (ServerState.AUTHORIZED, ServerState.SUBSCRIBED) and wait >= 0:
            self.conn.send_reconnect(host, port if host is not None else None, wait if host is not None else None)

    def respond(self, request_id: RequestId, result: Any) -> None:
        self.conn.respond(request_id, result)

    def respond_error(self, request_id: RequestId, message: str) -> None:
        self.conn.respond_error(request_id, ErrorCode.OTHER, message)

    def notify(self, method: str, params: Any) -> None:
        self.conn.send_notification(method, params)

    # ------------------------------------------------------------------------------ shares

    def _on_submit(self, event: Submit, now: float, wall: float) -> None:
        ports = self._ports
        if event.worker not in self._workers:
            self.conn.respond_error(event.id, ErrorCode.UNAUTHORIZED, f"worker {event.worker[:64]!r} is not authorized")
            self._count_invalid()
            return
        job = ports.work.get(event.job_id, self.payout_script)
        difficulty = self._job_difficulty.get(event.job_id, self.vardiff.difficulty)
        verdict = judge_share(  # positional: this is the per-share path
            job,
            self.extranonce1,
            self._cfg.extranonce2_size,
            self.conn.version_rolling_mask,
            ports.work.share_target(difficulty),
            event.extranonce2,
            event.ntime,
            event.nonce,
            event.version_bits,
            wall,
        )
        if verdict.block:
            assert verdict.job is not None and verdict.result is not None
            coinbase = verdict.job.coinbase.join(self.extranonce1, verdict.extranonce2)
            block = assemble_block(verdict.job.template, verdict.result.header, coinbase)
            ports.blocks.found(verdict.job, verdict.result.hash, block, event.worker)
        if self.mode is RigMode.CURTAILED and verdict.error is None:
            ports.stats.on_rejected(event.worker, "curtailed")
            self.rejected += 1
            self.conn.respond_error(event.id, ErrorCode.JOB_NOT_FOUND, "curtailed: the pool withdrew this work")
            return
        if verdict.error is not None:
            ports.stats.on_rejected(event.worker, verdict.error.name.lower())
            self.rejected += 1
            self.conn.respond_error(event.id, verdict.error, verdict.message)
            self._count_invalid()
            return
        assert verdict.result is not None
        self._batch = ports.shares.append(
            pack_share(
                wall,
                event.worker,
                event.job_id,
                self.extranonce1,
                verdict.extranonce2,
                verdict.ntime,
                verdict.nonce,
                verdict.version,
                difficulty,
                verdict.result.hash,
                verdict.block,
            )
        )
        self._judge(False)
        self.accepted += 1
        ports.stats.on_accepted(event.worker, difficulty, wall, verdict.block)
        self.conn.respond(event.id, True)
        if self._retargeted(self.vardiff.on_share(now), now):
            self._resend_work(now)


__all__ = ["MAX_REMEMBERED_JOBS", "MiningSession", "SessionConfig", "SessionPorts"]
