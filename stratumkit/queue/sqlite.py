"""The embedded queue engine: one SQLite file, no server.

Crash contract (WAL mode, synchronous=FULL, every call whole inside one committed transaction):
- A call that returned has committed and fsynced its transaction. An `enqueue` or `ack` that
  returned survives a kill -9 of the process, and a power cut on a disk that honours fsync.
- A call cut short by a crash, or cancelled once it was queued, happened whole or not at all.
  Retrying it is safe: `enqueue` with the same job_id is a no-op, and repeating the ack of the
  recorded delivery answers True.
- A claim whose reply was lost in a crash holds its job until its visibility timeout runs out;
  then the job is delivered again (at-least-once, never lost).

Concurrency rules:
- One connection per engine, used by one worker thread at a time: every call takes a trio.Lock
  and runs its transaction in `trio.to_thread.run_sync` (never abandoned on cancel, so the lock
  is held until SQLite is done).
- Group commit: writes that queue up behind a running transaction run together in the next one,
  each in its own savepoint (a call that fails is rolled back alone and raises to its caller), so
  concurrent callers share one commit and one fsync. Reads run on their own.
- `offload=False` runs each transaction on the trio thread instead. It blocks the event loop for
  the length of a transaction (an fsync), but trio's autojump clock counts time spent waiting on
  a worker thread as idle and jumps ahead during it; tests that use that clock need this mode.
- Several engines, in one process or many, may share a file: each call is one BEGIN IMMEDIATE
  transaction, so two claimers never take the same job and an ack's check-and-record is atomic.
- Time comes from the injected `clock` (wall-clock seconds by default; deadlines are stored and
  must mean the same after a restart).

Schema: versioned with PRAGMA user_version (`SCHEMA_VERSION`) and marked with PRAGMA
application_id, so the engine refuses a foreign SQLite file or one written by newer code.
"""

from __future__ import annotations

import dataclasses
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any, TypeVar

import trio

from .engine import (
    DEFAULT_MAX_DELIVERIES,
    REASON_MAX_DELIVERIES,
    ClaimedJob,
    DeadLetter,
    InvalidArgument,
    Job,
    JobInfo,
    JobResult,
    NewJob,
    QueueClosed,
    QueueError,
    QueueStats,
    StaleClaim,
    UnknownJob,
    check_batch,
    check_cause,
    check_count,
    check_name,
    check_new_job,
    check_visibility_timeout,
    pack_payload,
    unpack_payload,
)

SCHEMA_VERSION = 2
#: PRAGMA application_id of a queue database: "SKQ1".
APPLICATION_ID = 0x534B5131

_T = TypeVar("_T")
#: Jobs one transaction of `expire_results` forgets.
EXPIRE_CHUNK = 1000

_SCHEMA_V1 = """
CREATE TABLE jobs (
    seq                INTEGER PRIMARY KEY,
    job_id             TEXT NOT NULL UNIQUE,
    queue              TEXT NOT NULL,
    payload            BLOB NOT NULL,
    max_deliveries     INTEGER NOT NULL CHECK (max_deliveries >= 1),
    deliveries         INTEGER NOT NULL DEFAULT 0,
    state              TEXT NOT NULL CHECK (state IN ('ready', 'claimed', 'done', 'dead')),
    consumer           TEXT,
    token              TEXT,
    visibility_timeout REAL,
    deadline           REAL,
    enqueued_at        REAL NOT NULL,
    dead_reason        TEXT,
    dead_at            REAL
);
CREATE INDEX jobs_queue_state ON jobs (queue, state, seq);
CREATE INDEX jobs_claimed_deadline ON jobs (queue, deadline) WHERE state = 'claimed';
CREATE INDEX jobs_claimed_consumer ON jobs (consumer) WHERE state = 'claimed';
CREATE TABLE results (
    job_id       TEXT PRIMARY KEY REFERENCES jobs (job_id),
    token        TEXT NOT NULL,
    consumer     TEXT NOT NULL,
    deliveries   INTEGER NOT NULL,
    payload      BLOB NOT NULL,
    completed_at REAL NOT NULL
) WITHOUT ROWID;
"""

