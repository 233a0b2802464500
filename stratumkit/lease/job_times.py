"""What the job view says about a job's life, from the queue's `JobInfo`.

Times are wall-clock seconds as the queue engine recorded them: `enqueued_at`; `claimed_at`, the
latest delivery's claim; `started_at`, when the rig began it, which is the claim's time because
the rig protocol has no "started" message (a rig starts a job as soon as its claim reply comes);
`completed_at`, when its result was recorded. A time that has not happened yet is left out.
"""

from __future__ import annotations

from typing import Any

from stratumkit.queue.engine import JobInfo


def lifecycle(info: JobInfo) -> dict[str, Any]:
    """The view's time fields (and cause) for the job."""
    view: dict[str, Any] = {}
    if info.enqueued_at > 0:  # 0: enqueued before the engine kept enqueue times
        view["enqueued_at"] = info.enqueued_at
    if info.claimed_at is not None:
        view["claimed_at"] = info.claimed_at
        view["started_at"] = info.claimed_at
    if info.completed_at is not None:
        view["completed_at"] = info.completed_at
    return view
