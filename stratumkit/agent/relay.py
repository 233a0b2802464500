"""The relay core: local miners behind the agent's one pool session, with no I/O and no clock.

An external miner (cpuminer, bfgminer, a GPU miner, `stratumkit mine`) connects to the agent's
local stratum endpoint; this core is the pool it talks to (a :class:`ServerConnection` per miner)
and the bridge to the agent's upstream session. The trio shell (local_endpoint) feeds it bytes and
events and ships what it hands back.

Rules:
- **Extranonce split.** Each local miner gets ``extranonce1 = upstream extranonce1 + one slot
  byte`` and an extranonce2 one byte shorter than the pool's, so their shares never collide and
  go up as the pool's own extranonce2 (``slot byte + the miner's extranonce2``). A pool whose
  extranonce2 is too short to split (under 3 bytes) gets one local miner, with no slot byte.
- **Job map.** Every upstream ``mining.notify`` is kept (up to ``MAX_JOBS``, cleared on
  ``clean_jobs`` and on a new upstream session) with the difficulty it was sent with, and
  forwarded unchanged. A share is checked against this map before it goes up: unknown job 21,
  wrong widths 20, duplicate 22, hash above the job's share target 23. Only shares that pass
  use the pool connection; the pool's answer is relayed back to the miner that sent it.
- **Upstream changes.** When the upstream extranonce1 changes (a reconnect, another pool),
  miners that sent ``mining.extranonce.subscribe`` get ``mining.set_extranonce``; the others get
  ``client.reconnect`` to this endpoint and are closed; both then get the newest job, if any.
  While there is no upstream session, subscribes wait unanswered; shares in flight are answered 20.
- **Withholding.** ``withhold()`` closes every local miner and holds new subscribes unanswered,
  so a miner has no work and idles; ``release()`` answers them and fresh work follows.
- **Observed rate.** ``observed_hashrate(now)`` is the accepted share difficulty of the last
  ``RATE_WINDOW`` seconds x 2^32 / the window: what the miner really delivered.
"""

from __future__ import annotations

import struct
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from stratumkit.hashing import sha256d
from stratumkit.protocol.errors import ErrorCode
from stratumkit.protocol.events import (
    Authorize,
    Configure,
    ConnectionClosed,
    Event,
    ExtranonceSubscribe,
    Notify,
    SetDifficulty,
    SetExtranonce,
    Submit,
    SubmitResult,
    Subscribe,
    SuggestDifficulty,
    SuggestTarget,
)
from stratumkit.protocol.jsonrpc import RequestId
from stratumkit.protocol.server import EXTRANONCE2_SIZES, ServerConnection, ServerState

from .work import MinerJob

#: Jobs kept for share checks (the pool's stale window is a few jobs).
MAX_JOBS = 16
#: Seconds of accepted shares behind the observed rate.
RATE_WINDOW = 60.0
#: Shares remembered per job for the duplicate check.
MAX_SEEN_PER_JOB = 4096


@dataclass(frozen=True, slots=True)
class UpstreamShare:
    """A checked share for the pool: submit it as the agent's worker, then call ``sent``."""

    token: int
    job_id: str
    extranonce2: str
    ntime: str
    nonce: str


@dataclass
class LocalMiner:
    conn: ServerConnection
    slot: int
    held: list[RequestId] = field(default_factory=list)  # subscribes waiting for an upstream session
    closing: bool = False  # flush what is queued, then close


@dataclass
class _Pending:
    miner: int
    request_id: RequestId
    difficulty: float


