"""Lease ids that are unique across restarts and pool processes, and never reused.

An id is ``lease-`` followed by a ULID: 48 bits of wall-clock milliseconds then 80 random bits
(``secrets``), in Crockford base32 (26 characters). Ids made later sort later (to the millisecond),
and two processes, or one process before and after a restart, cannot mint the same id except by an
80-bit collision; the controller still refuses a duplicate (DuplicateLease).
"""

from __future__ import annotations

import secrets
import time

__all__ = ["LEASE_ID_PREFIX", "new_lease_id"]

LEASE_ID_PREFIX = "lease-"
_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def _base32(value: int, length: int) -> str:
    out = []
    for _ in range(length):
        value, digit = divmod(value, 32)
        out.append(_ALPHABET[digit])
    return "".join(reversed(out))


def new_lease_id(now_s: float | None = None) -> str:
    """A fresh lease id; ``now_s`` (unix seconds, default the wall clock) sets its time part."""
    millis = int((time.time() if now_s is None else now_s) * 1000) & ((1 << 48) - 1)
    return LEASE_ID_PREFIX + _base32(millis, 10) + _base32(secrets.randbits(80), 16)
