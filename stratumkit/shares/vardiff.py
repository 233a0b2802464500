"""Per-connection variable difficulty: aim each miner at one share every `target_interval` s.

Pure: time is passed in, so tests drive it without sleeping. The rule:
- Retarget after `retarget_shares` shares or `retarget_time` seconds, whichever comes first, from
  the measured share rate: new = old * target_interval / observed_interval.
- Only move when the observed interval is outside the band [1/tolerance, tolerance] x target, and
  by at most `max_step` per retarget either way (avoids oscillation from noisy samples).
- A miner that sends nothing is lowered on time too, without waiting for a share that may never
  come: after `quiet_shares` target intervals of silence (or `retarget_time`, if sooner), when at
  the right difficulty it would have sent that many (silence that long happens by chance with
  probability e^-quiet_shares). `next_deadline()` tells the I/O layer when to call `tick()`.
- Fractional difficulties are fine (small CPU miners and bitaxes need them); results are clamped
  to [minimum, maximum] and rounded to 6 significant digits so the wire form stays short.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class VardiffConfig:
    target_interval: float = 10.0
    retarget_time: float = 60.0
    retarget_shares: int = 12
    tolerance: float = 1.5
    max_step: float = 4.0
    quiet_shares: float = 3.0
    minimum: float = 1e-6
    maximum: float = 2.0**40

    def __post_init__(self) -> None:
        if not self.target_interval > 0 or not self.retarget_time > 0:
            raise ValueError("vardiff intervals must be positive")
        if self.retarget_shares < 2 or self.tolerance < 1 or self.max_step <= 1:
            raise ValueError("vardiff needs retarget_shares >= 2, tolerance >= 1, max_step > 1")
        if not 0 < self.minimum <= self.maximum:
            raise ValueError("vardiff needs 0 < minimum <= maximum")

    def clamp(self, difficulty: float) -> float:
        d = min(max(difficulty, self.minimum), self.maximum)
        return float(f"{d:.6g}")


class Vardiff:
    """The difficulty state of one connection."""

    __slots__ = ("_shares", "_since", "config", "difficulty")

    def __init__(self, config: VardiffConfig, difficulty: float, now: float) -> None:
        self.config = config
        self.difficulty = config.clamp(difficulty)
        self._shares = 0
        self._since = now

    def reset(self, difficulty: float, now: float) -> float:
        """Set the difficulty outright (suggest_difficulty, configure) and restart measuring."""
        self.difficulty = self.config.clamp(difficulty)
        self._shares = 0
        self._since = now
        return self.difficulty

    def on_share(self, now: float) -> float | None:
        """Count an accepted share; return a new difficulty when it is time to change."""
        self._shares += 1
        if self._shares >= self.config.retarget_shares or now - self._since >= self.config.retarget_time:
            return self._retarget(now)
        return None

    def tick(self, now: float) -> float | None:
        """Called at `next_deadline()`: lower the difficulty of a miner that went quiet."""
        if now >= self.next_deadline():
            return self._retarget(now)
        return None

    def next_deadline(self) -> float:
        c = self.config
        if self._shares:
            return self._since + c.retarget_time
        return self._since + min(c.retarget_time, c.quiet_shares * c.target_interval)

    def _retarget(self, now: float) -> float | None:
        c = self.config
        elapsed = max(now - self._since, 1e-3)
        shares = self._shares
        self._shares = 0
        self._since = now
        # No shares in the window: act as if one were about to arrive (halves at most by max_step).
        observed = elapsed / shares if shares else elapsed * 2
        ratio = c.target_interval / observed
        if not shares:
            ratio = min(ratio, 1.0)  # silence is never a reason to raise
        if 1 / c.tolerance <= ratio <= c.tolerance:
            return None
        ratio = min(max(ratio, 1 / c.max_step), c.max_step)
        new = c.clamp(self.difficulty * ratio)
        if math.isclose(new, self.difficulty):
            return None
        self.difficulty = new
        return new
