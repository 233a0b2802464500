"""Per-worker earnings, balances and the daily settlement, from the share log and the block ledger.

Pure: the shares are `(time, worker, difficulty, block)` in log order (`read_accepted`), the
blocks are `PaidBlock`s (the ledger's rows with the facts read from each block itself); the
answer is the `/v1/reports/daily` JSON.

Rules:
* A day is [00:00, 24:00) UTC. A share belongs to the day its record's time falls in; a block to
  the day its ledger `found_at` falls in. The day is settled at the cut: nothing after it changes it.
* Credited difficulty: a worker's accepted shares' difficulty in the day (correctly rounded sum,
  `math.fsum`), whatever the scheme. Shares and difficulty reconcile with the share log by
  construction: every record timed in the day is counted once, under its worker.
* PPLNS (`pplns_window` = N, default 2): a block found pays its reward (`reward_sats`, read from
  its coinbase) to the last N x its network difficulty of accepted share difficulty before it:
  the records logged before the first record timed after the block, newest first, the oldest one
  counted only by the part that fits. The pool keeps floor(reward x pool_fee); the rest is split
  pro rata to the window's difficulty in whole satoshis: each worker gets the floor of its share,
  and the satoshis left over (fewer than the workers) go one each to the workers with the largest
  fractional parts, ties to the worker name that sorts first. A block's workers' payouts plus the
  fee are its reward, exactly. A block with no shares before it pays its reward to the pool.
  Rejected and orphaned blocks, and blocks whose reward could not be read, pay nothing. Blocks
  are credited when found, not when they mature (100 confirmations).
* FPPS: every share is paid its expected value, reward x share difficulty / network difficulty,
  less the fee: a worker's day is floor(difficulty x reward x (1 - pool_fee) / network difficulty)
  satoshis. The rate (reward and network difficulty) is the pool's current template's, given by
  the caller: a past day is priced at today's rate. The pool keeps the rest (`fee_sats`: the fee
  and the rounding); blocks the pool finds are the pool's.
* FPPS in USD: when a hashprice (USD per TH/s per day, from the power prices) is given, each
  worker's day is also priced in USD: its hashes (credited difficulty x 2^32, the work a share of
  difficulty 1 stands for) x the hashprice / (10^12 x 86,400) x (1 - pool_fee). Like the rate, it
  is the caller's current hashprice (a past day is priced at today's). The satoshis are unchanged
  and stay exact; the USD figure is a float beside them (the total is the exact sum, rounded once).
* Balance: what a worker earned on every day up to and including this one (nothing is paid out
  by this module; `balance_before_sats` is the balance at the day's start).
"""

from __future__ import annotations

import math
from collections import defaultdict, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from fractions import Fraction
from typing import Any

#: Hashes one difficulty-1 share stands for.
HASHES_PER_SHARE = 2**32
#: Hashes in one TH/s sustained for a day (USD/TH/day -> USD per hash).
HASHES_PER_TH_DAY = 10**12 * 86_400

__all__ = ["PAYING", "SCHEMES", "PaidBlock", "PayoutRules", "daily_report", "day_bounds", "split_reward"]

SCHEMES = ("pplns", "fpps")
#: Ledger statuses whose blocks pay (the node has not said no).
PAYING = frozenset({"pending", "submitted", "confirmed"})


@dataclass(frozen=True, slots=True)
class PaidBlock:
    hash: str
    found_at: float
    status: str
    reward_sats: int | None
    network_difficulty: float

    @property
    def pays(self) -> bool:
        return self.status in PAYING and self.reward_sats is not None and self.network_difficulty > 0


@dataclass(frozen=True, slots=True)
class PayoutRules:
    scheme: str = "pplns"
    pplns_window: float = 2.0
    pool_fee: float = 0.0
    #: FPPS's rate: the reward (sats) and network difficulty a share's expected value is taken at.
    fpps_reward_sats: int | None = None
    fpps_network_difficulty: float | None = None
    #: FPPS's price in USD: the hashprice in force (USD per TH/s per day), None if unknown.
    hashprice_usd_per_th_day: float | None = None

    def __post_init__(self) -> None:
        if self.scheme not in SCHEMES:
            raise ValueError(f"payout_scheme must be one of {', '.join(SCHEMES)}, got {self.scheme!r}")
        if not self.pplns_window > 0:
            raise ValueError(f"pplns_window must be positive, got {self.pplns_window}")
        if not 0 <= self.pool_fee < 1:
            raise ValueError(f"pool_fee must be a fraction in [0, 1), got {self.pool_fee}")

    @property
    def fee(self) -> Fraction:
        return Fraction(str(self.pool_fee))


