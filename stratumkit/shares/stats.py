"""Pool accounting in memory: share counts per worker and a hashrate estimate.

Hashrate is estimated from accepted difficulty: a share of difficulty d stands for d * 2**32
hashes on average, so a worker's rate is `sum(d) * 2**32 / elapsed` over a sliding window. Sums
are kept in one-minute buckets over a ten-minute window, so the cost per share is one dict lookup
and two additions. Elapsed time runs from when the worker began mining (`on_worker_started`, its
authorize), not from its first share: a share ends a stretch of hashing, so timing from the first
one drops a whole share interval and overstates a slow miner's rate. The durable record is the
share log and the block ledger; a restarted pool seeds its totals from them (`PoolStats(...)`),
and its per-worker numbers and rejects from the share history.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

BUCKET = 60.0
WINDOW_BUCKETS = 10
WINDOW = BUCKET * WINDOW_BUCKETS  # a worker not seen for longer than this counts no hashrate
MIN_SPAN = 10.0  # a new worker's first shares are not spread over less than this


@dataclass(slots=True)
class WorkerStats:
    accepted: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    accepted_difficulty: float = 0.0
    blocks: int = 0
    last_share: float = 0.0
    first_share: float | None = None
    #: When the current stretch of mining began: the pool's word (`started`) or, failing that,
    #: the first share after a gap longer than the window.
    mining_since: float | None = None
    #: The latest sign of life: a share or a start.
    last_seen: float | None = None
    #: Whether the pool reports starts: then only a start (never a share) begins a new stretch.
    announced: bool = False
    # bucket index -> difficulty sum
    buckets: dict[int, float] = field(default_factory=dict)

    def seen_within(self, now: float, span: float = WINDOW) -> bool:
        return self.last_seen is not None and now - self.last_seen <= span

    def started(self, now: float) -> None:
        """The worker began mining (authorized, got work). A second start while it is still seen
        (another connection under the same name, a quick reconnect) keeps the earlier one."""
        if self.mining_since is None or not self.seen_within(now):
            self.mining_since = now
        self.announced = True
        self.last_seen = now if self.last_seen is None else max(self.last_seen, now)

    def hashrate(self, now: float) -> float:
        """Difficulty accepted in the window, times 2**32, over the time mined in the window (at
        least MIN_SPAN: the first shares of a new worker say little about its rate)."""
        if not self.seen_within(now):
            return 0.0
        first = int(now // BUCKET) - WINDOW_BUCKETS + 1
        total = sum(d for b, d in self.buckets.items() if b >= first)
        start = first * BUCKET if self.mining_since is None else max(first * BUCKET, self.mining_since)
        return total * 2**32 / max(now - start, MIN_SPAN)


class PoolStats:
    """Totals and per-worker numbers. `accepted` and `blocks` start from the durable record (the
    share log's record count, the block ledger's rows) so they survive a restart; rejects and
    per-worker numbers are seeded from the share history (`stratumkit.shares.history_service`)."""

    def __init__(self, *, accepted: int = 0, blocks: int = 0) -> None:
        self.workers: dict[str, WorkerStats] = {}
        self.accepted = accepted
        self.rejected: Counter[str] = Counter()
        self.blocks = blocks
        self.connections = 0

    def worker(self, name: str) -> WorkerStats:
        w = self.workers.get(name)
        if w is None:
            w = self.workers[name] = WorkerStats()
        return w

    def on_worker_started(self, worker: str, now: float) -> None:
        """The worker began mining (its authorize, or its first work): its hashrate is timed from
        here. Without this call, a worker's estimate is timed from its first share."""
        self.worker(worker).started(now)

    def on_accepted(self, worker: str, difficulty: float, now: float, block: bool) -> None:
        w = self.worker(worker)
        w.accepted += 1
        w.accepted_difficulty += difficulty
        if w.first_share is None:
            w.first_share = now
        if w.mining_since is None or (not w.announced and not w.seen_within(now)):
            w.mining_since = now  # no start from the pool: the first share after a gap is the best guess
        w.last_share = now
        w.last_seen = now if w.last_seen is None else max(w.last_seen, now)
        b = int(now // BUCKET)
        w.buckets[b] = w.buckets.get(b, 0.0) + difficulty
        if len(w.buckets) > WINDOW_BUCKETS + 1:
            for old in sorted(w.buckets)[: -WINDOW_BUCKETS - 1]:
                del w.buckets[old]
        self.accepted += 1
        if block:
            w.blocks += 1
            self.blocks += 1

    def on_rejected(self, worker: str, reason: str) -> None:
        self.worker(worker).rejected[reason] += 1
        self.rejected[reason] += 1

    def hashrate(self, now: float) -> float:
        """The sum over workers seen within the window; those gone longer add nothing."""
        return sum(w.hashrate(now) for w in self.workers.values() if w.seen_within(now))

    def snapshot(self, now: float) -> dict[str, object]:
        return {
            "connections": self.connections,
            "accepted": self.accepted,
            "rejected": dict(self.rejected),
            "blocks": self.blocks,
            "hashrate": self.hashrate(now),
            "workers": {
                name: {
                    "accepted": w.accepted,
                    "rejected": dict(w.rejected),
                    "blocks": w.blocks,
                    "hashrate": w.hashrate(now),
                    "last_share": w.last_share,
                }
                for name, w in self.workers.items()
            },
        }