#: Version 2: when each job was last claimed, the last cause a consumer gave back with it, and
#: results findable by age (their expiry). A version 1 file is brought up to it when opened.
_MIGRATE_V2 = """
ALTER TABLE jobs ADD COLUMN claimed_at REAL;
ALTER TABLE jobs ADD COLUMN last_cause TEXT;
CREATE INDEX results_completed ON results (completed_at);
"""

#: Releasing a claim: back to ready, or dead-lettered when it has used all its deliveries.
_RELEASE_SET = """
    state = CASE WHEN deliveries >= max_deliveries THEN 'dead' ELSE 'ready' END,
    dead_reason = CASE WHEN deliveries >= max_deliveries THEN :reason END,
    dead_at = CASE WHEN deliveries >= max_deliveries THEN :now END,
    consumer = NULL, token = NULL, deadline = NULL, visibility_timeout = NULL
"""

#: A claim's new delivery (positional: consumer, timeout, deadline, now), and what it gives back.
_CLAIM_UPDATE = (
    "UPDATE jobs SET state = 'claimed', consumer = ?, token = lower(hex(randomblob(16))),"
    " deliveries = deliveries + 1, visibility_timeout = ?, deadline = ?, claimed_at = ?"
)
_CLAIM_RETURNING = "RETURNING seq, job_id, payload, deliveries, max_deliveries, token"


@contextmanager
def _write(conn: sqlite3.Connection) -> Iterator[None]:
    """One write transaction, taken up front so concurrent writers queue instead of deadlocking;
    inside a group's transaction (`_run_group`), a savepoint: the call is whole or not at all."""
    if conn.in_transaction:
        conn.execute("SAVEPOINT call")
        try:
            yield
        except BaseException:
            conn.execute("ROLLBACK TO call")
            conn.execute("RELEASE call")
            raise
        conn.execute("RELEASE call")
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _statements(conn: sqlite3.Connection, script: str) -> None:
    """One by one: executescript() would COMMIT the open transaction first."""
    for statement in script.split(";"):
        if statement.strip():
            conn.execute(statement)


def _connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
    try:
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode != "wal":
            raise QueueError(f"{path!r} cannot use WAL mode (got {mode!r}): use a file on disk")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        with _write(conn):
            app_id = conn.execute("PRAGMA application_id").fetchone()[0]
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if app_id == 0 and version == 0:
                if conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
                    raise QueueError(f"{path!r} is an SQLite database of something else")
                _statements(conn, _SCHEMA_V1)
                conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                version = 1
            elif app_id != APPLICATION_ID:
                raise QueueError(f"{path!r} is not a queue database (application_id {app_id:#x})")
            elif version > SCHEMA_VERSION:
                raise QueueError(f"{path!r} has schema version {version}; this code knows up to {SCHEMA_VERSION}")
            if version < 2:
                _statements(conn, _MIGRATE_V2)
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    except BaseException:
        conn.close()
        raise
    return conn


@dataclasses.dataclass(eq=False)
class _Call:
    """A write waiting for its group: the transaction function, its arguments, what it gave."""

    fn: Callable[..., Any]
    args: tuple[Any, ...]
    result: Any = None
    error: BaseException | None = None
    done: bool = False


