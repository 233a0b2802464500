"""Results expire: the pool process forgets finished jobs `job_result_ttl` seconds after their
result was recorded (`QueueEngine.expire_results`), on a timer, on either engine.

A sweep runs at start (a pool that was down catches up) and then every `sweep_interval(ttl)`
seconds, so a result lives between ttl and ttl plus one interval. A sweep the queue refuses (Redis
down) is logged and tried again at the next interval; the jobs it would have removed stay until
then. A ttl of 0 keeps results forever (no sweeps).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import structlog
import trio

from .engine import QueueEngine, QueueError

log = structlog.get_logger("stratumkit.queue")

#: Default of the `job_result_ttl` key: a week.
DEFAULT_RESULT_TTL = 7 * 24 * 3600.0


def sweep_interval(ttl: float) -> float:
    """A tenth of the ttl, between one second and an hour."""
    return min(max(ttl / 10, 1.0), 3600.0)


async def expire_results_every(
    engine: QueueEngine,
    ttl: float,
    *,
    clock: Callable[[], float] = time.time,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Sweep until cancelled (returns at once when ttl is 0)."""
    task_status.started()
    if ttl <= 0:
        return
    interval = sweep_interval(ttl)
    while True:
        try:
            forgotten = await engine.expire_results(clock() - ttl)
        except QueueError as exc:
            log.warning("expired results not removed; trying again later", error=str(exc), retry_s=interval)
        else:
            if forgotten:
                log.info("expired results removed", jobs=forgotten, ttl_s=ttl)
        await trio.sleep(interval)
