"""Found blocks: written durably before the first submit, submitted with retries, confirmed.

The ledger is SQLite (WAL, synchronous=FULL): a block is on disk before any node hears of it, so
a crash between finding and submitting loses nothing — on restart `BlockSubmitter.resubmit_pending`
sends every block not yet confirmed again. A found block's status moves
pending -> submitted -> confirmed, or -> rejected (the node said why) / orphaned (the chain moved
on without it).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import structlog
import trio

from stratumkit.failures import damaged_file

from .sources import SourceUnavailable, TemplateSource

log = structlog.get_logger("stratumkit.blocks")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS blocks (
    hash TEXT PRIMARY KEY,
    height INTEGER NOT NULL,
    worker TEXT NOT NULL,
    found_at REAL NOT NULL,
    status TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '',
    attempts INTEGER NOT NULL DEFAULT 0,
    block BLOB NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class FoundBlock:
    hash: str
    height: int
    worker: str
    found_at: float
    status: str
    detail: str
    attempts: int

    def as_dict(self) -> dict[str, object]:
        return {
            "hash": self.hash,
            "height": self.height,
            "worker": self.worker,
            "found_at": self.found_at,
            "status": self.status,
            "detail": self.detail,
            "attempts": self.attempts,
        }


class BlockLedger:
    """The durable record of every block the pool found."""

    def __init__(self, path: str | Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise damaged_file(path, "a SQLite database of found blocks", exc) from None
        self._lock = threading.Lock()

    def add(self, block_hash: str, height: int, worker: str, block: bytes, found_at: float) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR IGNORE INTO blocks (hash, height, worker, found_at, status, block) "
                "VALUES (?, ?, ?, ?, 'pending', ?)",
                (block_hash, height, worker, found_at, block),
            )

    def set_status(self, block_hash: str, status: str, detail: str = "", *, attempt: bool = False) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE blocks SET status = ?, detail = ?, attempts = attempts + ? WHERE hash = ?",
                (status, detail, int(attempt), block_hash),
            )

    def block_bytes(self, block_hash: str) -> bytes:
        with self._lock:
            row = self._db.execute("SELECT block FROM blocks WHERE hash = ?", (block_hash,)).fetchone()
        if row is None:
            raise KeyError(block_hash)
        return bytes(row[0])

    def page(self, *, before: tuple[float, str] | None = None, limit: int = 50) -> list[FoundBlock]:
        """Newest first, those strictly older than `before` = (found_at, hash) when given."""
        query = "SELECT hash, height, worker, found_at, status, detail, attempts FROM blocks"
        args: tuple[object, ...] = ()
        if before is not None:
            query += " WHERE found_at < ? OR (found_at = ? AND hash < ?)"
            args = (before[0], before[0], before[1])
        query += " ORDER BY found_at DESC, hash DESC LIMIT ?"
        with self._lock:
            rows = self._db.execute(query, (*args, limit)).fetchall()
        return [FoundBlock(*row) for row in rows]

    def found_after(self, found_at: float) -> list[FoundBlock]:
        """Every block found after `found_at`, in the order they were found."""
        with self._lock:
            rows = self._db.execute(
                "SELECT hash, height, worker, found_at, status, detail, attempts FROM blocks "
                "WHERE found_at > ? ORDER BY found_at, rowid",
                (found_at,),
            ).fetchall()
        return [FoundBlock(*row) for row in rows]

    def block_head(self, block_hash: str, size: int) -> bytes:
        """The first `size` bytes of a block (its header and coinbase, without reading the rest)."""
        with self._lock:
            row = self._db.execute(
                "SELECT substr(block, 1, ?) FROM blocks WHERE hash = ?", (size, block_hash)
            ).fetchone()
        if row is None:
            raise KeyError(block_hash)
        return bytes(row[0])

    def list(self, *, statuses: tuple[str, ...] | None = None, limit: int = 1000) -> list[FoundBlock]:
        query = "SELECT hash, height, worker, found_at, status, detail, attempts FROM blocks"
        args: tuple[object, ...] = ()
        if statuses:
            query += f" WHERE status IN ({','.join('?' * len(statuses))})"
            args = statuses
        query += " ORDER BY found_at DESC LIMIT ?"
        with self._lock:
            rows = self._db.execute(query, (*args, limit)).fetchall()
        return [FoundBlock(*row) for row in rows]

    def count(self) -> int:
        """Every block ever found (what `list` shows only the latest of), whatever its status."""
        with self._lock:
            (n,) = self._db.execute("SELECT COUNT(*) FROM blocks").fetchone()
        return int(n)

    def close(self) -> None:
        with self._lock:
            self._db.close()


class BlockSubmitter:
    """Submit found blocks to the template source until the chain settles their fate.

    A block the node accepted ("null", "duplicate", "inconclusive") is watched until it is in the
    best chain (confirmed) or known and off it (orphaned). If the node no longer knows it (it
    restarted before it had the block's parent, and "inconclusive" blocks wait in memory only),
    the block is sent again, with backoff, up to `max_submits` times.
    """

    def __init__(
        self,
        ledger: BlockLedger,
        source: TemplateSource,
        *,
        retry_delay: float = 1.0,
        max_delay: float = 30.0,
        confirm_delay: float = 2.0,
        confirm_checks: int = 5,
        max_submits: int = 50,
    ) -> None:
        self.ledger = ledger
        self.source = source
        self.retry_delay = retry_delay
        self.max_delay = max_delay
        self.confirm_delay = confirm_delay
        self.confirm_checks = confirm_checks
        self.max_submits = max_submits

    async def _set(self, block_hash: str, status: str, detail: str = "", *, attempt: bool = False) -> None:
        await trio.to_thread.run_sync(lambda: self.ledger.set_status(block_hash, status, detail, attempt=attempt))

    async def record(self, block_hash: str, height: int, worker: str, block: bytes) -> None:
        """Write the block down durably (before anyone submits it)."""
        await trio.to_thread.run_sync(self.ledger.add, block_hash, height, worker, block, time.time())

    async def submit(self, block_hash: str, block: bytes) -> str:
        """Submit until the block is confirmed, orphaned or rejected; returns that status (or
        "submitted" if it is still undecided after `max_submits` submissions)."""
        delay = self.retry_delay
        submits = 0
        while submits < self.max_submits:
            try:
                result = await self.source.submit_block(block)
            except SourceUnavailable as exc:
                await self._set(block_hash, "pending", f"node unreachable: {exc}", attempt=True)
                log.warning("block submit failed, will retry", block=block_hash, error=str(exc), retry_in=delay)
                await trio.sleep(delay)
                delay = min(delay * 2, self.max_delay)
                continue
            submits += 1
            if result is not None and result not in ("duplicate", "inconclusive", "duplicate-inconclusive"):
                await self._set(block_hash, "rejected", result, attempt=True)
                log.error("block rejected", block=block_hash, reason=result)
                return "rejected"
            await self._set(block_hash, "submitted", result or "", attempt=True)
            status = await self._settle(block_hash)
            if status != "unknown":
                return status
            log.warning("the node does not know a submitted block; sending it again", block=block_hash)
            await trio.sleep(delay)
            delay = min(delay * 2, self.max_delay)
        await self._set(block_hash, "submitted", f"undecided after {submits} submissions")
        return "submitted"

    async def _settle(self, block_hash: str) -> str:
        """Watch a submitted block: "confirmed", "orphaned", or "unknown" (send it again)."""
        status = "unknown"
        for _ in range(self.confirm_checks):
            try:
                status = await self.source.block_status(block_hash)
            except SourceUnavailable:
                status = "unreachable"
            if status == "in-chain":
                await self._set(block_hash, "confirmed")
                log.info("block confirmed", block=block_hash)
                return "confirmed"
            if status == "orphaned":
                await self._set(block_hash, "orphaned", "the chain moved on without it")
                log.warning("block orphaned", block=block_hash)
                return "orphaned"
            await trio.sleep(self.confirm_delay)
        return "unknown"

    async def resubmit_pending(self) -> None:
        """On start: every block not settled goes to the node again, all at once."""
        pending = self.ledger.list(statuses=("pending", "submitted"))
        async with trio.open_nursery() as nursery:
            for found in pending:
                log.info("resubmitting block from before restart", block=found.hash, height=found.height)
                nursery.start_soon(self.submit, found.hash, self.ledger.block_bytes(found.hash))
