"""Inference job queues: the `QueueEngine` interface and its engines.

`stratumkit.queue.sqlite` is the embedded default (one file, no server); `stratumkit.queue.redis`
shares queues between processes and hosts through Redis. The Redis engine imports coredis,
so it is not imported here: import it from its module when you need it.
"""

from .engine import (
    DEFAULT_MAX_DELIVERIES,
    MAX_VISIBILITY_TIMEOUT,
    ClaimedJob,
    DeadLetter,
    InvalidArgument,
    Job,
    JobInfo,
    JobResult,
    QueueClosed,
    QueueEngine,
    QueueError,
    QueueStats,
    StaleClaim,
    UnknownJob,
    wait_result,
)
from .sqlite import SqliteQueueEngine, open_sqlite_queue

__all__ = [
    "DEFAULT_MAX_DELIVERIES",
    "MAX_VISIBILITY_TIMEOUT",
    "ClaimedJob",
    "DeadLetter",
    "InvalidArgument",
    "Job",
    "JobInfo",
    "JobResult",
    "QueueClosed",
    "QueueEngine",
    "QueueError",
    "QueueStats",
    "SqliteQueueEngine",
    "StaleClaim",
    "UnknownJob",
    "open_sqlite_queue",
    "wait_result",
]
