"""Share history on disk: `history.sqlite` in data_dir, written once per flush.

Tables: per-minute and per-hour buckets for the pool and for each worker, each worker's totals and
rejects by reason, every found block's round, and `state`: the share-log sequence number the
stored counts stop before, with the open round. One flush is one transaction, so the stored
counts and that sequence number always agree; after a crash the share log's records from that
number on are folded in again (`stratumkit.shares.history_service`), so every accepted share
that was durable is counted exactly once.

Rules: only one thread at a time uses a store (the service serialises its calls); worker
buckets by minute are kept for `MINUTE_KEEP` seconds, by hour for `HOUR_KEEP`; the pool's are
kept as long again as the workers'.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .history import BUCKETS, HOUR, MINUTE, Round, RoundState, Row, Taken

#: How long per-worker buckets are kept, by bucket size (the pool's: twice as long).
MINUTE_KEEP = 2 * 86400
HOUR_KEEP = 90 * 86400
_KEEP = {MINUTE: MINUTE_KEEP, HOUR: HOUR_KEEP}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS pool_buckets (
    size INTEGER NOT NULL, t INTEGER NOT NULL,
    accepted INTEGER NOT NULL, rejected INTEGER NOT NULL, difficulty REAL NOT NULL,
    PRIMARY KEY (size, t)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS worker_buckets (
    size INTEGER NOT NULL, t INTEGER NOT NULL, worker TEXT NOT NULL,
    accepted INTEGER NOT NULL, rejected INTEGER NOT NULL, difficulty REAL NOT NULL,
    PRIMARY KEY (size, t, worker)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS worker_buckets_by_worker ON worker_buckets (worker, size, t);
CREATE TABLE IF NOT EXISTS worker_totals (
    worker TEXT PRIMARY KEY,
    accepted INTEGER NOT NULL, rejected INTEGER NOT NULL, difficulty REAL NOT NULL,
    blocks INTEGER NOT NULL, last_share REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS worker_rejects (
    worker TEXT NOT NULL, reason TEXT NOT NULL, count INTEGER NOT NULL,
    PRIMARY KEY (worker, reason)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rounds (
    hash TEXT PRIMARY KEY, found_at REAL NOT NULL, difficulty REAL NOT NULL, shares INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS rounds_found_at ON rounds (found_at);
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
"""


@dataclass(frozen=True, slots=True)
class Point:
    """One bucket of one series."""

    t: int
    accepted: int
    rejected: int
    difficulty: float


@dataclass(frozen=True, slots=True)
class WorkerTotals:
    worker: str
    accepted: int
    rejected: int
    difficulty: float
    blocks: int
    last_share: float