def day_bounds(day: date) -> tuple[float, float]:
    """[start, end) of a UTC day in unix seconds."""
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return start.timestamp(), (start + timedelta(days=1)).timestamp()


def split_reward(amount: int, weights: dict[str, float]) -> dict[str, int]:
    """`amount` satoshis pro rata to `weights`, summing to `amount` exactly (largest remainder,
    ties to the name that sorts first); {} when there is no weight."""
    exact = {w: Fraction(v) for w, v in weights.items() if v > 0}
    total = sum(exact.values(), Fraction(0))
    if total == 0:
        return {}
    shares = {w: amount * v / total for w, v in exact.items()}
    paid = {w: math.floor(s) for w, s in shares.items()}
    left = amount - sum(paid.values())
    for worker in sorted(shares, key=lambda w: (-(shares[w] - paid[w]), w))[:left]:
        paid[worker] += 1
    return paid


def _window(recent: deque[tuple[str, float]], size: float) -> dict[str, float]:
    """Worker -> difficulty of the newest `size` of difficulty in `recent` (the oldest share cut)."""
    weights: dict[str, float] = defaultdict(float)
    need = size
    for worker, difficulty in reversed(recent):
        if need <= 0:
            break
        take = min(difficulty, need)
        weights[worker] += take
        need -= take
    return dict(weights)


