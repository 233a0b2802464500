"""Child process for the SQLite kill -9 test: works the queue until it is killed.

Prints one line per call that returned, flushed at once, so the parent knows exactly which
enqueues and acks were promised before the SIGKILL:
    enqueued <job_id>
    acked <job_id> <True|False>
Every third job is left unacknowledged, and every fifth claim is left in flight.
"""

from __future__ import annotations

import sys

import trio

from stratumkit.queue.sqlite import open_sqlite_queue


async def main(path: str) -> None:
    async with open_sqlite_queue(path) as queue:
        n = 0
        while True:
            for _ in range(3):
                job_id = await queue.enqueue("jobs", {"n": n, "blob": bytes(64)}, job_id=f"job-{n}")
                print(f"enqueued {job_id}", flush=True)
                n += 1
            for claim in await queue.claim("jobs", f"rig-{n % 4}", 3600, max_jobs=2):
                if claim.payload["n"] % 5 == 0:
                    continue
                acked = await queue.ack(claim, {"square": claim.payload["n"] ** 2})
                print(f"acked {claim.job_id} {acked}", flush=True)


if __name__ == "__main__":
    trio.run(main, sys.argv[1])
