"""The share history on trio: the pool's stats port in front of `PoolStats`, a flush once a
minute, and the reads behind `/v1/history` and `/v1/blocks`.

Rules:
* On the share path it adds one `ShareHistory.on_accepted` call (counters in memory) and
  nothing else: no I/O, no lock.
* A flush takes the counters on the loop thread, waits until every share they count is on disk
  in the share log, then writes them in one SQLite transaction in a worker thread, with the share
  log's sequence number they stop before. A write that fails gives the counters back.
* At start (`open`), the share-log records from the stored sequence number on (all of them for
  a new store) are folded in again, with the ledger's blocks found since the last stored round as
  round boundaries: the history then counts every durable share once. `PoolStats` is seeded from
  the store (worker totals, rejects by reason, the last ten minutes for hashrate).
* Reads and flushes take one lock, so a read sees each count once: from the store or from memory.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import structlog
import trio

from stratumkit.jobs import block_history
from stratumkit.jobs.block_history import BlockFacts
from stratumkit.jobs.blocks import BlockLedger, FoundBlock

from .history import BUCKETS, MINUTE, Round, ShareHistory, hashrate
from .history_store import HistoryStore, Point
from .log import ShareLog, read_accepted
from .stats import WINDOW, PoolStats

log = structlog.get_logger("stratumkit.history")

#: Seconds between flushes to SQLite.
FLUSH_INTERVAL = 60.0
SHUTDOWN_FLUSH_TIMEOUT = 5.0
#: The default span of `/v1/history` by bucket size, and the most buckets one answer holds.
DEFAULT_SPAN = {MINUTE: 3600, 3600: 7 * 86400}
MAX_POINTS = 5000


class HistoryService:
    """Built by the pool: `stats` for the session ports, `on_block` from `Pool.found`, `run` in
    the pool's nursery."""

    def __init__(
        self,
        path: str | Path,
        share_log: ShareLog,
        ledger: BlockLedger,
        stats: PoolStats,
        *,
        flush_interval: float = FLUSH_INTERVAL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.share_log = share_log
        self.ledger = ledger
        self.stats = stats
        self.flush_interval = flush_interval
        self.clock = clock
        self.store = HistoryStore(path)
        self.flushes = 0
        self._lock = trio.Lock()
        self._facts: dict[str, BlockFacts] = {}  # read from the ledger's blocks by the last /v1/blocks
        self.history = self._restore()
        self.on_worker_started = stats.on_worker_started

    # ------------------------------------------------------------------ start

    def _restore(self) -> ShareHistory:
        store = self.store
        seq = store.share_seq()
        records = self.share_log.records
        if seq > records:
            log.warning("share history counts more shares than the share log holds", history=seq, share_log=records)
            seq = records
        state = store.open_round()
        closed = store.closed_rounds()
        boundaries = [(b.found_at, b.hash) for b in self.ledger.found_after(state.since) if b.hash not in closed]
        history = ShareHistory(state, boundaries)
        started = time.perf_counter()
        folded = history.fold(read_accepted(self.share_log.directory, seq))
        if folded:
            log.info(
                "share history rebuilt from the share log",
                shares=folded,
                seconds=round(time.perf_counter() - started, 3),
            )
        self._seed(history)
        return history

    def _seed(self, history: ShareHistory) -> None:
        """Worker totals, rejects and the hashrate window of `PoolStats`, from before this start."""
        stats = self.stats
        now = self.clock()
        for totals in self.store.totals():
            w = stats.worker(totals.worker)
            w.accepted += totals.accepted
            w.accepted_difficulty += totals.difficulty
            w.blocks += totals.blocks
            w.last_share = max(w.last_share, totals.last_share)
        for worker, reason, n in self.store.rejects():
            stats.worker(worker).rejected[reason] += n
            stats.rejected[reason] += n
        recent = [(w, t, d) for w, t, d in self.store.recent_minutes(now - WINDOW)]
        for minute, rows in history.unflushed().items():
            for worker, row in rows.items():
                w = stats.worker(worker)
                w.accepted += int(row[0])
                w.accepted_difficulty += row[2]
                w.blocks += int(row[3])
                w.last_share = max(w.last_share, row[4])
                recent.append((worker, minute * MINUTE, row[2]))
        for worker, t, difficulty in recent:
            if t < now - WINDOW:
                continue
            w = stats.worker(worker)
            index = t // MINUTE
            w.buckets[index] = w.buckets.get(index, 0.0) + difficulty
            w.mining_since = t if w.mining_since is None else min(w.mining_since, t)
            seen = min(float(t + MINUTE), now)
            w.last_seen = seen if w.last_seen is None else max(w.last_seen, seen)

    # ------------------------------------------------------------------ the stats port

    def on_accepted(self, worker: str, difficulty: float, now: float, block: bool) -> None:
        self.history.on_accepted(worker, difficulty, now, block)
        self.stats.on_accepted(worker, difficulty, now, block)

    def on_rejected(self, worker: str, reason: str) -> None:
        self.history.on_rejected(worker, reason, self.clock())
        self.stats.on_rejected(worker, reason)

    def on_block(self, block_hash: str, found_at: float) -> None:
        self.history.on_block(block_hash, found_at)

    # ------------------------------------------------------------------ flushing

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Flush every `flush_interval` until cancelled; then flush once more and close."""
        task_status.started()
        try:
            while True:
                await trio.sleep(self.flush_interval)
                try:
                    await self.flush()
                except Exception:
                    log.exception("share history flush failed; its counts are kept for the next one")
        finally:
            # bounded: a share log that can no longer sync must not hold up the shutdown (what is
            # not written here is folded in again from the share log at the next start)
            with trio.CancelScope(shield=True), trio.move_on_after(SHUTDOWN_FLUSH_TIMEOUT):
                try:
                    await self.flush()
                except Exception:
                    log.exception("share history flush at shutdown failed (the share log has the shares)")
            self.store.close()

    async def flush(self) -> None:
        async with self._lock:
            now = self.clock()
            taken = self.history.take(now, self.share_log.records + self.share_log.pending)
            try:
                await self.share_log.synced()
                await trio.to_thread.run_sync(self.store.write, taken, now)
            except BaseException:
                self.history.give_back(taken)
                raise
            self.flushes += 1

    # ------------------------------------------------------------------ reading

    async def series(self, bucket: str, since: float | None, worker: str | None, top: int) -> dict[str, Any]:
        """The `/v1/history` answer (see `stratumkit.api.app`)."""
        size = BUCKETS[bucket]
        now = self.clock()
        start = now - DEFAULT_SPAN[size] if since is None else since
        start = max(start, (now // size - MAX_POINTS + 1) * size)
        async with self._lock:
            memory = _regroup(self.history.unflushed(), size, start)

            def read() -> tuple[list[Point], dict[str, list[Point]]]:
                pool = self.store.pool_series(size, start)
                if worker is not None:
                    names = [worker]
                else:
                    in_memory = {name for rows in memory.values() for name in rows}
                    ranked: dict[str, float] = dict(self.store.top_workers(start, top + len(in_memory)))
                    for rows in memory.values():
                        for name, row in rows.items():
                            ranked[name] = ranked.get(name, 0.0) + row[2]
                    names = [name for name, _ in sorted(ranked.items(), key=lambda kv: (-kv[1], kv[0]))[:top]]
                return pool, self.store.worker_series(size, start, names)

            pool, workers = await trio.to_thread.run_sync(read)
        pool_points = _merge(pool, {t: _sum_rows(rows.values()) for t, rows in memory.items()})
        first = pool_points[0].t if pool_points else None
        series = {"pool": _render(pool_points, first, size, now)}
        for name, points in workers.items():
            merged = _merge(points, {t: rows[name] for t, rows in memory.items() if name in rows})
            series[name] = _render(merged, first, size, now)
        return {"bucket": bucket, "series": series}

    async def blocks(self, limit: int, before: str | None) -> dict[str, Any]:
        """The `/v1/blocks` answer (`before`: a cursor a page gave)."""
        edge = block_history.parse_cursor(before) if before is not None else None
        now = self.clock()
        async with self._lock:

            def read() -> tuple[list[FoundBlock], list[FoundBlock], dict[str, BlockFacts], dict[str, Round]]:
                window = now - max(block_history.WINDOWS.values())
                page = self.ledger.page(before=edge, limit=limit + 1)
                recent = self.ledger.found_after(window)
                facts = {}
                for b in (*page, *recent):
                    known = self._facts.get(b.hash)
                    if known is None:
                        known = block_history.block_facts(self.ledger.block_head(b.hash, block_history.HEAD_BYTES))
                    facts[b.hash] = known
                self._facts = facts  # kept: the summary window and the last page, nothing older
                return page, recent, facts, self.store.rounds({b.hash for b in page}, since=window)

            page, recent, facts, rounds = await trio.to_thread.run_sync(read)
            for b in (*page, *recent):
                open_round = self.history.open_round(b.hash)
                if open_round is not None:
                    rounds[b.hash] = open_round
        more = len(page) > limit
        page = page[:limit]
        return {
            "blocks": [block_history.block_view(b, facts[b.hash], rounds.get(b.hash)) for b in page],
            "next": block_history.cursor(page[-1]) if more else None,
            "summary": block_history.summaries(recent, facts, rounds, now),
        }


def _regroup(minutes: dict[int, dict[str, list[float]]], size: int, start: float) -> dict[int, dict[str, list[float]]]:
    """Minute rows summed into buckets of `size` seconds, from `start` on."""
    out: dict[int, dict[str, list[float]]] = {}
    for minute, rows in minutes.items():
        t = minute * MINUTE // size * size
        if t < start // size * size:
            continue
        into = out.setdefault(t, {})
        for worker, row in rows.items():
            have = into.get(worker)
            into[worker] = list(row) if have is None else [a + b for a, b in zip(have, row, strict=True)]
    return out


def _sum_rows(rows: Iterable[list[float]]) -> list[float]:
    total = [0.0, 0.0, 0.0]
    for row in rows:
        total[0] += row[0]
        total[1] += row[1]
        total[2] += row[2]
    return total


def _merge(points: list[Point], extra: dict[int, list[float]]) -> list[Point]:
    by_t = {p.t: p for p in points}
    for t, row in extra.items():
        p = by_t.get(t)
        base = (0, 0, 0.0) if p is None else (p.accepted, p.rejected, p.difficulty)
        by_t[t] = Point(t, base[0] + int(row[0]), base[1] + int(row[1]), base[2] + row[2])
    return [by_t[t] for t in sorted(by_t)]


def _render(points: list[Point], first: int | None, size: int, now: float) -> list[dict[str, Any]]:
    """Every bucket from the pool's first one to the current one (zeros where nothing was counted)."""
    if first is None:
        return []
    by_t = {p.t: p for p in points}
    current = int(now // size) * size
    out = []
    for t in range(first, max(current, first) + 1, size):
        p = by_t.get(t)
        span = size if t < current else max(now - t, 1.0)
        out.append(
            {
                "t": t,
                "hashrate": 0.0 if p is None else hashrate(p.difficulty, span),
                "accepted": 0 if p is None else p.accepted,
                "rejected": 0 if p is None else p.rejected,
            }
        )
    return out


__all__ = ["FLUSH_INTERVAL", "MAX_POINTS", "HistoryService"]
