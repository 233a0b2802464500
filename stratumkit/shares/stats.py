"""Pool accounting in memory: share counts per worker and a hashrate estimate.

Hashrate is estimated from accepted difficulty: a share of difficulty d stands for d * 2**32
hashes on average. Sums are kept in one-minute buckets over a ten-minute window, so the cost per
share is one dict lookup and two additions. The durable record is the share log; these numbers are
for operators and the API.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

BUCKET = 60.0
WINDOW_BUCKETS = 10
MIN_SPAN = 10.0  # a new worker's first shares are not spread over less than this


@dataclass(slots=True)
class WorkerStats:
    accepted: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    accepted_difficulty: float = 0.0
    blocks: int = 0
    last_share: float = 0.0
    first_share: float | None = None
    # bucket index -> difficulty sum
    buckets: dict[int, float] = field(default_factory=dict)

    def hashrate(self, now: float) -> float:
        first = int(now // BUCKET) - WINDOW_BUCKETS + 1
        total = sum(d for b, d in self.buckets.items() if b >= first)
        start = first * BUCKET if self.first_share is None else max(first * BUCKET, self.first_share)
        return total * 2**32 / max(now - start, MIN_SPAN)


class PoolStats:
    def __init__(self) -> None:
        self.workers: dict[str, WorkerStats] = {}
        self.accepted = 0
        self.rejected: Counter[str] = Counter()
        self.blocks = 0
        self.connections = 0

    def worker(self, name: str) -> WorkerStats:
        w = self.workers.get(name)
        if w is None:
            w = self.workers[name] = WorkerStats()
        return w

    def on_accepted(self, worker: str, difficulty: float, now: float, block: bool) -> None:
        w = self.worker(worker)
        w.accepted += 1
        w.accepted_difficulty += difficulty
        w.last_share = now
        if w.first_share is None:
            w.first_share = now
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
        return sum(w.hashrate(now) for w in self.workers.values())

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
