"""Child process for the SQLite kill -9 test: works the queue until it is killed.

Prints one line per job whose call returned, flushed at once, so the parent knows exactly which
enqueues and acks were promised before the SIGKILL:
    enqueued <job_id>
    acked <job_id> <True|False>
Jobs are enqueued three per round and claimed two at a time; every fifth claim is left in flight,
so a third of the jobs stay unacknowledged. Mode `single` makes a call per job (`enqueue`, `ack`);
mode `batch` one call per round (`enqueue_many` of the three) and per claim (`ack_many`).
"""

from __future__ import annotations

import sys

import trio

from stratumkit.queue.engine import NewJob
from stratumkit.queue.sqlite import open_sqlite_queue

#: Jobs enqueued per round (and per `enqueue_many` in batch mode).
ROUND = 3


async def main(path: str, mode: str) -> None:
    async with open_sqlite_queue(path) as queue:
        n = 0
        while True:
            jobs = [NewJob({"n": i, "blob": bytes(64)}, job_id=f"job-{i}") for i in range(n, n + ROUND)]
            n += ROUND
            if mode == "batch":
                for job_id in await queue.enqueue_many("jobs", jobs):
                    print(f"enqueued {job_id}", flush=True)
            else:
                for job in jobs:
                    print(f"enqueued {await queue.enqueue('jobs', job.payload, job_id=job.job_id)}", flush=True)
            claims = await queue.claim("jobs", f"rig-{n % 4}", 3600, max_jobs=2)
            acks = [(claim, {"square": claim.payload["n"] ** 2}) for claim in claims if claim.payload["n"] % 5]
            if mode == "batch":
                for (claim, _), acked in zip(acks, await queue.ack_many(acks), strict=True):
                    print(f"acked {claim.job_id} {acked}", flush=True)
            else:
                for claim, result in acks:
                    print(f"acked {claim.job_id} {await queue.ack(claim, result)}", flush=True)


if __name__ == "__main__":
    trio.run(main, sys.argv[1], sys.argv[2])
