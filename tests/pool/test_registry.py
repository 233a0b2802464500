"""JobRegistry: clean rounds on a new previous block, a stale window for refreshes, unique ids."""

from __future__ import annotations

import dataclasses
import time

from stratumkit.chain.template import BlockTemplate
from stratumkit.hashing import sha256d
from stratumkit.jobs.registry import JobRegistry
from stratumkit.jobs.sources import EmbeddedTemplateSource


def registry(**kwargs: object) -> JobRegistry:
    return JobRegistry(payout_script=b"\x51", extranonce1_size=4, extranonce2_size=4, **kwargs)  # type: ignore[arg-type]


def template() -> BlockTemplate:
    return EmbeddedTemplateSource(difficulty=0.01).template()


def next_block(t: BlockTemplate, tag: bytes) -> BlockTemplate:
    return dataclasses.replace(t, prevhash=sha256d(tag), height=t.height + 1)


def test_first_job_is_clean_and_its_notify_describes_the_template() -> None:
    reg = registry()
    t = template()
    job, clean = reg.new_job(t, now=0.0, ntime=t.curtime)
    assert clean and reg.current is job and reg.get(job.job_id) is job
    n = job.notify_clean
    assert n.clean_jobs and not job.notify_update.clean_jobs
    assert n.job_id == job.notify_update.job_id == job.job_id
    assert n.prevhash == t.prevhash_stratum
    assert int(n.version, 16) == t.version and int(n.nbits, 16) == t.nbits
    assert int(n.ntime, 16) == job.ntime == t.curtime
    assert bytes.fromhex(n.coinb1) == job.coinbase.coinb1


def test_job_ntime_is_never_below_the_template_mintime() -> None:
    t = template()
    job, _ = registry().new_job(t, now=0.0, ntime=t.mintime - 1000)
    assert job.ntime == t.mintime


def test_a_refresh_keeps_the_old_jobs_valid() -> None:
    reg = registry(stale_window=120.0)
    t = template()
    old, _ = reg.new_job(t, now=0.0)
    new, clean = reg.new_job(dataclasses.replace(t, curtime=t.curtime + 30), now=30.0)
    assert not clean
    assert reg.current is new and new.job_id != old.job_id
    assert reg.get(old.job_id) is old  # miners finish the work they hold


def test_a_new_previous_block_makes_every_old_job_stale() -> None:
    reg = registry()
    t = template()
    old = [reg.new_job(t, now=float(i))[0] for i in range(3)]
    new, clean = reg.new_job(next_block(t, b"block 2"), now=3.0)
    assert clean
    assert [reg.get(j.job_id) for j in old] == [None, None, None]
    assert reg.get(new.job_id) is new and len(reg) == 1


def test_replaced_jobs_expire_after_the_stale_window_but_the_newest_are_kept() -> None:
    reg = registry(stale_window=10.0, keep_jobs=2)
    t = template()
    j1, _ = reg.new_job(t, now=0.0)
    j2, _ = reg.new_job(t, now=1.0)  # j1 replaced at 1
    j3, _ = reg.new_job(t, now=5.0)  # j2 replaced at 5; j1 only 4 s ago: kept
    assert reg.get(j1.job_id) is j1
    j4, _ = reg.new_job(t, now=20.0)  # j1 and j2 past the window; j3 just replaced
    assert reg.get(j1.job_id) is None and reg.get(j2.job_id) is None
    assert reg.get(j3.job_id) is j3 and reg.get(j4.job_id) is j4


def test_at_least_keep_jobs_survive_however_old() -> None:
    reg = registry(stale_window=1.0, keep_jobs=3)
    t = template()
    jobs = [reg.new_job(t, now=100.0 * i)[0] for i in range(6)]
    assert [reg.get(j.job_id) is not None for j in jobs] == [False, False, False, True, True, True]


def test_job_ids_are_unique_within_a_registry() -> None:
    reg = registry()
    t = template()
    ids = [reg.new_job(t, now=float(i))[0].job_id for i in range(100)]
    assert len(set(ids)) == 100


def test_job_ids_do_not_repeat_across_registries_made_at_different_times() -> None:
    """A share for a job from before a restart is stale, never mistaken for a new job."""
    t = template()
    before = registry()
    old_ids = [before.new_job(t, now=float(i))[0].job_id for i in range(5)]
    last = max(int(i, 16) for i in old_ids)
    while time.time_ns() // 1000 <= last:  # the restart happens later in time (microseconds)
        pass
    after = registry()
    new_ids = [after.new_job(t, now=float(i))[0].job_id for i in range(5)]
    assert not set(old_ids) & set(new_ids)
    assert all(after.get(i) is None for i in old_ids)


def test_a_reissue_is_the_same_block_under_a_fresh_id_and_ntime_and_shares_its_fate() -> None:
    reg = registry(stale_window=10.0, keep_jobs=1)
    t = template()
    job, _ = reg.new_job(t, now=0.0)
    copy = reg.reissue(job, {job.job_id}, now=1.0)
    assert copy.job_id != job.job_id and copy.notify_update.job_id == copy.job_id
    assert copy.prepared is job.prepared and copy.seen is job.seen  # one duplicate set for the block
    assert reg.get(copy.job_id) is copy
    assert reg.reissue(job, {job.job_id}, now=2.0) is copy  # reused by the next miner that needs one
    third = reg.reissue(job, {job.job_id, copy.job_id}, now=2.0)
    assert third.job_id not in (job.job_id, copy.job_id)
    # A miner restarts its nonce scan on a new job id (cpuminer-opt, bfgminer): with the header
    # unchanged it would find again the hashes it sent under the old id, and each is a duplicate.
    assert [j.ntime for j in (job, copy, third)] == [job.ntime, job.ntime + 1, job.ntime + 2]
    for j in (copy, third):
        assert int(j.notify_clean.ntime, 16) == int(j.notify_update.ntime, 16) == j.ntime
        same = dataclasses.replace(j.notify_update, job_id=job.job_id, ntime=job.notify_update.ntime)
        assert same == job.notify_update  # nothing else changed: the same block
    nonce_args = (b"\0\0\0\0", b"\0\0\0\1", job.version)
    hashes = {j.prepared.check(*nonce_args, j.ntime, 7, (1 << 256) - 1).hash for j in (job, copy, third)}
    assert len(hashes) == 3  # the same extranonce2 and nonce are new work under each id
    reg.new_job(dataclasses.replace(t, curtime=t.curtime + 30), now=30.0)
    reg.new_job(dataclasses.replace(t, curtime=t.curtime + 60), now=60.0)  # the first job expires
    assert reg.get(job.job_id) is None and reg.get(copy.job_id) is None and reg.get(third.job_id) is None
    assert reg.reissue(job, set(), now=61.0) is job  # a stale job is not reissued


def test_a_solo_variants_reissue_pays_the_same_script() -> None:
    reg = registry()
    job, _ = reg.new_job(template(), now=0.0)
    variant = reg.job_for(job, b"\x52", now=0.0)
    copy = reg.reissue(variant, {variant.job_id}, now=1.0)
    assert reg.get(copy.job_id, b"\x52") is copy and reg.get(copy.job_id, b"\x51") is None
