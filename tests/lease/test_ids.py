"""Lease ids: unique across processes and restarts, ordered by time."""

from __future__ import annotations

import re
import subprocess
import sys

from stratumkit.lease.ids import new_lease_id

ULID = re.compile(r"lease-[0-9A-HJKMNP-TV-Z]{26}")


def test_ids_are_ulids_ordered_by_time() -> None:
    early, late = new_lease_id(1_700_000_000.0), new_lease_id(1_700_000_000.002)
    assert ULID.fullmatch(early) and ULID.fullmatch(late)
    assert early < late
    assert early[6:16] == new_lease_id(1_700_000_000.0)[6:16]  # same millisecond, same time part


def test_ids_do_not_repeat_within_a_millisecond() -> None:
    ids = {new_lease_id(1_700_000_000.0) for _ in range(10_000)}
    assert len(ids) == 10_000


def test_two_processes_mint_different_ids_at_the_same_moment() -> None:
    code = "from stratumkit.lease.ids import new_lease_id; print(new_lease_id(1.7e9))"
    a, b = (subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True) for _ in "ab")
    assert ULID.fullmatch(a.stdout.strip()) and a.stdout != b.stdout
