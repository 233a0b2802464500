"""Cumulative latency histograms with fixed bucket bounds, as Prometheus exposes them.

An observation costs one bisect and two additions, so a histogram can sit on a path that runs per
batch (the share log's write and fdatasync) without showing up in its cost.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence

#: Bounds (seconds) for disk syncs: 50 µs (a write cache) to 1 s (a disk in trouble).
SYNC_BOUNDS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


class Histogram:
    """Counts of observations at or below each bound (`le`), their sum and their number."""

    __slots__ = ("_counts", "bounds", "count", "sum")

    def __init__(self, bounds: Sequence[float] = SYNC_BOUNDS) -> None:
        self.bounds = tuple(sorted(bounds))
        self._counts = [0] * (len(self.bounds) + 1)  # the last: above every bound
        self.count = 0
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self._counts[bisect_left(self.bounds, value)] += 1
        self.count += 1
        self.sum += value

    def cumulative(self) -> list[tuple[float, int]]:
        """(bound, observations at or below it), ending with (inf, count)."""
        out = []
        running = 0
        for bound, n in zip((*self.bounds, float("inf")), self._counts, strict=True):
            running += n
            out.append((bound, running))
        return out

    def as_dict(self) -> dict[str, object]:
        """JSON-able: {"buckets": [[le, count], ...], "sum", "count"} (le of the last: "+Inf")."""
        buckets: list[list[object]] = [[b, n] for b, n in self.cumulative()]
        buckets[-1][0] = "+Inf"
        return {"buckets": buckets, "sum": self.sum, "count": self.count}


__all__ = ["SYNC_BOUNDS", "Histogram"]