class Relay:
    def __init__(self, endpoint: tuple[str, int] = ("127.0.0.1", 0)) -> None:
        self.endpoint = endpoint  # where a reconnect sends local miners back to
        self.miners: dict[int, LocalMiner] = {}
        self.extranonce1: str | None = None
        self.extranonce2_size: int | None = None
        self.difficulty: float | None = None
        self.jobs: OrderedDict[str, MinerJob] = OrderedDict()
        self.latest: Notify | None = None
        self.withholding = False
        self.accepted = 0
        self.rejected = 0  # by the pool
        self.refused = 0  # here, before the pool saw them
        self.extranonces_sent = 0  # mining.set_extranonce to subscribers after an upstream change
        self.reconnects_sent = 0  # client.reconnect to the others
        self.upstream: deque[UpstreamShare] = deque()
        self._pending: dict[int, _Pending] = {}  # share token -> who sent it
        self._sent: dict[RequestId, int] = {}  # upstream request id -> token
        self._seen: dict[str, set[tuple[str, str, str, str]]] = {}
        self._tokens = 0
        self._next_id = 0
        self._accepted_at: deque[tuple[float, float]] = deque()

    # -- local miners ------------------------------------------------------------------------

    @property
    def _split(self) -> bool:
        return self.extranonce2_size is not None and self.extranonce2_size - 1 >= EXTRANONCE2_SIZES[0]

    def add_miner(self) -> int | None:
        """A new local connection: its id, or None when every slot is taken (close it)."""
        slots = 256 if self._split or self.extranonce2_size is None else 1
        used = {m.slot for m in self.miners.values()}
        free = next((s for s in range(slots) if s not in used), None)
        if free is None:
            return None
        self._next_id += 1
        self.miners[self._next_id] = LocalMiner(ServerConnection(), free)
        return self._next_id

    def local_extranonce(self, miner: LocalMiner) -> tuple[str, int]:
        assert self.extranonce1 is not None and self.extranonce2_size is not None
        if self._split:
            return self.extranonce1 + f"{miner.slot:02x}", self.extranonce2_size - 1
        return self.extranonce1, self.extranonce2_size

    def miner_data(self, mid: int, data: bytes, now: float) -> None:
        """Bytes from a local miner (``b""``: it closed)."""
        miner = self.miners.get(mid)
        if miner is None:
            return
        for event in miner.conn.receive_data(data):
            self._on_miner_event(mid, miner, event, now)
        if miner.conn.state in (ServerState.CLOSED, ServerState.ERROR):
            miner.closing = True

    def data_for(self, mid: int) -> bytes:
        miner = self.miners.get(mid)
        return miner.conn.data_to_send() if miner is not None else b""

    def should_close(self, mid: int) -> bool:
        miner = self.miners.get(mid)
        return miner is None or miner.closing

    def remove_miner(self, mid: int) -> None:
        self.miners.pop(mid, None)
        for token, pending in list(self._pending.items()):
            if pending.miner == mid:
                del self._pending[token]

    def _on_miner_event(self, mid: int, miner: LocalMiner, event: Event, now: float) -> None:
        conn = miner.conn
        if isinstance(event, Subscribe):
            if self.extranonce1 is None or self.withholding:
                miner.held.append(event.id)
            else:
                self._grant(miner, event.id)
        elif isinstance(event, Authorize):
            conn.respond(event.id, True)
            self._send_work(miner)
        elif isinstance(event, Configure):
            conn.respond_configure(event.id, subscribe_extranonce=True)
        elif isinstance(event, ExtranonceSubscribe | SuggestDifficulty | SuggestTarget):
            conn.respond(event.id, True)
        elif isinstance(event, Submit):
            self._on_submit(mid, miner, event)
        elif isinstance(event, ConnectionClosed):
            miner.closing = True

    def _grant(self, miner: LocalMiner, request_id: RequestId) -> None:
        extranonce1, size = self.local_extranonce(miner)
        miner.conn.respond_subscribe(request_id, extranonce1, size)
        self._send_work(miner)

    def _send_work(self, miner: LocalMiner) -> None:
        conn = miner.conn
        if conn.state is not ServerState.AUTHORIZED or self.withholding:
            return
        if self.difficulty is not None:
            conn.send_set_difficulty(self.difficulty)
        if self.latest is not None:
            conn.send_notify(_clean(self.latest))

    def _refuse(self, conn: ServerConnection, request_id: RequestId, code: ErrorCode, message: str) -> None:
        self.refused += 1
        conn.respond_error(request_id, int(code), message)

    def _on_submit(self, mid: int, miner: LocalMiner, submit: Submit) -> None:
        conn = miner.conn
        job = self.jobs.get(submit.job_id)
        if job is None or self.withholding:
            self._refuse(conn, submit.id, ErrorCode.JOB_NOT_FOUND, "stale or unknown job")
            return
        _, size = self.local_extranonce(miner)
        if len(submit.extranonce2) != 2 * size or len(submit.ntime) != 8 or len(submit.nonce) != 8:
            self._refuse(
                conn, submit.id, ErrorCode.OTHER, f"extranonce2 must be {2 * size} hex digits, ntime and nonce 8"
            )
            return
        try:
            extranonce1, _ = self.local_extranonce(miner)
            header = job.header76(
                bytes.fromhex(extranonce1), bytes.fromhex(submit.extranonce2), ntime=int(submit.ntime, 16)
            ) + struct.pack("<I", int(submit.nonce, 16))
        except ValueError:
            self._refuse(conn, submit.id, ErrorCode.OTHER, "extranonce2, ntime and nonce must be hex")
            return
        key = (submit.extranonce2.lower(), submit.ntime.lower(), submit.nonce.lower(), extranonce1)
        seen = self._seen.setdefault(submit.job_id, set())
        if key in seen:
            self._refuse(conn, submit.id, ErrorCode.DUPLICATE, "duplicate share")
            return
        if int.from_bytes(sha256d(header), "little") > job.share_target:
            self._refuse(conn, submit.id, ErrorCode.LOW_DIFFICULTY, "low difficulty share")
            return
        if len(seen) < MAX_SEEN_PER_JOB:
            seen.add(key)
        self._tokens += 1
        prefix = f"{miner.slot:02x}" if self._split else ""
        self._pending[self._tokens] = _Pending(mid, submit.id, job.difficulty)
        self.upstream.append(
            UpstreamShare(self._tokens, submit.job_id, prefix + submit.extranonce2.lower(), submit.ntime, submit.nonce)
        )

    # -- the upstream session ----------------------------------------------------------------

    def sent(self, token: int, request_id: RequestId) -> None:
        """The shell submitted ``token`` upstream under ``request_id``."""
        self._sent[request_id] = token

    def upstream_subscribed(self, extranonce1: str, extranonce2_size: int, *, keep_jobs: bool = False) -> None:
        """A new upstream session, or its set_extranonce (whose jobs start from nothing).
        ``keep_jobs``: the jobs already seen belong to this session (the pool sent them while
        the agent finished its handshake)."""
        changed = (extranonce1, extranonce2_size) != (self.extranonce1, self.extranonce2_size)
        split_before = self._split
        self.extranonce1, self.extranonce2_size = extranonce1, extranonce2_size
        if not keep_jobs:
            self.jobs.clear()
            self._seen.clear()
            self.latest = None
        for miner in self.miners.values():
            if miner.closing:
                continue
            if miner.conn.state in (ServerState.SUBSCRIBED, ServerState.AUTHORIZED) and changed:
                local1, size = self.local_extranonce(miner)
                if miner.conn.extranonce_subscribed and split_before == self._split:
                    miner.conn.send_set_extranonce(local1, size)
                    self.extranonces_sent += 1
                    self._send_work(miner)
                else:
                    host, port = self.endpoint
                    miner.conn.send_reconnect(host, port, 0)
                    self.reconnects_sent += 1
                    miner.closing = True
            held, miner.held = miner.held, []
            if not self.withholding:
                for request_id in held:
                    self._grant(miner, request_id)

    def upstream_event(self, event: Event, now: float) -> None:
        if isinstance(event, SetDifficulty):
            self.difficulty = event.difficulty
            self._broadcast(lambda conn: conn.send_set_difficulty(event.difficulty))
        elif isinstance(event, Notify):
            if event.clean_jobs:
                self.jobs.clear()
                self._seen.clear()
            self.jobs[event.job_id] = MinerJob.from_notify(event, self.difficulty or 1.0)
            while len(self.jobs) > MAX_JOBS:
                old, _ = self.jobs.popitem(last=False)
                self._seen.pop(old, None)
            self.latest = event
            self._broadcast(lambda conn: conn.send_notify(event))
        elif isinstance(event, SetExtranonce):
            self.upstream_subscribed(event.extranonce1, event.extranonce2_size)
        elif isinstance(event, SubmitResult):
            token = self._sent.pop(event.id, None)
            pending = self._pending.pop(token, None) if token is not None else None
            if event.accepted and pending is not None:
                self.accepted += 1
                self._accepted_at.append((now, pending.difficulty))
            elif not event.accepted:
                self.rejected += 1
            if pending is None or pending.miner not in self.miners:
                return
            conn = self.miners[pending.miner].conn
            if conn.state in (ServerState.CLOSED, ServerState.ERROR):
                return
            if event.accepted:
                conn.respond(pending.request_id, True)
            else:
                conn.respond_error(pending.request_id, event.code or int(ErrorCode.OTHER), event.message or "rejected")

    def upstream_lost(self) -> None:
        """The pool connection ended: its jobs are void, shares waiting for it are answered 20."""
        self.jobs.clear()
        self._seen.clear()
        self.latest = None
        self.upstream.clear()
        self._sent.clear()
        for pending in self._pending.values():
            miner = self.miners.get(pending.miner)
            if miner is not None and miner.conn.state not in (ServerState.CLOSED, ServerState.ERROR):
                miner.conn.respond_error(pending.request_id, int(ErrorCode.OTHER), "the pool connection was lost")
        self._pending.clear()

    def _broadcast(self, send: Callable[[ServerConnection], None]) -> None:
        if self.withholding:
            return
        for miner in self.miners.values():
            if miner.conn.state is ServerState.AUTHORIZED and not miner.closing:
                send(miner.conn)

    # -- divert and return -------------------------------------------------------------------

    def withhold(self) -> None:
        self.withholding = True
        for miner in self.miners.values():
            miner.closing = True

    def release(self) -> None:
        self.withholding = False
        for miner in self.miners.values():
            held, miner.held = miner.held, []
            if self.extranonce1 is not None:
                for request_id in held:
                    self._grant(miner, request_id)
            else:
                miner.held = held

    def observed_hashrate(self, now: float) -> float:
        while self._accepted_at and self._accepted_at[0][0] < now - RATE_WINDOW:
            self._accepted_at.popleft()
        return sum(d for _, d in self._accepted_at) * 2**32 / RATE_WINDOW


def _clean(notify: Notify) -> Notify:
    """The same job with clean_jobs set: a miner that just connected drops whatever it had."""
    return notify if notify.clean_jobs else replace(notify, clean_jobs=True)
