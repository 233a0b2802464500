"""Whether the job queue answers, as the lease service has seen it.

An outage is any QueueError that is not about the request itself: a bad argument, an unknown job
or a superseded claim say the caller was wrong and the queue is fine; anything else (Redis gone,
a disk error, a closed engine) says the queue is down. The service reports every queue call's
outcome here; /health and /metrics read it, and an outage answers HTTP 503 instead of 400.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from stratumkit.queue.engine import InvalidArgument, QueueError, StaleClaim, UnknownJob

__all__ = ["QueueHealth", "is_outage"]


def is_outage(exc: QueueError) -> bool:
    """True when the error says the queue is down rather than that the request was wrong."""
    return not isinstance(exc, InvalidArgument | UnknownJob | StaleClaim)


@dataclass
class QueueHealth:
    error: str | None = None  # the latest outage's message while the queue is down
    down_since: float | None = None  # unix time of the first failure of the current outage
    outages: int = 0  # outages seen (a run of failures counts once)
    failures: int = 0  # failed calls in all

    @property
    def up(self) -> bool:
        return self.error is None

    def failed(self, exc: QueueError) -> bool:
        """Record a failed call; True if it was an outage."""
        if not is_outage(exc):
            return False
        self.failures += 1
        if self.error is None:
            self.outages += 1
            self.down_since = time.time()
        self.error = str(exc)
        return True

    def succeeded(self) -> None:
        self.error = None
        self.down_since = None

    def view(self) -> dict[str, Any]:
        if self.up:
            return {"status": "ok"}
        return {"status": "unavailable", "error": self.error, "down_since": self.down_since}
