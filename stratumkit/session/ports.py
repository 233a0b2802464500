"""The narrow ports a mining session talks to, and the face a rig's connection shows the lease layer.

The session owns no pool: it is handed these ports by the composition root (`stratumkit.app`), so
it can be driven in a unit test with small fakes, and nothing it calls can reach back into it
except through its own methods.
"""

from __future__ import annotations

import enum
from collections.abc import Container
from typing import Any, Protocol

from stratumkit.jobs.job import Job
from stratumkit.protocol.events import ExtensionRequest
from stratumkit.protocol.jsonrpc import RequestId
from stratumkit.shares.log import LogBatch


class RigMode(enum.Enum):
    """What a connection's hardware is doing: only MINING connections are sent work."""

    MINING = "mining"
    DIVERTED = "diverted"  # leased out: serving inference
    CURTAILED = "curtailed"  # stopped for power (demand response)


class WorkPort(Protocol):
    """Jobs and extranonces (the job registry and the extranonce allocator behind one face)."""

    @property
    def current(self) -> Job | None: ...

    def job_for(self, job: Job, payout_script: bytes, now: float) -> Job: ...

    def get(self, job_id: str, payout_script: bytes | None) -> Job | None: ...

    def reissue(self, job: Job, taken: Container[str], now: float) -> Job:
        """`job`'s work under a job id not in `taken` (a difficulty change needs a new id)."""
        ...

    def allocate_extranonce1(self, session_id: str | None) -> bytes: ...

    def release_extranonce1(self, extranonce1: bytes) -> None: ...

    def check_worker(self, username: str) -> tuple[bytes | None, str | None]:
        """(payout script, refusal): the refusal says why the name may not mine here."""
        ...

    def share_target(self, difficulty: float) -> int: ...


class SharePort(Protocol):
    """Where accepted shares go: the durable log's open batch, returned so the shell can hold the
    replies until that batch is on disk. Frames are made by `stratumkit.shares.log.pack_share`."""

    def append(self, frame: bytes) -> LogBatch: ...


class BlockPort(Protocol):
    """Found blocks: `found` writes the block down durably before it returns, then submits it."""

    def found(self, job: Job, block_hash: bytes, block: bytes, worker: str) -> None: ...


class StatsPort(Protocol):
    def on_worker_started(self, worker: str, now: float) -> None: ...

    def on_accepted(self, worker: str, difficulty: float, now: float, block: bool) -> None: ...

    def on_rejected(self, worker: str, reason: str) -> None: ...


class RigConnection(Protocol):
    """One rig's stratum connection as the lease layer sees it: methods, never fields.

    Every call queues its output and sends it at once (the shell flushes); none blocks.
    """

    @property
    def peer(self) -> str: ...

    @property
    def worker(self) -> str | None: ...

    @property
    def rig_id(self) -> str | None: ...

    @property
    def accepted(self) -> int: ...

    @property
    def mode(self) -> RigMode: ...

    def register_rig(self, rig_id: str) -> None:
        """Mark the connection as the rig `rig_id` (its results may then be long lines)."""
        ...

    def set_mode(self, mode: RigMode, now: float, *, difficulty: float | None = None) -> None:
        """MINING sends fresh work (set_difficulty at `difficulty`, floored, then a clean job);
        DIVERTED and CURTAILED stop sending work."""
        ...

    def respond(self, request_id: RequestId, result: Any) -> None: ...

    def respond_error(self, request_id: RequestId, message: str) -> None: ...

    def notify(self, method: str, params: Any) -> None: ...

    def drop(self, reason: str) -> None: ...


class ExtensionPort(Protocol):
    """The stratumkit.* extension (the lease service): its calls, a rig's shares, its end."""

    @property
    def methods(self) -> frozenset[str]: ...

    async def handle(self, conn: RigConnection, event: ExtensionRequest) -> None:
        """Answer one extension request (requests of one connection are handled in order)."""
        ...

    def on_accepted(self, conn: RigConnection, now: float) -> None:
        """An accepted share from a registered rig (called only for connections with a rig id)."""
        ...

    async def on_closed(self, conn: RigConnection) -> None:
        """The connection ended (called only for connections with a rig id)."""
        ...


class NoExtensions:
    """The port for a pool without the lease layer: every extension method is unknown."""

    methods: frozenset[str] = frozenset()

    async def handle(self, conn: RigConnection, event: ExtensionRequest) -> None:
        conn.respond_error(event.id, f"unknown method {event.method!r}")

    def on_accepted(self, conn: RigConnection, now: float) -> None:
        pass

    async def on_closed(self, conn: RigConnection) -> None:
        pass


__all__ = [
    "BlockPort",
    "ExtensionPort",
    "NoExtensions",
    "RigConnection",
    "RigMode",
    "SharePort",
    "StatsPort",
    "WorkPort",
]
