"""judge_share on real jobs built from the embedded chain's template, with real hashes.

The ordering rule under test: fields, job, ONE hash, the block flag, and only then the reasons to
refuse (version bits, ntime, duplicate, difficulty), so a block is never thrown away.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import pytest

from stratumkit.agent.work import MinerJob
from stratumkit.chain.targets import difficulty_to_target
from stratumkit.hashing import hash_to_int, sha256d
from stratumkit.jobs.job import Job
from stratumkit.jobs.registry import JobRegistry
from stratumkit.jobs.sources import EmbeddedTemplateSource
from stratumkit.protocol.errors import ErrorCode
from stratumkit.shares.validator import MAX_FUTURE_NTIME, ShareVerdict, judge_share

from .helpers import Share, make_share

EN1 = bytes.fromhex("00000005")
SHARE_DIFFICULTY = 1e-7  # one nonce in ~430 is a share
BLOCK_DIFFICULTY = 1e-5  # one hash in ~43,000 is a block: found in milliseconds
MASK = 0x1FFFE000


@pytest.fixture
def registry() -> JobRegistry:
    return JobRegistry(payout_script=b"\x51", extranonce1_size=4, extranonce2_size=4)


@pytest.fixture
def job(registry: JobRegistry) -> Job:
    source = EmbeddedTemplateSource(difficulty=BLOCK_DIFFICULTY)
    job, _ = registry.new_job(source.template(), time.monotonic(), ntime=int(time.time()))
    return job


def miner_view(job: Job) -> MinerJob:
    return MinerJob.from_notify(job.notify_clean, SHARE_DIFFICULTY)


_counter = iter(range(1, 1 << 30))


def share(job: Job, *, block: bool = False, low: bool = False, **kwargs: Any) -> Share:
    """A share as a miner finds it from the notify (fresh extranonce2 each time)."""
    mj = miner_view(job)
    target = mj.network_target if block else difficulty_to_target(SHARE_DIFFICULTY)
    above = None if block else mj.network_target
    return make_share(mj, EN1, next(_counter).to_bytes(4, "big"), target=target, above=above, low=low, **kwargs)


def judge(
    job: Job | None,
    s: Share,
    *,
    mask: int | None = None,
    difficulty: float = SHARE_DIFFICULTY,
    now: float | None = None,
    **fields: str | None,
) -> ShareVerdict:
    values: dict[str, Any] = dict(
        extranonce2_hex=s.extranonce2,
        ntime_hex=s.ntime,
        nonce_hex=s.nonce,
        version_bits_hex=s.version_bits,
    )
    values.update(fields)
    return judge_share(
        job,
        extranonce1=EN1,
        extranonce2_size=4,
        version_mask=mask,
        share_target=difficulty_to_target(difficulty),
        now=time.time() if now is None else now,
        **values,
    )


# ---------------------------------------------------------------------------- accepted


def test_a_valid_share_is_accepted_with_its_canonical_fields(job: Job) -> None:
    s = share(job)
    v = judge(job, s)
    assert v.accepted and v.error is None and not v.block
    assert v.job is job and v.result is not None
    assert v.result.hash == s.hash == sha256d(v.result.header)
    assert v.extranonce2 == bytes.fromhex(s.extranonce2)
    assert (v.ntime, v.nonce, v.version) == (int(s.ntime, 16), int(s.nonce, 16), job.version)
    assert s.hash in job.seen


def test_the_share_target_decides_low_difficulty(job: Job) -> None:
    s = share(job)
    hash_difficulty = difficulty_to_target(1) / hash_to_int(s.hash)
    assert judge(job, s, difficulty=hash_difficulty * 0.99).accepted
    job.seen.clear()
    v = judge(job, s, difficulty=hash_difficulty * 1.01)
    assert v.error is ErrorCode.LOW_DIFFICULTY and not v.block


def test_a_low_difficulty_share_is_refused_with_23(job: Job) -> None:
    v = judge(job, share(job, low=True))
    assert v.error is ErrorCode.LOW_DIFFICULTY and v.error.value == 23
    assert v.result is not None and not v.result.meets_share


# ---------------------------------------------------------------------------- duplicates


def test_the_same_work_twice_is_a_duplicate(job: Job) -> None:
    s = share(job)
    assert judge(job, s).accepted
    v = judge(job, s)
    assert v.error is ErrorCode.DUPLICATE and v.error.value == 22


@pytest.mark.parametrize("field", ["extranonce2_hex", "ntime_hex", "nonce_hex"])
def test_a_duplicate_is_found_on_the_work_whatever_the_hex_case(job: Job, field: str) -> None:
    s = share(job)
    # make sure the field has letters in it, so the case really differs
    s = s if any(c in "abcdef" for c in getattr(s, field[:-4])) else _with_letters(job, field)
    assert judge(job, s).accepted
    upper = getattr(s, field[:-4]).upper()
    assert upper != getattr(s, field[:-4])
    assert judge(job, s, **{field: upper}).error is ErrorCode.DUPLICATE


def _with_letters(job: Job, field: str) -> Share:
    for _ in range(200):
        s = share(job)
        if any(c in "abcdef" for c in getattr(s, field[:-4])):
            return s
    if field == "ntime_hex":  # ntime is the job's: pick one in range that has letters in hex
        t = job.ntime
        while not any(c in "abcdef" for c in f"{t:08x}"):
            t += 1
        return share(job, ntime=t)
    raise AssertionError("no share with a hex letter in " + field)


def test_a_duplicate_with_zero_version_bits_is_still_the_same_work(job: Job) -> None:
    s = share(job)
    assert judge(job, s, mask=MASK).accepted
    assert judge(job, s, mask=MASK, version_bits_hex="00000000").error is ErrorCode.DUPLICATE


# ---------------------------------------------------------------------------- stale


def test_an_unknown_job_is_stale_21(job: Job) -> None:
    v = judge(None, share(job))
    assert v.error is ErrorCode.JOB_NOT_FOUND and v.error.value == 21


def test_a_job_from_before_a_new_block_is_stale(registry: JobRegistry, job: Job) -> None:
    s = share(job)
    new_template = dataclasses.replace(job.template, prevhash=sha256d(b"next"), height=job.template.height + 1)
    registry.new_job(new_template, time.monotonic())
    assert judge(registry.get(s.job_id), s).error is ErrorCode.JOB_NOT_FOUND


# ---------------------------------------------------------------------------- malformed


@pytest.mark.parametrize(
    "fields",
    [
        dict(extranonce2_hex="000001"),
        dict(extranonce2_hex="0000000001"),
        dict(extranonce2_hex="0000000g"),
        dict(ntime_hex="6000000"),
        dict(ntime_hex="600000000"),
        dict(ntime_hex="6000000z"),
        dict(nonce_hex="zzzzzzzz"),
        dict(nonce_hex="0x000000"),
        dict(nonce_hex=""),
        dict(version_bits_hex="0000200"),
        dict(version_bits_hex="0000200g"),
    ],
)
def test_wrong_widths_and_non_hex_are_refused_with_20(job: Job, fields: dict[str, Any]) -> None:
    v = judge(job, share(job), mask=MASK, **fields)
    assert v.error is ErrorCode.OTHER and v.error.value == 20
    assert "hex digits" in v.message
    assert v.result is None and not v.block


# ---------------------------------------------------------------------------- version bits


def test_version_bits_inside_the_mask_are_accepted(job: Job) -> None:
    bits = 0x00006000
    s = share(job, version=(job.version & ~MASK) | bits, version_bits=bits)
    v = judge(job, s, mask=MASK)
    assert v.accepted and v.version == job.version | bits


def test_version_bits_outside_the_mask_are_refused_with_20(job: Job) -> None:
    bits = 0x00000001
    s = share(job, version=(job.version & ~MASK) | bits, version_bits=bits)
    v = judge(job, s, mask=MASK)
    assert v.error is ErrorCode.OTHER and "mask" in v.message


def test_the_whole_nversion_as_version_bits_is_the_same_share(job: Job) -> None:
    """Some firmwares send their whole rolled nVersion: same header, same verdict as the bits alone."""
    rolled = 0x00006000
    version = (job.version & ~MASK) | rolled
    assert job.version & ~MASK and version != rolled  # the two spellings really differ
    s = share(job, version=version, version_bits=rolled)
    bits_only = judge(job, s, mask=MASK, version_bits_hex=f"{rolled:08x}")
    job.seen.clear()
    whole = judge(job, s, mask=MASK, version_bits_hex=f"{version:08x}")
    assert bits_only.accepted and whole.accepted
    assert bits_only.version == whole.version == version
    assert bits_only.result is not None and whole.result is not None
    assert bits_only.result.header == whole.result.header and whole.result.hash == s.hash
    # ... and it is the same work: the other spelling of it is a duplicate.
    assert judge(job, s, mask=MASK, version_bits_hex=f"{rolled:08x}").error is ErrorCode.DUPLICATE


def test_the_jobs_own_version_as_version_bits_without_negotiation_is_no_rolling(job: Job) -> None:
    s = share(job)
    v = judge(job, s, mask=None, version_bits_hex=f"{job.version:08x}")
    assert v.accepted and v.version == job.version


@pytest.mark.parametrize("flipped", [0x00000001, 0x40000000, 0x80000000], ids=hex)
def test_a_whole_nversion_that_changes_bits_outside_the_mask_is_refused(job: Job, flipped: int) -> None:
    rolled = 0x00006000
    sent = ((job.version & ~MASK) ^ flipped) | rolled
    assert sent & ~MASK != job.version & ~MASK
    version = (job.version & ~(MASK | sent)) | sent  # how the validator rebuilds it
    s = share(job, version=version, version_bits=sent)
    v = judge(job, s, mask=MASK)
    assert v.error is ErrorCode.OTHER and "mask" in v.message
    assert v.version == version and v.result is not None and v.result.hash == s.hash


def test_version_bits_without_negotiation_are_refused(job: Job) -> None:
    bits = 0x00002000
    s = share(job, version=job.version | bits, version_bits=bits)
    v = judge(job, s, mask=None)
    assert v.error is ErrorCode.OTHER and "not negotiated" in v.message


# ---------------------------------------------------------------------------- ntime


def test_ntime_before_the_template_mintime_is_refused(job: Job) -> None:
    v = judge(job, share(job, ntime=job.template.mintime - 1))
    assert v.error is ErrorCode.OTHER and "ntime" in v.message


def test_ntime_too_far_in_the_future_is_refused_at_the_edge(job: Job) -> None:
    now = float(job.ntime)
    assert judge(job, share(job, ntime=job.ntime + MAX_FUTURE_NTIME), now=now).accepted
    v = judge(job, share(job, ntime=job.ntime + MAX_FUTURE_NTIME + 1), now=now)
    assert v.error is ErrorCode.OTHER and "ntime" in v.message


# ---------------------------------------------------------------------------- blocks first


def test_a_block_is_accepted_and_flagged(job: Job) -> None:
    s = share(job, block=True)
    v = judge(job, s)
    assert v.accepted and v.block
    assert v.result is not None and v.result.meets_network


def test_a_block_below_the_share_difficulty_is_still_accepted(job: Job) -> None:
    """Vardiff may have raised a miner above the network difficulty: its block still counts."""
    s = share(job, block=True)
    v = judge(job, s, difficulty=1.0)  # far harder than the block
    assert v.result is not None and not v.result.meets_share
    assert v.accepted and v.block


def test_a_block_with_ntime_out_of_range_is_refused_but_still_a_block(job: Job) -> None:
    now = time.time()
    s = share(job, block=True, ntime=int(now) + MAX_FUTURE_NTIME + 600)
    v = judge(job, s, now=now)
    assert v.error is ErrorCode.OTHER and "ntime" in v.message
    assert v.block and v.result is not None and v.result.meets_network
    again = judge(job, s, now=now)  # the same block again: flagged only the first time
    assert again.error is not None and not again.block


def test_a_block_with_version_bits_outside_the_mask_is_refused_but_still_a_block(job: Job) -> None:
    bits = 0x40000000  # outside the BIP320 mask
    version = (job.version & ~(MASK | bits)) | bits  # how the validator rebuilds it
    s = share(job, block=True, version=version, version_bits=bits)
    v = judge(job, s, mask=MASK)
    assert v.error is ErrorCode.OTHER and "mask" in v.message
    assert v.block and v.version == version


def test_a_duplicate_block_is_not_flagged_twice(job: Job) -> None:
    s = share(job, block=True)
    assert judge(job, s).block
    v = judge(job, s)
    assert v.error is ErrorCode.DUPLICATE and not v.block
