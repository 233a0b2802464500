"""The work port of the mining sessions: jobs, extranonces, who may mine, share targets.

One object over the job registry and the extranonce allocator, so a session (and its tests)
reach them through the narrow `stratumkit.session.ports.WorkPort` and nothing else of the pool.
"""

from __future__ import annotations

from collections.abc import Container

from stratumkit.chain.address import Network, address_to_script
from stratumkit.chain.errors import AddressError
from stratumkit.chain.targets import difficulty_to_target

from .extranonce import ExtranonceAllocator
from .job import Job
from .registry import JobRegistry

#: Share targets remembered (a pool has few difficulties; past this many the cache starts over).
MAX_TARGETS = 4096


class PoolWork:
    def __init__(
        self, registry: JobRegistry, extranonces: ExtranonceAllocator, network: Network, *, solo: bool = False
    ) -> None:
        self.registry = registry
        self.extranonces = extranonces
        self.network = network
        self.solo = solo
        self._targets: dict[float, int] = {}

    @property
    def current(self) -> Job | None:
        return self.registry.current

    def job_for(self, job: Job, payout_script: bytes, now: float) -> Job:
        return self.registry.job_for(job, payout_script, now)

    def get(self, job_id: str, payout_script: bytes | None) -> Job | None:
        return self.registry.get(job_id, payout_script)

    def reissue(self, job: Job, taken: Container[str], now: float) -> Job:
        return self.registry.reissue(job, taken, now)

    def allocate_extranonce1(self, session_id: str | None) -> bytes:
        return self.extranonces.allocate(session_id)

    def release_extranonce1(self, extranonce1: bytes) -> None:
        self.extranonces.release(extranonce1)

    def check_worker(self, username: str) -> tuple[bytes | None, str | None]:
        """(payout script, refusal) for a worker name: the refusal says why it may not mine here;
        the script is what solo mode pays (the address before the first "."), None otherwise."""
        if not username or len(username) > 128 or not username.isprintable():
            return None, "worker name must be 1..128 printable characters"
        if not self.solo:
            return None, None
        try:
            return address_to_script(username.split(".", 1)[0], self.network), None
        except AddressError as exc:
            return None, f"solo mode pays the worker's address: {exc}"

    def share_target(self, difficulty: float) -> int:
        target = self._targets.get(difficulty)
        if target is None:
            if len(self._targets) > MAX_TARGETS:
                self._targets.clear()
            target = self._targets[difficulty] = difficulty_to_target(difficulty)
        return target


__all__ = ["PoolWork"]
