"""The job registry: turns templates into jobs and answers "which job is this share for?".

Rules:
- Job ids are hex of a counter that starts at the process's start time in microseconds, so they
  are unique across restarts (a share for a job from before a restart is stale, never mistaken).
- A template with a new previous block starts a new *round*: its job is sent with clean_jobs and
  every job of the old round is stale at once (error 21).
- Jobs of the current round stay valid for `stale_window` seconds after a newer job replaced them
  (miners finish the work they hold), and at least the newest `keep_jobs` of them are kept.
- A difficulty change takes effect with a new job id (the convention miners and pools share):
  `reissue` gives the same block under an id the miner has not had, so each share is credited at
  the difficulty its job id was sent with. Its ntime is one second later per reissue: miners
  restart their nonce scan on a new job id (cpuminer-opt, bfgminer), and over an unchanged header
  they would find again the hashes they sent under the old id, every one a duplicate. A reissue
  shares its original's duplicate set (one header is one share, under any id) and its fate.
- Solo mode: a *variant* of a job does the same work (same template, same ntime) but pays another
  script. It is built on first demand (`job_for`), once per job and script, gets its own id from
  the same counter, and shares its job's fate: replaced, stale and forgotten with it. `get` with a
  payout script finds only jobs paying that script, so a share never counts for another's coinbase.
"""

from __future__ import annotations

import dataclasses
import time
from collections import OrderedDict
from collections.abc import Container

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
        self._replaced_at: dict[str, float] = {}  # replaced jobs (not variants) -> when
        self._variants: dict[str, dict[bytes, Job]] = {}  # job id -> payout script -> variant
        self._scripts: dict[str, bytes] = {}  # variant id -> the script it pays
        self._reissues: dict[str, list[Job]] = {}  # job id -> the same work under other ids
        self.current: Job | None = None

    def __len__(self) -> int:
        return len(self._jobs)

    def new_job(self, template: BlockTemplate, now: float, *, ntime: int | None = None) -> tuple[Job, bool]:
        """Make the job for a template; returns it and whether it starts a new round (clean)."""
        clean = self.current is None or self.current.prevhash != template.prevhash
        job_ntime = max(template.curtime if ntime is None else ntime, template.mintime)
        job = self._build(template, self.payout_script, job_ntime, now)
        if clean:
            self._jobs.clear()
            self._replaced_at.clear()
            self._variants.clear()
            self._scripts.clear()
            self._reissues.clear()
        elif self.current is not None:
            self._replaced_at[self.current.job_id] = now
        self._jobs[job.job_id] = job
        self.current = job
        self.prune(now)
        return job, clean

    def job_for(self, job: Job, payout_script: bytes, now: float) -> Job:
        """`job`'s work paying `payout_script` instead of the pool's script (solo mode)."""
        if job.job_id in self._scripts:
            raise ValueError(f"job {job.job_id} is a variant already: ask with the job it varies")
        if payout_script == self.payout_script:
            return job
        variants = self._variants.get(job.job_id)
        if variants is None:
            if self._jobs.get(job.job_id) is not job:
                # Stale already: its variant is stale too (shares for it are refused, code 21).
                return self._build(job.template, payout_script, job.ntime, now)
            variants = self._variants[job.job_id] = {}
        variant = variants.get(payout_script)
        if variant is None:
            variant = self._build(job.template, payout_script, job.ntime, now)
            variants[payout_script] = self._jobs[variant.job_id] = variant
            self._scripts[variant.job_id] = payout_script
        return variant

    def reissue(self, job: Job, taken: Container[str], now: float) -> Job:
        """`job`'s block under an id not in `taken` (the ids a miner holds) and a later ntime (the
        n-th reissue: `job.ntime + n`): reused across miners, made when every one so far is
        taken. A stale job is returned as it is."""
        if self._jobs.get(job.job_id) is not job:
            return job
        copies = self._reissues.setdefault(job.job_id, [])
        for copy in copies:
            if copy.job_id not in taken:
                return copy
        self._counter += 1
        job_id = f"{self._counter:x}"
        ntime = job.ntime + len(copies) + 1
        copy = Job(
            job_id=job_id,
            template=job.template,
            coinbase=job.coinbase,
            prepared=job.prepared,
            ntime=ntime,
            created=now,
            notify_clean=dataclasses.replace(job.notify_clean, job_id=job_id, ntime=f"{ntime:08x}"),
            notify_update=dataclasses.replace(job.notify_update, job_id=job_id, ntime=f"{ntime:08x}"),
            seen=job.seen,
        )
        copies.append(copy)
        self._jobs[job_id] = copy
        script = self._scripts.get(job.job_id)
        if script is not None:
            self._scripts[job_id] = script
        return copy

    def _build(self, template: BlockTemplate, payout_script: bytes, ntime: int, now: float) -> Job:
        parts = build_coinbase(
            template,
            payout_script,
            extranonce1_size=self.extranonce1_size,
            extranonce2_size=self.extranonce2_size,
            pool_tag=self.pool_tag,
        )
        prepared = PreparedJob(
            parts.coinb1,
            parts.coinb2,
            b"".join(template.merkle_branch),
            template.prevhash,
            template.nbits,
            template.network_target,
        )
        self._counter += 1
        job_id = f"{self._counter:x}"
        fields = dict(
            job_id=job_id,
            prevhash=template.prevhash_stratum,
            coinb1=parts.coinb1.hex(),
            coinb2=parts.coinb2.hex(),
            merkle_branch=tuple(h.hex() for h in template.merkle_branch),
            version=f"{template.version:08x}",
            nbits=f"{template.nbits:08x}",
            ntime=f"{ntime:08x}",
        )
        return Job(
            job_id=job_id,
            template=template,
            coinbase=parts,
            prepared=prepared,
            ntime=ntime,
            created=now,
            notify_clean=Notify(**fields, clean_jobs=True),  # type: ignore[arg-type]
            notify_update=Notify(**fields, clean_jobs=False),  # type: ignore[arg-type]
        )

    def get(self, job_id: str, payout_script: bytes | None = None) -> Job | None:
        """The job a share names, or None when it is unknown or stale, or (given a payout
        script) when it pays another script."""
        job = self._jobs.get(job_id)
        if job is not None and payout_script is not None:
            if self._scripts.get(job_id, self.payout_script) != payout_script:
                return None
        return job

    def prune(self, now: float) -> None:
        """Forget replaced jobs (and their variants) older than the stale window, keeping the
        newest `keep_jobs`."""
        excess = len(self._replaced_at) + 1 - self.keep_jobs
        # _replaced_at is in the order jobs were replaced: oldest first.
        for job_id, replaced in list(self._replaced_at.items()):
            if excess <= 0 or now - replaced < self.stale_window:
                break
            del self._jobs[job_id]
            del self._replaced_at[job_id]
            gone = [job_id]
            for variant in self._variants.pop(job_id, {}).values():
                del self._jobs[variant.job_id]
                del self._scripts[variant.job_id]
                gone.append(variant.job_id)
            for old in gone:
                for copy in self._reissues.pop(old, ()):
                    del self._jobs[copy.job_id]
                    self._scripts.pop(copy.job_id, None)
            excess -= 1
