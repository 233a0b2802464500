"""Solo mode in the job registry: a job's variant for another payout script does the same work,
pays that script, and is stale exactly when its job is."""

from __future__ import annotations

import dataclasses

import pytest

from stratumkit.chain.address import Network, address_to_script
from stratumkit.chain.template import BlockTemplate
from stratumkit.chain.transaction import parse_transaction
from stratumkit.hashing import sha256d
from stratumkit.jobs.job import Job
from stratumkit.jobs.registry import JobRegistry
from stratumkit.jobs.sources import EmbeddedTemplateSource

from .harness import coinbase_of, new_address

POOL_SCRIPT = b"\x51"


def registry(**kwargs: object) -> JobRegistry:
    return JobRegistry(payout_script=POOL_SCRIPT, extranonce1_size=4, extranonce2_size=4, **kwargs)  # type: ignore[arg-type]


def template() -> BlockTemplate:
    return EmbeddedTemplateSource(difficulty=0.01, filler_transactions=3).template()


def next_block(t: BlockTemplate) -> BlockTemplate:
    return dataclasses.replace(t, prevhash=sha256d(t.prevhash), height=t.height + 1)


def script() -> bytes:
    return address_to_script(new_address(), Network.REGTEST)


def paid(job: Job) -> list[bytes]:
    return [out.script_pubkey for out in parse_transaction(coinbase_of(job.notify_clean)).outputs]


def test_a_variant_pays_its_script_and_does_the_same_work() -> None:
    reg = registry()
    job, _ = reg.new_job(template(), now=0.0)
    alice, bob = script(), script()
    a, b = reg.job_for(job, alice, now=0.0), reg.job_for(job, bob, now=0.0)
    assert paid(job) == [POOL_SCRIPT] and paid(a) == [alice] and paid(b) == [bob]
    assert len({job.job_id, a.job_id, b.job_id}) == 3
    for variant in (a, b):
        assert variant.template is job.template and variant.ntime == job.ntime
        same = ("prevhash", "merkle_branch", "version", "nbits", "ntime")
        assert [getattr(variant.notify_clean, f) for f in same] == [getattr(job.notify_clean, f) for f in same]
        assert variant.prepared is not job.prepared
    # Built once per job and script; the pool's own script gets the job itself.
    assert reg.job_for(job, alice, now=1.0) is a
    assert reg.job_for(job, POOL_SCRIPT, now=1.0) is job
    assert reg.current is job and len(reg) == 3


def test_a_share_finds_only_a_job_paying_its_miner() -> None:
    reg = registry()
    job, _ = reg.new_job(template(), now=0.0)
    alice, bob = script(), script()
    a = reg.job_for(job, alice, now=0.0)
    assert reg.get(a.job_id, alice) is a
    assert reg.get(a.job_id, bob) is None  # bob's share never counts for alice's coinbase
    assert reg.get(job.job_id, alice) is None  # nor does a solo miner's for the pool's
    assert reg.get(a.job_id) is a and reg.get(job.job_id, POOL_SCRIPT) is job


def test_variants_stay_valid_with_their_job_through_a_refresh_then_expire_with_it() -> None:
    reg = registry(stale_window=10.0, keep_jobs=1)
    t = template()
    alice = script()
    old, _ = reg.new_job(t, now=0.0)
    old_a = reg.job_for(old, alice, now=0.0)
    new, clean = reg.new_job(dataclasses.replace(t, curtime=t.curtime + 5), now=5.0)
    assert not clean
    new_a = reg.job_for(new, alice, now=5.0)
    assert new_a is not old_a and paid(new_a) == [alice]
    assert reg.get(old_a.job_id, alice) is old_a  # miners finish the work they hold
    reg.prune(now=14.9)
    assert reg.get(old.job_id) is old and reg.get(old_a.job_id, alice) is old_a
    reg.prune(now=15.0)
    assert reg.get(old.job_id) is None and reg.get(old_a.job_id, alice) is None
    assert reg.get(new_a.job_id, alice) is new_a and len(reg) == 2


def test_a_new_block_makes_every_variant_stale() -> None:
    reg = registry()
    t = template()
    job, _ = reg.new_job(t, now=0.0)
    variants = [reg.job_for(job, script(), now=0.0) for _ in range(3)]
    new, clean = reg.new_job(next_block(t), now=1.0)
    assert clean and len(reg) == 1 and reg.get(new.job_id) is new
    assert all(reg.get(v.job_id) is None for v in variants)
    # A variant asked for a job that is already stale is stale too: never registered.
    late = reg.job_for(job, script(), now=1.0)
    assert reg.get(late.job_id) is None and len(reg) == 1


def test_variant_ids_come_from_the_job_id_counter() -> None:
    reg = registry(id_seed=0x100)
    job, _ = reg.new_job(template(), now=0.0)
    variant = reg.job_for(job, script(), now=0.0)
    after, _ = reg.new_job(template(), now=1.0)
    assert [int(j.job_id, 16) for j in (job, variant, after)] == [0x101, 0x102, 0x103]


def test_asking_with_a_variant_is_a_mistake() -> None:
    reg = registry()
    job, _ = reg.new_job(template(), now=0.0)
    variant = reg.job_for(job, script(), now=0.0)
    with pytest.raises(ValueError, match="variant"):
        reg.job_for(variant, script(), now=0.0)
