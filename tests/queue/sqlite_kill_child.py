"""Child process for the SQLite kill -9 test: works the queue until it is killed.

Prints one line per job whose call returned, flushed at once, so the parent knows exactly which
enqueues and acks were promised before the SIGKILL:
    enqueued <job_id>
    acked <job_id> <True|False>
Jobs are enqueued three per round and claimed two at a time; every fifth claim is left in flight,
so a third of the jobs stay unacknowledged. Mode `single`: one worker, a call per job (`enqueue`,
`ack`). Mode `batch`: WORKERS workers at once on one engine (their calls share group commits), a
call per round (`enqueue_many` of the three) and per claim (`ack_many`). Mode `combined`: as batch,
but each round's acks go with the next round's claim in one `ack_and_claim`.
"""

from __future__ import annotations

import itertools
import sys
from typing import Any

import trio

from stratumkit.queue.engine import ClaimedJob, NewJob, QueueEngine
from stratumkit.queue.sqlite import open_sqlite_queue

#: Jobs enqueued per round (and per `enqueue_many` in batch mode).
ROUND = 3
#: Workers of batch mode.
WORKERS = 2


async def work(queue: QueueEngine, rounds: itertools.count[int], batch: bool, combined: bool = False) -> None:
    acks: list[tuple[ClaimedJob, dict[str, Any]]] = []
    while True:
        n = next(rounds) * ROUND
        jobs = [NewJob({"n": i, "blob": bytes(64)}, job_id=f"job-{i}") for i in range(n, n + ROUND)]
        if batch:
            for job_id in await queue.enqueue_many("jobs", jobs):
                print(f"enqueued {job_id}", flush=True)
        else:
            for job in jobs:
                print(f"enqueued {await queue.enqueue('jobs', job.payload, job_id=job.job_id)}", flush=True)
        if combined:
            answers, claims = await queue.ack_and_claim(acks, "jobs", f"rig-{n % 4}", 3600, max_jobs=2)
            for (claim, _), acked in zip(acks, answers, strict=True):
                print(f"acked {claim.job_id} {acked}", flush=True)
            acks = [(claim, {"square": claim.payload["n"] ** 2}) for claim in claims if claim.payload["n"] % 5]
            continue
        claims = await queue.claim("jobs", f"rig-{n % 4}", 3600, max_jobs=2)
        acks = [(claim, {"square": claim.payload["n"] ** 2}) for claim in claims if claim.payload["n"] % 5]
        if batch:
            for (claim, _), acked in zip(acks, await queue.ack_many(acks), strict=True):
                print(f"acked {claim.job_id} {acked}", flush=True)
        else:
            for claim, result in acks:
                print(f"acked {claim.job_id} {await queue.ack(claim, result)}", flush=True)


async def main(path: str, mode: str) -> None:
    rounds = itertools.count()
    async with open_sqlite_queue(path) as queue, trio.open_nursery() as nursery:
        for _ in range(1 if mode == "single" else WORKERS):
            nursery.start_soon(work, queue, rounds, mode != "single", mode == "combined")


if __name__ == "__main__":
    trio.run(main, sys.argv[1], sys.argv[2])