class HistoryStore:
    """The SQLite file behind the share history."""

    def __init__(self, path: str | Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    # ------------------------------------------------------------------ state

    def share_seq(self) -> int:
        """Share-log records already counted (0 for a new store: the whole log is folded in)."""
        row = self._db.execute("SELECT value FROM state WHERE key = 'share_seq'").fetchone()
        return int(row[0]) if row else 0

    def open_round(self) -> RoundState:
        row = self._db.execute("SELECT value FROM state WHERE key = 'open_round'").fetchone()
        if row is None:
            return RoundState()
        value = json.loads(row[0])
        since = value["since"]
        return RoundState(float(value["difficulty"]), int(value["shares"]), -math.inf if since is None else since)

    def closed_rounds(self) -> set[str]:
        return {row[0] for row in self._db.execute("SELECT hash FROM rounds")}

    # ------------------------------------------------------------------ writing

    def write(self, taken: Taken, now: float) -> None:
        """One flush, in one transaction; then buckets past their keep are dropped."""
        db = self._db
        db.execute("BEGIN")
        try:
            for minute, rows in taken.minutes.items():
                start = minute * MINUTE
                for size in BUCKETS.values():
                    self._add_buckets(start - start % size, size, rows)
                db.executemany(
                    "INSERT INTO worker_totals VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (worker) DO UPDATE SET "
                    "accepted = accepted + excluded.accepted, rejected = rejected + excluded.rejected, "
                    "difficulty = difficulty + excluded.difficulty, blocks = blocks + excluded.blocks, "
                    "last_share = max(last_share, excluded.last_share)",
                    [(worker, int(row[0]), int(row[1]), row[2], int(row[3]), row[4]) for worker, row in rows.items()],
                )
            db.executemany(
                "INSERT INTO worker_rejects VALUES (?, ?, ?) ON CONFLICT (worker, reason) DO UPDATE SET "
                "count = count + excluded.count",
                [(worker, reason, n) for (worker, reason), n in taken.reasons.items()],
            )
            db.executemany(
                "INSERT OR REPLACE INTO rounds VALUES (?, ?, ?, ?)",
                [(r.block_hash, r.found_at, r.difficulty, r.shares) for r in taken.rounds],
            )
            state = taken.open_round
            since = None if state.since == -math.inf else state.since
            db.executemany(
                "INSERT OR REPLACE INTO state VALUES (?, ?)",
                [
                    ("share_seq", str(taken.share_seq)),
                    (
                        "open_round",
                        json.dumps({"difficulty": state.difficulty, "shares": state.shares, "since": since}),
                    ),
                ],
            )
            for size, keep in _KEEP.items():
                db.execute("DELETE FROM worker_buckets WHERE size = ? AND t < ?", (size, now - keep))
                db.execute("DELETE FROM pool_buckets WHERE size = ? AND t < ?", (size, now - 2 * keep))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def _add_buckets(self, t: int, size: int, rows: dict[str, Row]) -> None:
        upsert = "accepted = accepted + excluded.accepted, rejected = rejected + excluded.rejected, " + (
            "difficulty = difficulty + excluded.difficulty"
        )
        self._db.executemany(
            "INSERT INTO worker_buckets VALUES (?, ?, ?, ?, ?, ?) "
            f"ON CONFLICT (size, t, worker) DO UPDATE SET {upsert}",
            [(size, t, worker, int(row[0]), int(row[1]), row[2]) for worker, row in rows.items()],
        )
        self._db.execute(
            f"INSERT INTO pool_buckets VALUES (?, ?, ?, ?, ?) ON CONFLICT (size, t) DO UPDATE SET {upsert}",
            (
                size,
                t,
                int(sum(r[0] for r in rows.values())),
                int(sum(r[1] for r in rows.values())),
                sum(r[2] for r in rows.values()),
            ),
        )

    # ------------------------------------------------------------------ reading

    def pool_series(self, size: int, since: float) -> list[Point]:
        rows = self._db.execute(
            "SELECT t, accepted, rejected, difficulty FROM pool_buckets WHERE size = ? AND t >= ? ORDER BY t",
            (size, _bucket_start(since, size)),
        )
        return [Point(*row) for row in rows]

    def worker_series(self, size: int, since: float, workers: Iterable[str]) -> dict[str, list[Point]]:
        out: dict[str, list[Point]] = {}
        for worker in workers:
            rows = self._db.execute(
                "SELECT t, accepted, rejected, difficulty FROM worker_buckets INDEXED BY worker_buckets_by_worker "
                "WHERE worker = ? AND size = ? AND t >= ? ORDER BY t",
                (worker, size, _bucket_start(since, size)),
            )
            out[worker] = [Point(*row) for row in rows]
        return out

    def top_workers(self, since: float, limit: int) -> list[tuple[str, float]]:
        """Workers by accepted difficulty in the hours from the one holding `since`, most first:
        (worker, difficulty). Hour buckets, whatever the series' size: 60 times fewer rows to sum
        than minutes (with 10,000 workers an hour of minutes is 600,000)."""
        rows = self._db.execute(
            "SELECT worker, SUM(difficulty) AS d FROM worker_buckets WHERE size = ? AND t >= ? "
            "GROUP BY worker ORDER BY d DESC, worker LIMIT ?",
            (HOUR, _bucket_start(since, HOUR), limit),
        )
        return [(str(w), float(d)) for w, d in rows]

    def rounds(self, hashes: Iterable[str], *, since: float | None = None) -> dict[str, Round]:
        """The stored rounds of these blocks, and of every block found from `since` on."""
        out = {}
        for block_hash in hashes:
            row = self._db.execute(
                "SELECT found_at, difficulty, shares FROM rounds WHERE hash = ?", (block_hash,)
            ).fetchone()
            if row is not None:
                out[block_hash] = Round(block_hash, row[0], row[1], row[2])
        if since is not None:
            rows = self._db.execute(
                "SELECT hash, found_at, difficulty, shares FROM rounds WHERE found_at >= ?", (since,)
            )
            out.update((row[0], Round(*row)) for row in rows)
        return out

    def totals(self) -> list[WorkerTotals]:
        return [WorkerTotals(*row) for row in self._db.execute("SELECT * FROM worker_totals")]

    def rejects(self) -> list[tuple[str, str, int]]:
        return [(w, r, n) for w, r, n in self._db.execute("SELECT worker, reason, count FROM worker_rejects")]

    def recent_minutes(self, since: float) -> list[tuple[str, int, float]]:
        """(worker, minute bucket start, accepted difficulty) since `since`: a hashrate window."""
        rows = self._db.execute(
            "SELECT worker, t, difficulty FROM worker_buckets WHERE size = ? AND t >= ?",
            (MINUTE, _bucket_start(since, MINUTE)),
        )
        return [(str(w), int(t), float(d)) for w, t, d in rows]

    def close(self) -> None:
        self._db.close()


def _bucket_start(t: float, size: int) -> int:
    return int(t // size) * size


__all__ = ["HOUR_KEEP", "MINUTE_KEEP", "HistoryStore", "Point", "WorkerTotals"]
