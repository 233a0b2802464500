"""Where lease state lives between processes: the store interface and the row diff its engines share.

The pure controller's snapshot (:meth:`LeaseController.snapshot`) is what is stored: a head (schema
version, the snapshot's monotonic time, the token and lease counters) and one row per lease and per
rig, each msgpack bytes. The trio service decides when to save (see :mod:`.persister`); an engine
only writes what it is given.

Rules for engines:

- ``save`` is atomic: after a crash, ``load`` returns the state of one complete ``save``, never a mix.
- A ``save`` that returned survives a kill -9 of the process (SQLite: fsynced transaction; Redis:
  as durable as the server's own persistence).
- Only rows that changed since the engine's previous ``save`` are written (:class:`RowDiff`); the
  first ``save`` of an engine rewrites everything, because rows written by an earlier process hold
  times on that process's clock and must not be mixed with rows on the new one.
- ``touch`` records that the writing process was alive at a wall-clock time: on restart the time
  between the last save and that moment counts as lease time, the rest of the outage does not.
- Failures raise :class:`LeaseStoreError`, never a driver's own exception.
- Beside the lease state, a store keeps the digests of integrator tokens issued through the API
  (:mod:`.integrators`), written at once, and which lease ran which job when (:class:`JobRecord`),
  written by the persister after each save.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import msgpack

__all__ = ["JobRecord", "LeaseStore", "LeaseStoreError", "RowDiff", "StoredLeases", "pack_rows", "unpack_snapshot"]

#: Snapshot fields kept in the head row; ``rigs`` and ``leases`` are kept one row each.
HEAD_FIELDS = ("version", "taken_at", "next_token", "next_lease_no")


class LeaseStoreError(OSError):
    """The lease store cannot be read or written (disk, database, server)."""


@dataclass(frozen=True)
class StoredLeases:
    """What ``load`` returns: a controller snapshot and the wall-clock times around it."""

    snapshot: dict[str, Any]
    saved_at: float  # wall-clock time of the save that wrote the snapshot
    alive_at: float  # latest wall-clock time the writer was known to be running (>= saved_at)

    @property
    def ran_after_save_s(self) -> float:
        """How long the writer ran after its last save: lease time that passed before the outage."""
        return max(0.0, self.alive_at - self.saved_at)


@dataclass(frozen=True)
class JobRecord:
    """Which lease ran a job, on which rig, when (wall-clock seconds): the latest claim by one of
    the lease's rigs, and when its result was recorded."""

    job_id: str
    lease_id: str
    rig_id: str
    claimed_at: float
    finished_at: float | None = None


class LeaseStore(Protocol):
    async def load(self) -> StoredLeases | None:
        """The last saved state, or None if nothing was ever saved."""
        ...

    async def save(self, snapshot: Mapping[str, Any], wall: float) -> None:
        """Store a controller snapshot taken at wall-clock time ``wall`` (atomically)."""
        ...

    async def touch(self, wall: float) -> None:
        """Record that the writer is alive at wall-clock time ``wall``."""
        ...

    async def add_integrator(self, token_digest: str, name: str) -> None:
        """Keep an issued integrator token (its digest only)."""
        ...

    async def integrators(self) -> dict[str, str]:
        """Every issued token's digest -> its integrator's name."""
        ...

    async def save_jobs(self, records: Sequence[JobRecord]) -> None:
        """Keep these job records (a later record of a job replaces the earlier one)."""
        ...

    async def lease_jobs(self, lease_id: str, limit: int) -> list[JobRecord]:
        """The lease's job records, in the order their jobs were first claimed."""
        ...


Rows = dict[str, tuple[int, bytes]]  # key -> (position in the snapshot, msgpack bytes)


def pack_rows(snapshot: Mapping[str, Any]) -> tuple[bytes, Rows, Rows]:
    """The head bytes, the lease rows and the rig rows of a snapshot."""
    head = msgpack.packb({k: snapshot[k] for k in HEAD_FIELDS})
    leases = {d["lease_id"]: (i, msgpack.packb(d)) for i, d in enumerate(snapshot["leases"])}
    rigs = {d["rig_id"]: (i, msgpack.packb(d)) for i, d in enumerate(snapshot["rigs"])}
    return head, leases, rigs


def unpack_snapshot(head: bytes, leases: list[bytes], rigs: list[bytes]) -> dict[str, Any]:
    """The snapshot dict back from stored rows (each list in snapshot order)."""
    try:
        snapshot = msgpack.unpackb(head)
        if not isinstance(snapshot, dict):
            raise LeaseStoreError("the stored lease head is not a mapping")
        snapshot["leases"] = [msgpack.unpackb(row) for row in leases]
        snapshot["rigs"] = [msgpack.unpackb(row) for row in rigs]
    except (ValueError, msgpack.UnpackException) as exc:
        raise LeaseStoreError(f"stored lease state is corrupt: {exc}") from exc
    return snapshot


@dataclass
class RowDiff:
    """Which rows a save must write and delete, given what the previous save wrote."""

    written: Rows | None = None  # None: nothing written by this engine yet, so rewrite everything

    def changes(self, rows: Rows) -> tuple[bool, Rows, list[str]]:
        """(full rewrite?, rows to upsert, keys to delete)."""
        if self.written is None:
            return True, dict(rows), []
        upsert = {k: v for k, v in rows.items() if self.written.get(k) != v}
        gone = [k for k in self.written if k not in rows]
        return False, upsert, gone

    def committed(self, rows: Rows) -> None:
        self.written = dict(rows)
