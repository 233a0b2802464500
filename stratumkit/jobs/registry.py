"""The job registry: turns templates into jobs and answers "which job is this share for?".

Rules:
- Job ids are hex of a counter that starts at the process's start time in microseconds, so they
  are unique across restarts (a share for a job from before a restart is stale, never mistaken).
- A template with a new previous block starts a new *round*: its job is sent with clean_jobs and
  every job of the old round is stale at once (error 21).
- Jobs of the current round stay valid for `stale_window` seconds after a newer job replaced them
  (miners finish the work they hold), and at least the newest `keep_jobs` of them are kept.
"""

from __future__ import annotations

import time
from collections import OrderedDict

from stratumkit.chain.coinbase import build_coinbase
from stratumkit.chain.template import BlockTemplate
from stratumkit.hashing import PreparedJob
from stratumkit.protocol.events import Notify

from .job import Job


class JobRegistry:
    def __init__(
        self,
        *,
        payout_script: bytes,
        extranonce1_size: int = 4,
        extranonce2_size: int = 4,
        pool_tag: bytes = b"/stratumkit/",
        stale_window: float = 120.0,
        keep_jobs: int = 8,
        id_seed: int | None = None,
    ) -> None:
        self.payout_script = payout_script
        self.extranonce1_size = extranonce1_size
        self.extranonce2_size = extranonce2_size
        self.pool_tag = pool_tag
        self.stale_window = stale_window
        self.keep_jobs = keep_jobs
        self._counter = time.time_ns() // 1000 if id_seed is None else id_seed
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._replaced_at: dict[str, float] = {}
        self.current: Job | None = None

    def __len__(self) -> int:
        return len(self._jobs)

    def new_job(self, template: BlockTemplate, now: float, *, ntime: int | None = None) -> tuple[Job, bool]:
        """Make the job for a template; returns it and whether it starts a new round (clean)."""
        clean = self.current is None or self.current.prevhash != template.prevhash
        parts = build_coinbase(
            template,
            self.payout_script,
            extranonce1_size=self.extranonce1_size,
            extranonce2_size=self.extranonce2_size,
            pool_tag=self.pool_tag,
        )
        prepared = PreparedJob(
            parts.coinb1, parts.coinb2, b"".join(template.merkle_branch), template.prevhash,
            template.nbits, template.network_target,
        )  # fmt: skip
        self._counter += 1
        job_id = f"{self._counter:x}"
        job_ntime = max(template.curtime if ntime is None else ntime, template.mintime)
        fields = dict(
            job_id=job_id,
            prevhash=template.prevhash_stratum,
            coinb1=parts.coinb1.hex(),
            coinb2=parts.coinb2.hex(),
            merkle_branch=tuple(h.hex() for h in template.merkle_branch),
            version=f"{template.version:08x}",
            nbits=f"{template.nbits:08x}",
            ntime=f"{job_ntime:08x}",
        )
        job = Job(
            job_id=job_id,
            template=template,
            coinbase=parts,
            prepared=prepared,
            ntime=job_ntime,
            created=now,
            notify_clean=Notify(**fields, clean_jobs=True),  # type: ignore[arg-type]
            notify_update=Notify(**fields, clean_jobs=False),  # type: ignore[arg-type]
        )
        if clean:
            self._jobs.clear()
            self._replaced_at.clear()
        elif self.current is not None:
            self._replaced_at[self.current.job_id] = now
        self._jobs[job_id] = job
        self.current = job
        self.prune(now)
        return job, clean

    def get(self, job_id: str) -> Job | None:
        """The job a share names, or None when it is unknown or stale."""
        return self._jobs.get(job_id)

    def prune(self, now: float) -> None:
        """Forget replaced jobs older than the stale window, keeping the newest `keep_jobs`."""
        excess = len(self._jobs) - self.keep_jobs
        for job_id in list(self._jobs):
            if excess <= 0 or self.current is None or job_id == self.current.job_id:
                break
            replaced = self._replaced_at.get(job_id)
            if replaced is not None and now - replaced >= self.stale_window:
                del self._jobs[job_id]
                del self._replaced_at[job_id]
                excess -= 1