def daily_report(
    shares: Iterable[tuple[float, str, float, bool]],
    blocks: Sequence[PaidBlock],
    day: date,
    rules: PayoutRules,
) -> dict[str, Any]:
    """The day's settlement: shares and credited difficulty per worker, earnings, balances, the
    blocks found and what each paid (one pass over every record of `shares`)."""
    start, end = day_bounds(day)
    fee = rules.fee
    ordered = sorted(blocks, key=lambda b: (b.found_at, b.hash))
    paying = [b for b in ordered if b.pays and b.found_at < end]
    cap = rules.pplns_window * max((b.network_difficulty for b in paying), default=0.0)
    recent: deque[tuple[str, float]] = deque()
    recent_total = 0.0
    next_block = 0
    block_pay: dict[str, dict[str, int]] = {}
    block_window: dict[str, tuple[float, int]] = {}
    day_shares: dict[str, int] = defaultdict(int)
    day_difficulty: dict[str, list[float]] = defaultdict(list)
    before_difficulty: dict[int, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    pplns = rules.scheme == "pplns"

    def settle(block: PaidBlock) -> None:
        assert block.reward_sats is not None
        weights = _window(recent, rules.pplns_window * block.network_difficulty)
        fee_sats = math.floor(block.reward_sats * fee)
        pay = split_reward(block.reward_sats - fee_sats, weights)
        block_pay[block.hash] = pay
        block_window[block.hash] = (math.fsum(weights.values()), len(weights))

    for t, worker, difficulty, _block in shares:  # every record: a clock stepped back still counts
        if pplns:
            while next_block < len(paying) and paying[next_block].found_at < t:
                settle(paying[next_block])
                next_block += 1
            recent.append((worker, difficulty))
            recent_total += difficulty
            while len(recent) > 1 and recent_total - recent[0][1] >= cap * (1 + 1e-9):
                recent_total -= recent.popleft()[1]
        if start <= t < end:
            day_shares[worker] += 1
            day_difficulty[worker].append(difficulty)
        elif t < start and not pplns:
            before_difficulty[math.floor((t - start) // 86400)][worker].append(difficulty)
    if pplns:
        for block in paying[next_block:]:
            settle(block)

    earned: dict[str, int] = defaultdict(int)
    before: dict[str, int] = defaultdict(int)
    fee_total = 0
    reward_total = 0
    block_rows = []
    for b in ordered:
        if not start <= b.found_at < end and not (pplns and b.found_at < start and b.pays):
            continue
        pay = block_pay.get(b.hash, {})
        paid = sum(pay.values())
        in_day = start <= b.found_at < end
        target = earned if in_day else before
        for worker, sats in pay.items():
            target[worker] += sats
        if not in_day:
            continue
        reward = b.reward_sats if b.pays and pplns else 0
        assert reward is not None
        fee_total += reward - paid
        reward_total += reward
        window_difficulty, window_workers = block_window.get(b.hash, (0.0, 0))
        block_rows.append(
            {
                "hash": b.hash,
                "found_at": b.found_at,
                "status": b.status,
                "reward_sats": b.reward_sats,
                "network_difficulty": b.network_difficulty,
                "pays": b.pays and pplns,
                "paid_sats": paid,
                "fee_sats": reward - paid,
                "window_difficulty": window_difficulty,
                "window_workers": window_workers,
            }
        )

    expected_total = 0
    earned_usd: dict[str, Fraction] = {}
    usd_price = None if pplns or rules.hashprice_usd_per_th_day is None else _usd_per_difficulty(rules)
    if not pplns:
        rate = _fpps_rate(rules)
        gross_day = Fraction(0)
        for worker, values in day_difficulty.items():
            gross = Fraction(math.fsum(values)) * rate
            gross_day += gross
            earned[worker] = math.floor(gross * (1 - fee))
            if usd_price is not None:
                earned_usd[worker] = Fraction(math.fsum(values)) * usd_price
        for workers in before_difficulty.values():
            for worker, values in workers.items():
                before[worker] += math.floor(Fraction(math.fsum(values)) * rate * (1 - fee))
        expected_total = math.floor(gross_day)
        fee_total = expected_total - sum(earned.values())

    names = sorted(set(day_shares) | set(earned) | set(before))
    worker_rows: list[dict[str, Any]] = [
        {
            "worker": name,
            "shares": day_shares.get(name, 0),
            "difficulty": math.fsum(day_difficulty.get(name, [])),
            "earned_sats": earned.get(name, 0),
            "balance_before_sats": before.get(name, 0),
            "balance_sats": before.get(name, 0) + earned.get(name, 0),
        }
        for name in names
    ]
    if usd_price is not None:
        for row in worker_rows:
            row["hashes"] = row["difficulty"] * HASHES_PER_SHARE
            row["earned_usd"] = float(earned_usd.get(row["worker"], Fraction(0)))
    return {
        "date": day.isoformat(),
        "from": start,
        "to": end,
        "scheme": rules.scheme,
        "pplns_window": rules.pplns_window,
        "pool_fee": rules.pool_fee,
        "fpps_rate": None
        if pplns
        else {"reward_sats": rules.fpps_reward_sats, "network_difficulty": rules.fpps_network_difficulty},
        "shares": sum(day_shares.values()),
        "difficulty": math.fsum(d for values in day_difficulty.values() for d in values),
        "earned_sats": sum(earned.values()),
        "hashprice_usd_per_th_day": None if pplns else rules.hashprice_usd_per_th_day,
        "earned_usd": None if usd_price is None else float(sum(earned_usd.values(), Fraction(0))),
        "fee_sats": fee_total,
        "reward_sats": reward_total if pplns else expected_total,
        "blocks": block_rows,
        "workers": worker_rows,
    }


def _usd_per_difficulty(rules: PayoutRules) -> Fraction:
    """USD a worker earns per unit of credited difficulty under FPPS, net of the fee."""
    assert rules.hashprice_usd_per_th_day is not None
    hashprice = Fraction(rules.hashprice_usd_per_th_day)
    return HASHES_PER_SHARE * hashprice / HASHES_PER_TH_DAY * (1 - rules.fee)


def _fpps_rate(rules: PayoutRules) -> Fraction:
    reward, difficulty = rules.fpps_reward_sats, rules.fpps_network_difficulty
    if reward is None or difficulty is None or not difficulty > 0:
        raise ValueError("FPPS needs the current block reward and network difficulty (no template yet)")
    return Fraction(reward) / Fraction(difficulty)
