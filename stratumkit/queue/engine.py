"""The inference job queue: one interface, several engines.

A lease's integrator enqueues jobs; the leased rigs run them, claiming them through their pool
connection (the pool's lease service is the queue's consumer on each rig's behalf). Rigs get killed
mid-job and pool processes restart, so every engine keeps the same contract:

- At-least-once delivery. A job is never lost: a claim that is neither acknowledged nor kept alive
  by `heartbeat` before its visibility timeout runs out makes the job claimable again.
- Exactly one recorded result per job. Each delivery carries a claim token; only the newest
  delivery of a job may record its result, and only once. An ack from a superseded delivery (a rig
  presumed dead that finishes late), or a second ack for a job that already has a result, returns
  False and records nothing. Repeating the ack of the delivery whose result was recorded returns
  True again, so a rig may retry an ack whose reply it lost.
- A claim's token stays current until someone else claims the job, the job is released (`nack`,
  `requeue_consumer`) or it completes: a slow rig whose claim ran out but whose job nobody has taken
  yet may still heartbeat or ack it.
- A job delivered `max_deliveries` times that is released again (nack, expiry, dead rig) goes to the
  queue's dead letters instead of back to ready.
- Payloads and results are msgpack-able dicts; engines store the msgpack bytes.
- Batches (`enqueue_many`, `ack_many`, `ack_and_claim`; `claim` takes `max_jobs`) are one round trip and one
  atomic step: the same answers as the single calls made one after another, all applied or none,
  and durable exactly as a single call is once they return. They exist for throughput: a round
  trip (and, on a durable store, an fsync) per batch instead of per job.
- Time: deadlines are wall-clock seconds (they are stored, and must mean the same thing after a
  restart). The embedded engine takes its clock as a parameter so tests can drive it; the Redis
  engine uses the server's clock.

This module holds the values, the errors, the `QueueEngine` protocol and the shared argument checks.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import msgpack
import trio

#: Deliveries a job gets before it is dead-lettered, when `enqueue` is not told otherwise.
DEFAULT_MAX_DELIVERIES = 5
#: Longest visibility timeout a claim or heartbeat may ask for (the Redis engine encodes deadlines
#: as idle times below this bound).
MAX_VISIBILITY_TIMEOUT = 7 * 24 * 3600.0
#: Reason recorded on a job dead-lettered for running out of deliveries.
REASON_MAX_DELIVERIES = "max_deliveries"

_NAME_RE = re.compile(r"[A-Za-z0-9_.:@/\-]{1,200}")


class QueueError(Exception):
    """Base class of every error the queue engines raise."""


class InvalidArgument(QueueError, ValueError):
    """A name, timeout, count or payload the engine cannot accept."""


class UnknownJob(QueueError, LookupError):
    """No job with this id was ever enqueued."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"unknown job {job_id!r}")
        self.job_id = job_id


class StaleClaim(QueueError):
    """The claim no longer holds its job: redelivered, released, completed or dead-lettered."""

    def __init__(self, job_id: str, token: str) -> None:
        super().__init__(f"claim {token!r} on job {job_id!r} is no longer current")
        self.job_id = job_id
        self.token = token


class QueueClosed(QueueError):
    """The engine was closed."""


@dataclass(frozen=True)
class Job:
    """A job as stored: what was enqueued and how often it has been delivered."""

    job_id: str
    queue: str
    payload: dict[str, Any]
    deliveries: int
    max_deliveries: int


@dataclass(frozen=True)
class NewJob:
    """One job of an `enqueue_many` batch: the arguments `enqueue` takes."""

    payload: dict[str, Any]
    job_id: str | None = None
    max_deliveries: int = DEFAULT_MAX_DELIVERIES


@dataclass(frozen=True)
class ClaimedJob:
    """One delivery of a job to one consumer.

    `token` is opaque and names this delivery: acks, heartbeats and nacks are checked against it.
    `deadline` is the wall-clock time (engine clock) after which the job may go to someone else.
    """

    job_id: str
    queue: str
    payload: dict[str, Any]
    deliveries: int
    max_deliveries: int
    consumer: str
    token: str
    visibility_timeout: float
    deadline: float


@dataclass(frozen=True)
class JobResult:
    """The one recorded result of a job, and which delivery produced it."""

    job_id: str
    queue: str
    payload: dict[str, Any]
    consumer: str
    deliveries: int
    completed_at: float


@dataclass(frozen=True)
class DeadLetter:
    """A job that was taken out of circulation, and why."""

    job: Job
    reason: str
    dead_at: float


