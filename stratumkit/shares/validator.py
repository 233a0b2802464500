"""The verdict on one mining.submit: pure, with the wall clock passed in.

Order matters and is the rule of this module: parse the fields, find the job, hash the share with
ONE native call, and flag a block *before* any reason to reject is considered. A share that solves
a block is never thrown away, whatever else is wrong with it (a duplicate of a block was already
flagged the first time). Then, in order: version bits outside the negotiated mask that are not
the job's own (20), ntime out of the window (20), duplicate work (22), below the job's difficulty
(23).

Version bits (BIP310): the header's version is ``(job_version & ~mask) | (version_bits & mask)``.
BIP310 has the miner send only the bits it rolled, but some ASIC firmwares send their whole rolled
nVersion (``20002000`` for job version ``20000000``); both spellings build the same header and get
the same verdict. Only bits outside the mask that differ from the job's own are a violation; such
a share is hashed as the miner most likely built it (the job's version outside the mask, the
sent bits inside it, and every sent bit set) before it is refused, so a block is still found.

A share counts at the difficulty its job was sent with to that miner, so a share for work from
before a difficulty change is judged at the old difficulty.
"""

from __future__ import annotations

from typing import NamedTuple

from stratumkit.hashing import ShareResult
from stratumkit.jobs.job import Job
from stratumkit.protocol.errors import ErrorCode

from .fields import FieldError, hex_bytes, hex_u32

#: Bitcoin Core refuses a block whose time is more than two hours ahead of its clock.
MAX_FUTURE_NTIME = 7200


class ShareVerdict(NamedTuple):
    """The verdict (a tuple: made once per share, it must be cheap to build)."""

    error: ErrorCode | None  # None: accepted
    message: str
    job: Job | None = None
    result: ShareResult | None = None
    block: bool = False
    extranonce2: bytes = b""
    ntime: int = 0
    nonce: int = 0
    version: int = 0

    @property
    def accepted(self) -> bool:
        return self.error is None


def judge_share(
    job: Job | None,
    extranonce1: bytes,
    extranonce2_size: int,
    version_mask: int | None,
    share_target: int,
    extranonce2_hex: str,
    ntime_hex: str,
    nonce_hex: str,
    version_bits_hex: str | None,
    now: float,
) -> ShareVerdict:
    """Judge one share of `job` (None when the job id is unknown or stale)."""
    if job is None:
        return ShareVerdict(ErrorCode.JOB_NOT_FOUND, "Job not found (stale)")
    try:
        extranonce2 = hex_bytes("extranonce2", extranonce2_hex, extranonce2_size)
        ntime = hex_u32("ntime", ntime_hex)
        nonce = hex_u32("nonce", nonce_hex)
        bits = None if version_bits_hex is None else hex_u32("version_bits", version_bits_hex)
    except FieldError as exc:
        return ShareVerdict(ErrorCode.OTHER, str(exc))

    mask = version_mask or 0
    violation = ""
    if bits is None:
        version = job.version
    else:
        outside = bits & ~mask
        if outside and outside != job.version & ~mask:
            # Hash it the way the miner most likely did, so a block still counts; refuse the share.
            version = (job.version & ~(mask | bits)) | bits
            violation = "version bits outside the negotiated mask" if mask else "version rolling was not negotiated"
        else:
            # The rolled bits alone, or the whole nVersion (its other bits are the job's own).
            version = (job.version & ~mask) | (bits & mask)

    result = job.prepared.check(extranonce1, extranonce2, version, ntime, nonce, share_target)
    seen = result.hash in job.seen
    block = result.meets_network and not seen
    if not violation and not job.template.mintime <= ntime <= now + MAX_FUTURE_NTIME:
        violation = "ntime out of range"
    if violation:
        if block:
            job.seen.add(result.hash)
        return ShareVerdict(ErrorCode.OTHER, violation, job, result, block, extranonce2, ntime, nonce, version)
    if seen:
        return ShareVerdict(
            ErrorCode.DUPLICATE, "Duplicate share", job, result, block, extranonce2, ntime, nonce, version
        )
    if not result.meets_share and not block:
        return ShareVerdict(
            ErrorCode.LOW_DIFFICULTY, "Low difficulty share", job, result, block, extranonce2, ntime, nonce, version
        )
    job.seen.add(result.hash)
    return ShareVerdict(None, "", job, result, block, extranonce2, ntime, nonce, version)
