"""The trio task that keeps the lease store up to date with the controller (group commit).

The service calls :meth:`Persister.mark` after every change to the controller, and awaits
:meth:`Persister.flush` where a reply promises durability (a lease granted, extended or cancelled):
flush returns once a save that began after the call has committed. One save covers every change
marked before it began, so concurrent callers share one write. Between changes the task records
``touch`` every ``alive_interval_s``, so a restart knows how long the pool ran after its last save.

Rules:

- Only this task calls the store, one call at a time.
- A failed save is logged, and the changes stay marked and are tried again after
  ``retry_s``; ``flush`` raises :class:`LeaseStoreError` for the save that failed.
- :meth:`freeze` (at shutdown) writes what is marked, then ignores every later change: connections
  closing because the pool stops are not rigs leaving their leases.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import structlog
import trio

from .store import JobRecord, LeaseStore, LeaseStoreError

__all__ = ["Persister"]

log = structlog.get_logger("stratumkit.lease.store")


class Persister:
    def __init__(
        self,
        store: LeaseStore,
        snapshot: Callable[[], Mapping[str, Any]],
        *,
        alive_interval_s: float = 1.0,
        retry_s: float = 0.5,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self._snapshot = snapshot
        self._alive_interval_s = alive_interval_s
        self._retry_s = retry_s
        self._wall = wall
        self._marked = 0  # changes marked so far
        self._saved = 0  # changes covered by the latest committed save
        self._failed: tuple[int, LeaseStoreError] | None = None  # (changes it covered, its error)
        self._changed = trio.Event()
        self._progress = trio.Event()
        self._frozen = False
        self._jobs: dict[str, JobRecord] = {}  # job records not yet written
        self.saves = 0

    @property
    def frozen(self) -> bool:
        return self._frozen

    @property
    def failing(self) -> str | None:
        """The error of the latest save while saves fail, else None."""
        return None if self._failed is None else str(self._failed[1])

    def mark(self) -> int:
        """Note a change; returns its number (a save covering it has ``_saved >= number``)."""
        if not self._frozen:
            self._marked += 1
            self._changed.set()
        return self._marked

    def note_job(self, record: JobRecord) -> None:
        """A job record to write with the next save."""
        if not self._frozen:
            self._jobs[record.job_id] = record
            self.mark()

    async def flush(self) -> None:
        """Mark, then wait until a save covers the mark; raises LeaseStoreError if it failed."""
        wanted = self.mark()
        while self._saved < wanted:
            if self._failed is not None and self._failed[0] >= wanted:
                raise self._failed[1]
            progress = self._progress
            await progress.wait()

    async def freeze(self, timeout_s: float = 5.0) -> None:
        """Save what is marked (waiting at most ``timeout_s``: a shutdown must not hang on a
        store that is down, or on a writer that never started), then stop taking changes."""
        with trio.move_on_after(timeout_s):
            try:
                await self.flush()
            except LeaseStoreError:
                pass  # logged by the writer; nothing more to do at shutdown
        self._frozen = True

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            with trio.move_on_after(self._alive_interval_s):
                await self._changed.wait()
            if self._saved >= self._marked:
                self._changed = trio.Event()
                if self._frozen:
                    continue  # the pool is stopping: its lease clocks stop with the last save
                try:
                    await self.store.touch(self._wall())
                except LeaseStoreError as exc:
                    log.error("lease store unavailable", error=str(exc))
                continue
            self._changed = trio.Event()
            covering = self._marked
            jobs, self._jobs = self._jobs, {}
            try:
                await self.store.save(self._snapshot(), self._wall())
                if jobs:
                    await self.store.save_jobs(list(jobs.values()))
            except LeaseStoreError as exc:
                self._jobs = jobs | self._jobs  # written next time, newer records first
                log.error("lease state not saved", error=str(exc))
                self._failed = (covering, exc)
                self._changed.set()  # try again
                self._wake()
                await trio.sleep(self._retry_s)
                continue
            self._saved = covering
            self._failed = None
            self.saves += 1
            self._wake()

    def _wake(self) -> None:
        self._progress.set()
        self._progress = trio.Event()