@dataclass(frozen=True)
class JobInfo:
    """Where a job stands and when things happened to it (wall-clock seconds, engine clock).

    `state` is "pending" (waiting or claimed), "done" (it has a result) or "dead" (dead-lettered).
    `claimed_at` is the latest delivery's claim, None before the first; `completed_at` is when
    its result was recorded. `cause` is the last cause a consumer gave when it released the job
    (`nack(..., cause=)`), kept with the job so it outlives the process that heard it."""

    job_id: str
    queue: str
    state: str
    enqueued_at: float
    claimed_at: float | None
    completed_at: float | None
    cause: str | None


@dataclass(frozen=True)
class QueueStats:
    """Counts for one queue. `ready` includes claims whose visibility timeout has run out."""

    queue: str
    ready: int
    in_flight: int
    done: int
    dead: int


@runtime_checkable
class QueueEngine(Protocol):
    """What a job queue engine offers.

    One part of the program calls it: the pool's lease service, which enqueues jobs and reads
    results for the HTTP API, and claims, heartbeats, acks and releases jobs for rigs (the rig id
    is the consumer name). The lease controller never touches a queue (its actions only name
    one), and the rig agent reaches jobs only through its pool connection.
    """

    async def enqueue(
        self,
        queue: str,
        payload: dict[str, Any],
        *,
        job_id: str | None = None,
        max_deliveries: int = DEFAULT_MAX_DELIVERIES,
    ) -> str:
        """Add a job and return its id. With a caller-supplied `job_id` a repeat is a no-op that
        returns the same id (the first payload wins); reusing an id on another queue is an
        `InvalidArgument`."""
        ...

    async def enqueue_many(self, queue: str, jobs: Sequence[NewJob]) -> list[str]:
        """Add a batch of jobs at once and return their ids in order; each job as `enqueue` would
        treat it (a repeated id, in the store or earlier in the batch, is a no-op). An id used on
        another queue, or any bad argument, is an `InvalidArgument` and nothing is enqueued."""
        ...

    async def claim(
        self, queue: str, consumer: str, visibility_timeout: float, *, max_jobs: int = 1
    ) -> list[ClaimedJob]:
        """Take up to `max_jobs` jobs: expired claims first (oldest first), then new jobs in
        enqueue order. Returns an empty list when there is nothing to do; never waits."""
        ...

    async def heartbeat(self, claim: ClaimedJob, visibility_timeout: float | None = None) -> ClaimedJob:
        """Push the claim's deadline to now + timeout (default: the claim's own timeout).
        Raises `StaleClaim` if the claim was superseded, so the rig can stop early."""
        ...

    async def ack(self, claim: ClaimedJob, result: dict[str, Any]) -> bool:
        """Record `result`. True if the job's recorded result is this delivery's; False if this
        ack was refused (superseded delivery, or another delivery's result is recorded)."""
        ...

    async def ack_many(self, acks: Sequence[tuple[ClaimedJob, dict[str, Any]]]) -> list[bool]:
        """Record a batch of results at once: for each (claim, result), what `ack` would answer,
        in order. A claim on a job never enqueued is an `UnknownJob`, a bad result an
        `InvalidArgument`, and then nothing is recorded."""
        ...

    async def ack_and_claim(
        self,
        acks: Sequence[tuple[ClaimedJob, dict[str, Any]]],
        queue: str,
        consumer: str,
        visibility_timeout: float,
        *,
        max_jobs: int = 1,
    ) -> tuple[list[bool], list[ClaimedJob]]:
        """`ack_many(acks)` then `claim(...)` as one step: a consumer handing in a batch's results
        and asking for the next batch in one round trip (one commit, one fsync). The acks are
        recorded first, so the claim never returns a job just acked. An unknown job or bad result
        raises as `ack_many` would, and then nothing is recorded or claimed; an empty `acks` is a
        plain claim."""
        ...

    async def nack(self, claim: ClaimedJob, *, cause: str | None = None) -> None:
        """Give the job back: ready again, or dead-lettered if out of deliveries. A `cause` (why
        the consumer could not run it) is stored with the job (`info`), replacing an earlier one.
        Raises `StaleClaim` if the claim was superseded."""
        ...

    async def requeue_consumer(self, consumer: str) -> int:
        """Release every claim `consumer` holds, on every queue (a rig known dead). Returns how
        many jobs were released; those out of deliveries are dead-lettered."""
        ...

    async def result(self, job_id: str) -> JobResult | None:
        """The recorded result, or None while there is none. `UnknownJob` for an unknown id."""
        ...

    async def stats(self, queue: str) -> QueueStats:
        """Counts of ready, in-flight, done and dead jobs."""
        ...

    async def dead_letters(self, queue: str, *, limit: int = 100) -> list[DeadLetter]:
        """The oldest `limit` dead-lettered jobs of `queue`."""
        ...

    async def dead_letter(self, job_id: str) -> DeadLetter | None:
        """The job's dead letter if it was taken out of circulation, else None (UnknownJob for
        an id never enqueued): how a caller waiting on a result learns it will never come."""
        ...

    async def info(self, job_id: str) -> JobInfo:
        """The job's state, times and last cause. `UnknownJob` for an unknown (or expired) id."""
        ...

    async def expire_results(self, before: float) -> int:
        """Forget finished jobs whose result was recorded before wall-clock time `before`: the
        result and the job (its id becomes unknown, and may be enqueued again). Returns how many."""
        ...

    async def close(self) -> None:
        """Release the engine's resources; later calls raise `QueueClosed`."""
        ...


