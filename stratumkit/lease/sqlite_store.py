"""The embedded lease store: ``leases.sqlite`` in the pool's data directory.

Crash contract: WAL mode, synchronous=FULL, one transaction per ``save`` or ``touch``; a call that
returned has been fsynced, and a call cut short by kill -9 happened whole or not at all.

Schema: ``head`` (one row: the snapshot head and its wall time), ``alive`` (one row: the last
``touch``), ``leases`` and ``rigs`` (one msgpack row each, with its position in the snapshot, so
``load`` returns them in the controller's order), ``integrators`` (issued token digests),
``jobs`` (which lease ran which job, when).
Marked with PRAGMA application_id "SKL1" and versioned with PRAGMA user_version; a foreign file or
a newer schema is refused.

Every statement runs on a worker thread (``offload=False``: on the trio thread, for tests on trio's
autojump clock), one call at a time (a lock).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import trio

from .store import JobRecord, LeaseStoreError, RowDiff, Rows, StoredLeases, pack_rows, unpack_snapshot

__all__ = ["SqliteLeaseStore", "open_sqlite_lease_store"]

SCHEMA_VERSION = 1
APPLICATION_ID = 0x534B4C31  # "SKL1"
_TABLES = ("leases", "rigs")
_SCHEMA = (
    "CREATE TABLE head (one INTEGER PRIMARY KEY CHECK (one = 1), data BLOB NOT NULL, saved_at REAL NOT NULL)",
    "CREATE TABLE alive (one INTEGER PRIMARY KEY CHECK (one = 1), at REAL NOT NULL)",
    "CREATE TABLE leases (key TEXT PRIMARY KEY, pos INTEGER NOT NULL, data BLOB NOT NULL)",
    "CREATE TABLE rigs (key TEXT PRIMARY KEY, pos INTEGER NOT NULL, data BLOB NOT NULL)",
    "CREATE TABLE integrators (digest TEXT PRIMARY KEY, name TEXT NOT NULL)",
    "CREATE TABLE jobs (job_id TEXT PRIMARY KEY, seq INTEGER NOT NULL, lease_id TEXT NOT NULL, rig_id TEXT NOT NULL,"
    " claimed_at REAL NOT NULL, finished_at REAL)",
    "CREATE INDEX jobs_by_lease ON jobs (lease_id, seq)",
)

_T = TypeVar("_T")


class SqliteLeaseStore:
    def __init__(self, conn: sqlite3.Connection, *, offload: bool = True) -> None:
        self._conn = conn
        self._offload = offload
        self._diffs = {table: RowDiff() for table in _TABLES}
        self._lock = trio.Lock()  # one statement sequence at a time on the one connection

    async def _run(self, fn: Callable[[], _T]) -> _T:
        def guarded() -> _T:
            try:
                return fn()
            except sqlite3.Error as exc:
                raise LeaseStoreError(f"lease store: {exc}") from exc

        async with self._lock:
            if not self._offload:
                return guarded()
            return await trio.to_thread.run_sync(guarded)

    async def add_integrator(self, token_digest: str, name: str) -> None:
        sql = "INSERT OR REPLACE INTO integrators (digest, name) VALUES (?, ?)"
        await self._run(lambda: self._conn.execute(sql, (token_digest, name)))

    async def integrators(self) -> dict[str, str]:
        return await self._run(lambda: dict(self._conn.execute("SELECT digest, name FROM integrators").fetchall()))

    async def save_jobs(self, records: Sequence[JobRecord]) -> None:
        rows = [(r.job_id, r.lease_id, r.rig_id, r.claimed_at, r.finished_at) for r in records]

        def write() -> None:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.executemany(
                    "INSERT INTO jobs (job_id, seq, lease_id, rig_id, claimed_at, finished_at)"
                    " VALUES (?1, (SELECT coalesce(max(seq), 0) + 1 FROM jobs), ?2, ?3, ?4, ?5)"
                    " ON CONFLICT (job_id) DO UPDATE SET lease_id = ?2, rig_id = ?3, claimed_at = ?4, finished_at = ?5",
                    rows,
                )
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

        await self._run(write)

    async def lease_jobs(self, lease_id: str, limit: int) -> list[JobRecord]:
        sql = (
            "SELECT job_id, lease_id, rig_id, claimed_at, finished_at FROM jobs WHERE lease_id = ? ORDER BY seq LIMIT ?"
        )
        rows = await self._run(lambda: self._conn.execute(sql, (lease_id, limit)).fetchall())
        return [JobRecord(*row) for row in rows]

    async def load(self) -> StoredLeases | None:
        def read() -> StoredLeases | None:
            head = self._conn.execute("SELECT data, saved_at FROM head").fetchone()
            if head is None:
                return None
            alive = self._conn.execute("SELECT at FROM alive").fetchone()
            rows = {t: [r[0] for r in self._conn.execute(f"SELECT data FROM {t} ORDER BY pos")] for t in _TABLES}
            snapshot = unpack_snapshot(head[0], rows["leases"], rows["rigs"])
            saved_at = float(head[1])
            return StoredLeases(snapshot, saved_at, max(saved_at, float(alive[0]) if alive else saved_at))

        return await self._run(read)

    async def save(self, snapshot: Mapping[str, Any], wall: float) -> None:
        head, leases, rigs = pack_rows(snapshot)
        tables: dict[str, Rows] = {"leases": leases, "rigs": rigs}

        def write() -> None:
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute("INSERT OR REPLACE INTO head (one, data, saved_at) VALUES (1, ?, ?)", (head, wall))
                conn.execute("INSERT OR REPLACE INTO alive (one, at) VALUES (1, ?)", (wall,))
                for table, rows in tables.items():
                    full, upsert, gone = self._diffs[table].changes(rows)
                    if full:
                        conn.execute(f"DELETE FROM {table}")
                    conn.executemany(f"DELETE FROM {table} WHERE key = ?", [(k,) for k in gone])
                    conn.executemany(
                        f"INSERT OR REPLACE INTO {table} (key, pos, data) VALUES (?, ?, ?)",
                        [(k, pos, data) for k, (pos, data) in upsert.items()],
                    )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            for table, rows in tables.items():
                self._diffs[table].committed(rows)

        await self._run(write)

    async def touch(self, wall: float) -> None:
        await self._run(lambda: self._conn.execute("INSERT OR REPLACE INTO alive (one, at) VALUES (1, ?)", (wall,)))

    def close(self) -> None:
        self._conn.close()


def _open(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
    try:
        if conn.execute("PRAGMA journal_mode = WAL").fetchone()[0] != "wal":
            raise LeaseStoreError(f"{path!r}: the lease store needs WAL mode (a file on a local disk)")
        conn.execute("PRAGMA synchronous = FULL")
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if app_id == 0 and version == 0:
            if conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
                raise LeaseStoreError(f"{path!r} is an SQLite database of something else")
            conn.execute("BEGIN IMMEDIATE")
            for statement in _SCHEMA:
                conn.execute(statement)
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")
        elif app_id != APPLICATION_ID:
            raise LeaseStoreError(f"{path!r} is not a lease store (application_id {app_id:#x})")
        elif version != SCHEMA_VERSION:
            raise LeaseStoreError(f"{path!r} has lease store schema {version}; this code reads {SCHEMA_VERSION}")
    except sqlite3.Error as exc:
        conn.close()
        raise LeaseStoreError(f"{path!r}: {exc}") from exc
    except BaseException:
        conn.close()
        raise
    return conn


@asynccontextmanager
async def open_sqlite_lease_store(
    path: str | os.PathLike[str], *, offload: bool = True
) -> AsyncIterator[SqliteLeaseStore]:
    store = SqliteLeaseStore(_open(os.fspath(path)), offload=offload)
    try:
        yield store
    finally:
        store.close()
