"""Share history in memory: per-minute counts per worker, and each found block's round.

Sans-I/O: every method takes the time it is about; `stratumkit.shares.history_store` writes what
`take` hands it to SQLite, and `stratumkit.shares.history_service` runs the two on trio.

Rules:
* The share path pays one dict lookup and a few additions per share (`on_accepted`): counts
  go to the current minute's row of the worker, and the difficulty to the open round.
* A block's round holds the accepted shares whose time is after the previous block's
  `found_at` and not after its own. A block found at F (`on_block`) is closed by the first share
  timed after F, or by `take` at a time after F; the shares timed up to F, the block's own share
  among them, are its round. The same rule folds the durable share log after a restart
  (`fold`), so a round counts the same whether it was kept in memory or rebuilt.
* Rejected shares are counted here only (they are never durable): a crash loses those of the
  last unflushed minute, nothing else.
"""

from __future__ import annotations

import math
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass

MINUTE = 60
HOUR = 3600
#: Bucket sizes kept, by name (the API's `bucket=`).
BUCKETS = {"minute": MINUTE, "hour": HOUR}

#: One worker's row of one minute: [accepted, rejected, accepted difficulty, blocks, last share].
Row = list[float]
_LAST = 4


@dataclass(frozen=True, slots=True)
class Round:
    """The shares of one found block's round."""

    block_hash: str
    found_at: float
    difficulty: float
    shares: int


@dataclass(slots=True)
class RoundState:
    """The open round, as it is stored between flushes: its sums, and when the last closed
    round's block was found (blocks after that are the boundaries still to come)."""

    difficulty: float = 0.0
    shares: int = 0
    since: float = -math.inf


@dataclass(slots=True)
class Taken:
    """What one flush writes: minute rows, rejects by reason, rounds closed, the open round,
    and the share-log sequence number every accepted share counted so far stops before."""

    minutes: dict[int, dict[str, Row]]
    reasons: Counter[tuple[str, str]]
    rounds: list[Round]
    open_round: RoundState
    share_seq: int