def _run_group(conn: sqlite3.Connection, calls: list[_Call]) -> None:
    """The calls in one transaction (one commit, one fsync); each `_write` is a savepoint in it."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        for call in calls:
            try:
                call.result = call.fn(conn, *call.args)
            except Exception as exc:  # rolled back to its savepoint: the others go on
                if not conn.in_transaction:  # unless SQLite gave up the whole transaction
                    raise
                call.error = exc
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


class SqliteQueueEngine:
    """`QueueEngine` on one SQLite file. Open it with `open_sqlite_queue` or `await open()`."""

    def __init__(self, conn: sqlite3.Connection, clock: Callable[[], float], *, offload: bool = True) -> None:
        self._conn: sqlite3.Connection | None = conn
        self._clock = clock
        self._offload = offload
        self._lock = trio.Lock()
        self._pending: list[_Call] = []  # writes waiting for the lock, run as the next group

    @classmethod
    async def open(
        cls,
        path: str | os.PathLike[str],
        *,
        clock: Callable[[], float] = time.time,
        offload: bool = True,
    ) -> SqliteQueueEngine:
        if offload:
            conn = await trio.to_thread.run_sync(_connect, os.fspath(path))
        else:
            conn = _connect(os.fspath(path))
        return cls(conn, clock, offload=offload)

    async def __aenter__(self) -> SqliteQueueEngine:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _run(self, fn: Callable[..., _T], *args: Any) -> _T:
        """A read, alone under the lock."""
        async with self._lock:
            conn = self._conn
            if conn is None:
                raise QueueClosed("the queue engine is closed")
            if self._offload:
                return await trio.to_thread.run_sync(fn, conn, *args)
            await trio.lowlevel.checkpoint()
            return fn(conn, *args)

    async def _run_write(self, fn: Callable[..., _T], *args: Any) -> _T:
        """A write: queued, then run in the group of every write queued by the time its turn
        comes (the lock holder runs them all; the rest find theirs done)."""
        call = _Call(fn, args)
        self._pending.append(call)
        try:
            async with self._lock:
                if not call.done:
                    # One more turn of the scheduler first: writers made runnable together with
                    # this one (trio runs a batch of tasks in random order) join its group.
                    await trio.lowlevel.cancel_shielded_checkpoint()
                    group, self._pending = self._pending, []
                    await self._run_locked(group)
        except BaseException:
            if call in self._pending:  # cancelled before any group took it: it never runs
                self._pending.remove(call)
            raise
        if call.error is not None:
            raise call.error
        result: _T = call.result
        return result

    async def _run_locked(self, group: list[_Call]) -> None:
        try:
            conn = self._conn
            if conn is None:
                raise QueueClosed("the queue engine is closed")
            if self._offload:
                await trio.to_thread.run_sync(_run_group, conn, group)
            else:
                _run_group(conn, group)
        except BaseException as exc:  # nothing of the group committed
            for call in group:
                call.result, call.error = None, exc
            raise
        finally:
            for call in group:
                call.done = True

    # --- QueueEngine ---------------------------------------------------------------------------

    async def enqueue(
        self,
        queue: str,
        payload: dict[str, Any],
        *,
        job_id: str | None = None,
        max_deliveries: int = DEFAULT_MAX_DELIVERIES,
    ) -> str:
        [job_id] = await self.enqueue_many(queue, [NewJob(payload, job_id, max_deliveries)])
        return job_id

    async def enqueue_many(self, queue: str, jobs: Sequence[NewJob]) -> list[str]:
        check_name("queue", queue)
        check_batch("jobs", jobs)
        rows = [check_new_job(job) for job in jobs]
        if not rows:
            return []
        return await self._run_write(_enqueue_many, queue, rows, self._clock())

    async def claim(
        self, queue: str, consumer: str, visibility_timeout: float, *, max_jobs: int = 1
    ) -> list[ClaimedJob]:
        check_name("queue", queue)
        check_name("consumer", consumer)
        timeout = check_visibility_timeout(visibility_timeout)
        check_count("max_jobs", max_jobs)
        return await self._run_write(_claim, queue, consumer, timeout, max_jobs, self._clock())

    async def heartbeat(self, claim: ClaimedJob, visibility_timeout: float | None = None) -> ClaimedJob:
        timeout = check_visibility_timeout(
            claim.visibility_timeout if visibility_timeout is None else visibility_timeout
        )
        now = self._clock()
        await self._run_write(_heartbeat, claim, timeout, now)
        return dataclasses.replace(claim, visibility_timeout=timeout, deadline=now + timeout)

    async def ack(self, claim: ClaimedJob, result: dict[str, Any]) -> bool:
        [acked] = await self.ack_many([(claim, result)])
        return acked

    async def ack_many(self, acks: Sequence[tuple[ClaimedJob, dict[str, Any]]]) -> list[bool]:
        check_batch("acks", acks)
        packed = [(claim, pack_payload("result", result)) for claim, result in acks]
        if not packed:
            return []
        return await self._run_write(_ack_many, packed, self._clock())

    async def ack_and_claim(
        self,
        acks: Sequence[tuple[ClaimedJob, dict[str, Any]]],
        queue: str,
        consumer: str,
        visibility_timeout: float,
        *,
        max_jobs: int = 1,
    ) -> tuple[list[bool], list[ClaimedJob]]:
        check_batch("acks", acks)
        packed = [(claim, pack_payload("result", result)) for claim, result in acks]
        check_name("queue", queue)
        check_name("consumer", consumer)
        timeout = check_visibility_timeout(visibility_timeout)
        check_count("max_jobs", max_jobs)
        return await self._run_write(_ack_and_claim, packed, queue, consumer, timeout, max_jobs, self._clock())

    async def nack(self, claim: ClaimedJob, *, cause: str | None = None) -> None:
        await self._run_write(_nack, claim, check_cause(cause), self._clock())

    async def requeue_consumer(self, consumer: str) -> int:
        check_name("consumer", consumer)
        return await self._run_write(_requeue_consumer, consumer, self._clock())

    async def result(self, job_id: str) -> JobResult | None:
        check_name("job_id", job_id)
        return await self._run(_result, job_id)

    async def stats(self, queue: str) -> QueueStats:
        check_name("queue", queue)
        return await self._run_write(_stats, queue, self._clock())

    async def dead_letters(self, queue: str, *, limit: int = 100) -> list[DeadLetter]:
        check_name("queue", queue)
        check_count("limit", limit)
        return await self._run(_dead_letters, queue, limit)

    async def dead_letter(self, job_id: str) -> DeadLetter | None:
        check_name("job_id", job_id)
        return await self._run(_dead_letter, job_id)

    async def info(self, job_id: str) -> JobInfo:
        check_name("job_id", job_id)
        return await self._run(_info, job_id)

    async def expire_results(self, before: float) -> int:
        """In transactions of at most `EXPIRE_CHUNK` jobs, so other calls get their turn."""
        total = 0
        while True:
            n = await self._run_write(_expire_results, float(before), EXPIRE_CHUNK)
            total += n
            if n < EXPIRE_CHUNK:
                return total

    async def close(self) -> None:
        async with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None and self._offload:
                await trio.to_thread.run_sync(conn.close)
            elif conn is not None:
                conn.close()


@asynccontextmanager
async def open_sqlite_queue(
    path: str | os.PathLike[str],
    *,
    clock: Callable[[], float] = time.time,
    offload: bool = True,
) -> AsyncIterator[SqliteQueueEngine]:
    """Open (creating if needed) the queue database at `path`; close it on exit."""
    engine = await SqliteQueueEngine.open(path, clock=clock, offload=offload)
    try:
        yield engine
    finally:
        with trio.CancelScope(shield=True):
            await engine.close()


# --- transactions, run in a worker thread -------------------------------------------------------


#: Job ids one `IN (...)` lookup names (well below SQLite's limit on bound parameters).
_LOOKUP_CHUNK = 500


def _enqueue_many(conn: sqlite3.Connection, queue: str, rows: list[tuple[str, bytes, int]], now: float) -> list[str]:
    ids = [job_id for job_id, _, _ in rows]
    with _write(conn):
        for start in range(0, len(ids), _LOOKUP_CHUNK):
            chunk = ids[start : start + _LOOKUP_CHUNK]
            marks = ",".join("?" * len(chunk))
            for job_id, owner in conn.execute(
                f"SELECT job_id, queue FROM jobs WHERE job_id IN ({marks}) AND queue != ?", (*chunk, queue)
            ):
                raise InvalidArgument(f"job id {job_id!r} is already used on queue {owner!r}")
        # A known id (stored, or earlier in this batch) keeps its first payload.
        conn.executemany(
            "INSERT INTO jobs (job_id, queue, payload, max_deliveries, state, enqueued_at)"
            " VALUES (?, ?, ?, ?, 'ready', ?) ON CONFLICT (job_id) DO NOTHING",
            [(job_id, queue, data, max_deliveries, now) for job_id, data, max_deliveries in rows],
        )
    return ids


def _sweep(conn: sqlite3.Connection, queue: str, now: float) -> None:
    """Dead-letter expired claims that have used all their deliveries."""
    conn.execute(
        f"UPDATE jobs SET {_RELEASE_SET}"
        " WHERE queue = :queue AND state = 'claimed' AND deadline <= :now"
        " AND deliveries >= max_deliveries",
        {"queue": queue, "now": now, "reason": REASON_MAX_DELIVERIES},
    )


def _claim(
    conn: sqlite3.Connection, queue: str, consumer: str, timeout: float, max_jobs: int, now: float
) -> list[ClaimedJob]:
    deadline = now + timeout
    with _write(conn):
        _sweep(conn, queue, now)
        expired = [
            row[0]
            for row in conn.execute(
                "SELECT seq FROM jobs WHERE queue = ? AND state = 'claimed' AND deadline <= ?"
                " ORDER BY deadline, seq LIMIT ?",
                (queue, now, max_jobs),
            )
        ]
        # One UPDATE for the expired claims and one for new jobs, each token fresh from SQLite.
        taken: dict[int, tuple[Any, ...]] = {}
        if expired:
            marks = ",".join("?" * len(expired))
            for row in conn.execute(f"{_CLAIM_UPDATE} WHERE seq IN ({marks}) {_CLAIM_RETURNING}",
                                    (consumer, timeout, deadline, now, *expired)):  # fmt: skip
                taken[row[0]] = row
        if len(expired) < max_jobs:
            for row in conn.execute(
                f"{_CLAIM_UPDATE} WHERE seq IN (SELECT seq FROM jobs WHERE queue = ? AND state = 'ready'"
                f" ORDER BY seq LIMIT ?) {_CLAIM_RETURNING}",
                (consumer, timeout, deadline, now, queue, max_jobs - len(expired)),
            ):
                taken[row[0]] = row
        # RETURNING gives rows in no set order: expired claims first (oldest deadline first), then
        # new jobs in enqueue order.
        again = set(expired)
        order = expired + sorted(seq for seq in taken if seq not in again)
        return [
            ClaimedJob(
                job_id=job_id,
                queue=queue,
                payload=unpack_payload(payload),
                deliveries=deliveries,
                max_deliveries=max_deliveries,
                consumer=consumer,
                token=token,
                visibility_timeout=timeout,
                deadline=deadline,
            )
            for _, job_id, payload, deliveries, max_deliveries, token in (taken[seq] for seq in order)
        ]


def _check_current(conn: sqlite3.Connection, claim: ClaimedJob) -> None:
    row = conn.execute("SELECT state, token FROM jobs WHERE job_id = ?", (claim.job_id,)).fetchone()
    if row is None:
        raise UnknownJob(claim.job_id)
    if row[0] != "claimed" or row[1] != claim.token:
        raise StaleClaim(claim.job_id, claim.token)


def _heartbeat(conn: sqlite3.Connection, claim: ClaimedJob, timeout: float, now: float) -> None:
    with _write(conn):
        _check_current(conn, claim)
        conn.execute(
            "UPDATE jobs SET deadline = ?, visibility_timeout = ? WHERE job_id = ?",
            (now + timeout, timeout, claim.job_id),
        )


def _ack_many(conn: sqlite3.Connection, acks: list[tuple[ClaimedJob, bytes]], now: float) -> list[bool]:
    """The batch in a few statements: one lookup of every job and its recorded result, then one
    INSERT and one UPDATE per recorded ack (executemany). Answers as acks made one by one."""
    ids = list(dict.fromkeys(claim.job_id for claim, _ in acks))
    # job id -> (seq, state, current token, recorded result's token)
    known: dict[str, tuple[int, str, str | None, str | None]] = {}
    with _write(conn):  # an UnknownJob rolls back the whole batch
        for start in range(0, len(ids), _LOOKUP_CHUNK):
            chunk = ids[start : start + _LOOKUP_CHUNK]
            marks = ",".join("?" * len(chunk))
            for job_id, seq, state, token, recorded in conn.execute(
                "SELECT j.job_id, j.seq, j.state, j.token, r.token FROM jobs AS j LEFT JOIN results AS r USING (job_id)"
                f" WHERE j.job_id IN ({marks})",
                chunk,
            ):
                known[job_id] = (seq, state, token, recorded)
        answers: list[bool] = []
        results: list[tuple[str, str, str, int, bytes, float]] = []
        done: list[tuple[int]] = []
        for claim, data in acks:
            found = known.get(claim.job_id)
            if found is None:
                raise UnknownJob(claim.job_id)
            seq, state, token, recorded = found
            if recorded is not None:
                answers.append(recorded == claim.token)
            elif state != "claimed" or token != claim.token:
                answers.append(False)
            else:
                results.append((claim.job_id, claim.token, claim.consumer, claim.deliveries, data, now))
                done.append((seq,))
                known[claim.job_id] = (seq, "done", None, claim.token)
                answers.append(True)
        if results:
            conn.executemany(
                "INSERT INTO results (job_id, token, consumer, deliveries, payload, completed_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                results,
            )
            conn.executemany("UPDATE jobs SET state = 'done', token = NULL, deadline = NULL WHERE seq = ?", done)
    return answers


def _ack_and_claim(
    conn: sqlite3.Connection,
    acks: list[tuple[ClaimedJob, bytes]],
    queue: str,
    consumer: str,
    timeout: float,
    max_jobs: int,
    now: float,
) -> tuple[list[bool], list[ClaimedJob]]:
    with _write(conn):  # an UnknownJob among the acks rolls back the claim too
        answers = _ack_many(conn, acks, now) if acks else []
        return answers, _claim(conn, queue, consumer, timeout, max_jobs, now)


def _nack(conn: sqlite3.Connection, claim: ClaimedJob, cause: str | None, now: float) -> None:
    with _write(conn):
        _check_current(conn, claim)
        conn.execute(
            f"UPDATE jobs SET {_RELEASE_SET}, last_cause = coalesce(:cause, last_cause) WHERE job_id = :job_id",
            {"job_id": claim.job_id, "now": now, "reason": REASON_MAX_DELIVERIES, "cause": cause},
        )


def _info(conn: sqlite3.Connection, job_id: str) -> JobInfo:
    row = conn.execute(
        "SELECT j.queue, j.state, j.enqueued_at, j.claimed_at, r.completed_at, j.last_cause"
        " FROM jobs AS j LEFT JOIN results AS r USING (job_id) WHERE j.job_id = ?",
        (job_id,),
    ).fetchone()
    if row is None:
        raise UnknownJob(job_id)
    queue, state, enqueued_at, claimed_at, completed_at, cause = row
    state = "pending" if state in ("ready", "claimed") else state
    return JobInfo(job_id, queue, state, enqueued_at, claimed_at, completed_at, cause)


def _expire_results(conn: sqlite3.Connection, before: float, limit: int) -> int:
    """Up to `limit` of the oldest results recorded before `before`, and their jobs."""
    with _write(conn):
        ids = [
            (row[0],)
            for row in conn.execute(
                "SELECT job_id FROM results WHERE completed_at < ? ORDER BY completed_at LIMIT ?", (before, limit)
            )
        ]
        conn.executemany("DELETE FROM results WHERE job_id = ?", ids)
        conn.executemany("DELETE FROM jobs WHERE job_id = ?", ids)
    return len(ids)


def _requeue_consumer(conn: sqlite3.Connection, consumer: str, now: float) -> int:
    with _write(conn):
        cursor = conn.execute(
            f"UPDATE jobs SET {_RELEASE_SET} WHERE state = 'claimed' AND consumer = :consumer",
            {"consumer": consumer, "now": now, "reason": REASON_MAX_DELIVERIES},
        )
        return cursor.rowcount


def _result(conn: sqlite3.Connection, job_id: str) -> JobResult | None:
    row = conn.execute(
        "SELECT j.queue, r.payload, r.consumer, r.deliveries, r.completed_at"
        " FROM results AS r JOIN jobs AS j USING (job_id) WHERE job_id = ?",
        (job_id,),
    ).fetchone()
    if row is None:
        if conn.execute("SELECT 1 FROM jobs WHERE job_id = ?", (job_id,)).fetchone() is None:
            raise UnknownJob(job_id)
        return None
    queue, payload, consumer, deliveries, completed_at = row
    return JobResult(
        job_id=job_id,
        queue=queue,
        payload=unpack_payload(payload),
        consumer=consumer,
        deliveries=deliveries,
        completed_at=completed_at,
    )


def _stats(conn: sqlite3.Connection, queue: str, now: float) -> QueueStats:
    with _write(conn):
        _sweep(conn, queue, now)
        counts = dict(
            conn.execute("SELECT state, count(*) FROM jobs WHERE queue = ? GROUP BY state", (queue,)).fetchall()
        )
        expired = conn.execute(
            "SELECT count(*) FROM jobs WHERE queue = ? AND state = 'claimed' AND deadline <= ?",
            (queue, now),
        ).fetchone()[0]
    return QueueStats(
        queue=queue,
        ready=counts.get("ready", 0) + expired,
        in_flight=counts.get("claimed", 0) - expired,
        done=counts.get("done", 0),
        dead=counts.get("dead", 0),
    )


def _dead_letter(conn: sqlite3.Connection, job_id: str) -> DeadLetter | None:
    row = conn.execute(
        "SELECT queue, state, payload, deliveries, max_deliveries, dead_reason, dead_at FROM jobs WHERE job_id = ?",
        (job_id,),
    ).fetchone()
    if row is None:
        raise UnknownJob(job_id)
    queue, state, payload, deliveries, max_deliveries, reason, dead_at = row
    if state != "dead":
        return None
    job = Job(job_id=job_id, queue=queue, payload=unpack_payload(payload), deliveries=deliveries,
              max_deliveries=max_deliveries)  # fmt: skip
    return DeadLetter(job=job, reason=reason, dead_at=dead_at)


def _dead_letters(conn: sqlite3.Connection, queue: str, limit: int) -> list[DeadLetter]:
    rows = conn.execute(
        "SELECT job_id, payload, deliveries, max_deliveries, dead_reason, dead_at FROM jobs"
        " WHERE queue = ? AND state = 'dead' ORDER BY dead_at, seq LIMIT ?",
        (queue, limit),
    ).fetchall()
    return [
        DeadLetter(
            job=Job(
                job_id=job_id,
                queue=queue,
                payload=unpack_payload(payload),
                deliveries=deliveries,
                max_deliveries=max_deliveries,
            ),
            reason=reason,
            dead_at=dead_at,
        )
        for job_id, payload, deliveries, max_deliveries, reason, dead_at in rows
    ]