async def wait_result(engine: QueueEngine, job_id: str, *, poll_interval: float = 0.1) -> JobResult:
    """Poll until the job has a result. A dead-lettered job never gets one: bound the wait with
    `trio.fail_after` / `trio.move_on_after`."""
    check_positive("poll_interval", poll_interval)
    while True:
        found = await engine.result(job_id)
        if found is not None:
            return found
        await trio.sleep(poll_interval)


# --- shared argument checks and codecs ------------------------------------------------------


def check_new_job(job: NewJob) -> tuple[str, bytes, int]:
    """(job id, payload bytes, max deliveries) of a job to enqueue; a fresh id when it has none."""
    if not isinstance(job, NewJob):
        raise InvalidArgument(f"a batch holds NewJob values, not {type(job).__name__}")
    job_id = new_job_id() if job.job_id is None else check_name("job_id", job.job_id)
    check_count("max_deliveries", job.max_deliveries)
    return job_id, pack_payload("payload", job.payload), job.max_deliveries


def check_batch(kind: str, items: object) -> None:
    if isinstance(items, str | bytes | Mapping) or not isinstance(items, Sequence):
        raise InvalidArgument(f"{kind} must be a list, not {type(items).__name__}")


def check_name(kind: str, value: object) -> str:
    """Queue, consumer and job names: 1-200 characters of [A-Za-z0-9_.:@/-]."""
    if not isinstance(value, str) or _NAME_RE.fullmatch(value) is None:
        raise InvalidArgument(f"{kind} must be 1-200 characters of letters, digits and _.:@/-, got {value!r}")
    return value


def check_positive(kind: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise InvalidArgument(f"{kind} must be a positive number, got {value!r}")
    return float(value)


def check_visibility_timeout(value: object) -> float:
    seconds = check_positive("visibility_timeout", value)
    if seconds > MAX_VISIBILITY_TIMEOUT:
        raise InvalidArgument(f"visibility_timeout must be at most {MAX_VISIBILITY_TIMEOUT:.0f} s, got {seconds}")
    return seconds


#: Longest release cause kept with a job (characters); longer ones are cut.
MAX_CAUSE = 1000


def check_cause(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidArgument(f"cause must be a string, not {type(value).__name__}")
    return value[:MAX_CAUSE]


def check_count(kind: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidArgument(f"{kind} must be an integer >= 1, got {value!r}")
    return value


def new_job_id() -> str:
    """128 random bits as 32 hex digits (the shape of `uuid4().hex`), a fifth of its cost: one
    per job enqueued without an id of its own."""
    return os.urandom(16).hex()


#: One msgpack packer per thread (the SQLite engine packs in worker threads too): `packb` makes a
#: new packer, and its buffer, for every call, half the cost of packing a small payload.
_packers = threading.local()


def pack_payload(kind: str, value: object) -> bytes:
    """msgpack bytes of a payload or result dict."""
    if not isinstance(value, Mapping):
        raise InvalidArgument(f"{kind} must be a dict, not {type(value).__name__}")
    packer = getattr(_packers, "packer", None)
    if packer is None:
        packer = _packers.packer = msgpack.Packer(use_bin_type=True)
    try:
        packed: bytes = packer.pack(value if type(value) is dict else dict(value))
    except (TypeError, ValueError, OverflowError) as exc:
        packer.reset()  # whatever part of the value it packed before it failed
        raise InvalidArgument(f"{kind} is not msgpack-able: {exc}") from exc
    return packed


def unpack_payload(data: bytes) -> dict[str, Any]:
    value = msgpack.unpackb(data, raw=False, strict_map_key=False)
    if not isinstance(value, dict):
        raise QueueError(f"stored payload is a {type(value).__name__}, not a dict")
    return value