class ShareHistory:
    """Counts since the last flush, and the open round. Feed it the pool's stats events."""

    __slots__ = ("_close_after", "_current", "_done", "_minute", "_pending", "_reasons", "_rounds", "round")

    def __init__(self, round_state: RoundState | None = None, pending: Iterable[tuple[float, str]] = ()) -> None:
        """`pending`: blocks found whose round is not yet closed, as (found_at, hash) in the
        order they were found."""
        self._minute = -1
        self._current: dict[str, Row] = {}
        self._done: dict[int, dict[str, Row]] = {}
        self._reasons: Counter[tuple[str, str]] = Counter()
        self.round = round_state if round_state is not None else RoundState()
        #: Blocks found whose round is still open: (found_at, hash), oldest first.
        self._pending: deque[tuple[float, str]] = deque(sorted(pending, key=_found_at))  # stable: ties keep order
        self._rounds: list[Round] = []
        self._close_after = self._pending[0][0] if self._pending else math.inf

    # ------------------------------------------------------------------ events

    def on_accepted(self, worker: str, difficulty: float, now: float, block: bool) -> None:
        minute = int(now // MINUTE)
        if minute != self._minute:
            self._roll(minute)
        row = self._current.get(worker)
        if row is None:
            row = self._current[worker] = [0, 0, 0.0, 0, now]
        row[0] += 1
        row[2] += difficulty
        row[4] = now
        if block:
            row[3] += 1
        if now > self._close_after:
            self._close_rounds(now)
        state = self.round
        state.difficulty += difficulty
        state.shares += 1

    def on_rejected(self, worker: str, reason: str, now: float) -> None:
        minute = int(now // MINUTE)
        if minute != self._minute:
            self._roll(minute)
        row = self._current.get(worker)
        if row is None:
            row = self._current[worker] = [0, 0, 0.0, 0, 0.0]
        row[1] += 1
        self._reasons[worker, reason] += 1

    def on_block(self, block_hash: str, found_at: float) -> None:
        """A block was found (any share, accepted or not, any fate at the node): a round ends."""
        self._pending.append((found_at, block_hash))
        if len(self._pending) > 1 and found_at < self._pending[-2][0]:  # a clock step back
            self._pending = deque(sorted(self._pending, key=_found_at))
        self._close_after = self._pending[0][0]

    def fold(self, records: Iterable[tuple[float, str, float, bool]]) -> int:
        """Count durable share records not yet counted (after a restart), given as (time, worker,
        difficulty, block) (`stratumkit.shares.log.read_accepted`); how many."""
        n = 0
        on_accepted = self.on_accepted
        for t, worker, difficulty, block in records:
            on_accepted(worker, difficulty, t, block)
            n += 1
        return n

    # ------------------------------------------------------------------ reading

    def take(self, now: float, share_seq: int) -> Taken:
        """Everything counted since the last take (the caller writes it down), with the rounds
        of blocks found before `now` closed; `share_seq` is the share log's count of records
        appended so far, which these counts include."""
        self._close_rounds(now)
        minutes = self._done  # handed over, not copied: take runs on the loop thread
        if self._current:
            rows = minutes.get(self._minute)
            if rows is None:
                minutes[self._minute] = self._current
            else:
                for worker, row in self._current.items():
                    _add(rows, worker, row)
        self._current, self._done, self._minute = {}, {}, -1
        reasons, self._reasons = self._reasons, Counter()
        rounds, self._rounds = self._rounds, []
        state = self.round
        open_round = RoundState(state.difficulty, state.shares, state.since)
        return Taken(minutes, reasons, rounds, open_round, share_seq)

    def give_back(self, taken: Taken) -> None:
        """Count again what a failed write took (its rounds go before those closed since)."""
        for minute, rows in taken.minutes.items():
            into = self._current if minute == self._minute else self._done.setdefault(minute, {})
            for worker, row in rows.items():
                _add(into, worker, row)
        self._reasons.update(taken.reasons)
        self._rounds[:0] = taken.rounds

    def unflushed(self) -> dict[int, dict[str, Row]]:
        """Minute -> worker -> row, for what is counted and not yet taken (copies)."""
        out = {minute: {w: list(r) for w, r in rows.items()} for minute, rows in self._done.items()}
        if self._current:
            rows = out.setdefault(self._minute, {})
            for worker, row in self._current.items():
                _add(rows, worker, row)
        return out

    def open_round(self, block_hash: str) -> Round | None:
        """A block's round while it is not yet written down: closed since the last take, or still
        open (the first pending block holds the open sums; any later one, nothing yet)."""
        for done in self._rounds:
            if done.block_hash == block_hash:
                return done
        for i, (found_at, pending) in enumerate(self._pending):
            if pending == block_hash:
                if i:
                    return Round(block_hash, found_at, 0.0, 0)
                return Round(block_hash, found_at, self.round.difficulty, self.round.shares)
        return None

    # ------------------------------------------------------------------ inside

    def _roll(self, minute: int) -> None:
        if self._current:
            rows = self._done.setdefault(self._minute, {})
            if rows:
                for worker, row in self._current.items():
                    _add(rows, worker, row)
            else:
                self._done[self._minute] = self._current
            self._current = {}
        self._minute = minute
        previous = self._done.get(minute)
        if previous is not None:  # the clock went back into a minute already rolled past
            self._current = self._done.pop(minute)

    def _close_rounds(self, now: float) -> None:
        state = self.round
        while self._pending and self._pending[0][0] < now:
            found_at, block_hash = self._pending.popleft()
            self._rounds.append(Round(block_hash, found_at, state.difficulty, state.shares))
            state.difficulty, state.shares, state.since = 0.0, 0, found_at
        self._close_after = self._pending[0][0] if self._pending else math.inf


def _found_at(pending: tuple[float, str]) -> float:
    return pending[0]


def _add(rows: dict[str, Row], worker: str, row: Row) -> None:
    into = rows.get(worker)
    if into is None:
        rows[worker] = list(row)
    else:
        for i in range(_LAST):
            into[i] += row[i]
        into[_LAST] = max(into[_LAST], row[_LAST])


def hashrate(difficulty: float, seconds: float) -> float:
    """Hashes per second that `difficulty` of accepted shares over `seconds` stands for."""
    return difficulty * 2**32 / seconds if seconds > 0 else 0.0


__all__ = ["BUCKETS", "HOUR", "MINUTE", "Round", "RoundState", "Row", "ShareHistory", "Taken", "hashrate"]
