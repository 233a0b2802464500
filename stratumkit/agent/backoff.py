"""Exponential backoff as a value: what the agent waits before trying a lost pool, backend or miner again.

Rules: the first wait is ``initial``; each failure doubles it up to ``maximum``; ``reset()`` after a
success starts over. No clock and no sleeping here: the trio shells ask ``next_delay()`` and sleep.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Backoff:
    initial: float = 1.0
    maximum: float = 30.0
    factor: float = 2.0
    _next: float = field(default=0.0, init=False)

    def __post_init__(self) -> None:
        if not 0 < self.initial <= self.maximum or self.factor < 1:
            raise ValueError("backoff needs 0 < initial <= maximum and factor >= 1")
        self._next = self.initial

    def next_delay(self) -> float:
        """The wait before the next try; the one after it is longer (up to ``maximum``)."""
        delay = self._next
        self._next = min(self._next * self.factor, self.maximum)
        return delay

    def reset(self) -> None:
        self._next = self.initial
