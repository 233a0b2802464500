"""The daily settlement's rules: PPLNS windows and exact splits, FPPS at a rate, balances, the
UTC cut; a property test over random share sequences and blocks."""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import date
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stratumkit.shares.payouts import PaidBlock, PayoutRules, daily_report, day_bounds, split_reward

DAY = date(2026, 12, 1)
START, END = day_bounds(DAY)
REWARD = 50 * 100_000_000


def block(at: float, difficulty: float = 1.0, reward: int | None = REWARD, status: str = "confirmed") -> PaidBlock:
    return PaidBlock(f"{int(at * 1000):064x}", at, status, reward, difficulty)


def test_day_bounds_are_utc_midnights() -> None:
    assert day_bounds(DAY) == (1796083200.0, 1796169600.0)


def test_split_is_exact_and_gives_the_remainder_by_largest_fraction_then_name() -> None:
    assert split_reward(10, {"a": 1.0, "b": 1.0, "c": 1.0}) == {"a": 4, "b": 3, "c": 3}
    assert split_reward(10, {"c": 1.0, "b": 1.0, "a": 1.0}) == {"a": 4, "b": 3, "c": 3}
    assert split_reward(100, {"a": 2.0, "b": 1.0}) == {"a": 67, "b": 33}
    assert split_reward(7, {}) == {}


def test_pplns_window_is_n_network_difficulties_newest_first_the_oldest_cut() -> None:
    shares = [(START + i, w, 1.0, False) for i, w in enumerate(["old", "old", "a", "b", "b"])]
    report = daily_report(shares, [block(START + 10, difficulty=1.25)], DAY, PayoutRules(pplns_window=2))
    (row,) = report["blocks"]
    # the window is 2.5: b, b and half of a's share; old gets nothing
    assert row["window_difficulty"] == 2.5 and row["window_workers"] == 2
    earned = {w["worker"]: w["earned_sats"] for w in report["workers"]}
    assert earned == {"old": 0, "a": REWARD // 5, "b": REWARD * 4 // 5}
    assert report["earned_sats"] + report["fee_sats"] == report["reward_sats"] == REWARD


def test_a_share_after_the_block_is_not_in_its_window() -> None:
    shares = [(START + 1, "a", 1.0, True), (START + 5, "late", 1.0, False)]
    report = daily_report(shares, [block(START + 2)], DAY, PayoutRules())
    assert {w["worker"]: w["earned_sats"] for w in report["workers"]} == {"a": REWARD, "late": 0}


def test_the_fee_the_statuses_and_a_block_with_no_shares() -> None:
    shares = [(START + 1, "a", 1.0, False)]
    blocks = [
        block(START + 2),
        block(START + 3, status="rejected"),
        block(START + 4, status="orphaned"),
        block(START + 5, reward=None),
        block(START - 100),  # yesterday, before any share: the pool keeps it
    ]
    report = daily_report(shares, blocks, DAY, PayoutRules(pool_fee=0.01))
    assert report["earned_sats"] == REWARD - REWARD // 100
    assert report["fee_sats"] == REWARD // 100 and report["reward_sats"] == REWARD
    assert [b["pays"] for b in report["blocks"]] == [True, False, False, False]
    assert report["workers"][0]["balance_before_sats"] == 0


def test_balances_carry_the_days_before_and_the_cut_is_midnight() -> None:
    shares = [(START - 10, "a", 1.0, True), (START - 1e-6, "b", 1.0, False), (START, "b", 2.0, True)]
    blocks = [block(START - 5), block(START + 1)]
    report = daily_report(shares, blocks, DAY, PayoutRules(pplns_window=1))
    rows = {w["worker"]: w for w in report["workers"]}
    assert rows["a"]["balance_before_sats"] == REWARD and rows["a"]["shares"] == 0
    assert rows["b"]["shares"] == 1 and rows["b"]["difficulty"] == 2.0
    assert rows["b"]["earned_sats"] == REWARD and rows["b"]["balance_sats"] == REWARD
    yesterday = daily_report(shares, blocks, date(2026, 11, 30), PayoutRules(pplns_window=1))
    assert {w["worker"]: w["shares"] for w in yesterday["workers"]} == {"a": 1, "b": 1}


def test_fpps_pays_each_share_its_expected_value_less_the_fee() -> None:
    shares = [(START + 1, "a", 0.5, False), (START + 2, "b", 0.25, False), (START - 1, "a", 1.0, False)]
    rules = PayoutRules(scheme="fpps", pool_fee=0.02, fpps_reward_sats=1000, fpps_network_difficulty=3.0)
    report = daily_report(shares, [block(START + 3)], DAY, rules)
    rows = {w["worker"]: w for w in report["workers"]}
    assert rows["a"]["earned_sats"] == math.floor(0.5 * 1000 * 0.98 / 3)  # 163
    assert rows["b"]["earned_sats"] == math.floor(0.25 * 1000 * 0.98 / 3)  # 81
    assert rows["a"]["balance_before_sats"] == math.floor(1000 * 0.98 / 3)
    assert report["reward_sats"] == math.floor(0.75 * 1000 / 3)
    assert report["earned_sats"] + report["fee_sats"] == report["reward_sats"]
    assert report["blocks"][0]["pays"] is False  # under FPPS blocks are the pool's


def test_fpps_is_priced_in_usd_at_the_hashprice_and_the_sats_stay_exact() -> None:
    # 2^32 hashes a difficulty-1 share: difficulty 20116.5676... is 8.64e16 hashes, one TH/s for a day
    th_day = Fraction(10**12 * 86_400, 2**32)
    shares = [(START + 1, "a", float(th_day), False), (START + 2, "b", 0.25, False), (START - 1, "a", 1.0, False)]
    sats_only = PayoutRules(scheme="fpps", pool_fee=0.02, fpps_reward_sats=1000, fpps_network_difficulty=3.0)
    priced = PayoutRules(
        scheme="fpps", pool_fee=0.02, fpps_reward_sats=1000, fpps_network_difficulty=3.0, hashprice_usd_per_th_day=0.05
    )
    plain = daily_report(shares, [], DAY, sats_only)
    report = daily_report(shares, [], DAY, priced)
    assert (plain["earned_usd"], plain["hashprice_usd_per_th_day"]) == (None, None)
    assert "earned_usd" not in plain["workers"][0]
    # the satoshis are the same, to the last one
    for key in ("earned_sats", "fee_sats", "reward_sats"):
        assert report[key] == plain[key]
    assert [(w["worker"], w["earned_sats"], w["balance_sats"]) for w in report["workers"]] == [
        (w["worker"], w["earned_sats"], w["balance_sats"]) for w in plain["workers"]
    ]
    rows = {w["worker"]: w for w in report["workers"]}
    a_diff = Fraction(float(th_day))  # the float the share log holds
    assert rows["a"]["hashes"] == float(th_day) * 2**32
    assert rows["a"]["earned_usd"] == float(a_diff * 2**32 * Fraction(0.05) / (10**12 * 86_400) * Fraction(98, 100))
    assert rows["a"]["earned_usd"] == pytest.approx(0.05 * 0.98)  # one TH-day at 0.05 USD, less 2%
    assert rows["b"]["earned_usd"] == pytest.approx(0.25 * 2**32 * 0.05 / 8.64e16 * 0.98)
    assert report["hashprice_usd_per_th_day"] == 0.05
    assert report["earned_usd"] == pytest.approx(rows["a"]["earned_usd"] + rows["b"]["earned_usd"])
    # PPLNS pays blocks, not hash value: no USD figure even with a hashprice
    pplns = daily_report(shares, [], DAY, PayoutRules(hashprice_usd_per_th_day=0.05))
    assert pplns["earned_usd"] is None and "earned_usd" not in pplns["workers"][0]


def test_bad_rules_are_refused_with_a_reason() -> None:
    with pytest.raises(ValueError, match="payout_scheme"):
        PayoutRules(scheme="pps")
    with pytest.raises(ValueError, match="pool_fee"):
        PayoutRules(pool_fee=1.0)
    with pytest.raises(ValueError, match="FPPS needs"):
        daily_report([], [], DAY, PayoutRules(scheme="fpps"))


WORKERS = st.sampled_from(["w0", "w1", "w2", "w3.x"])
DIFFICULTIES = st.floats(min_value=1e-6, max_value=4.0, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(
    steps=st.lists(st.tuples(st.floats(0, 7200, allow_nan=False), WORKERS, DIFFICULTIES), max_size=60),
    found=st.lists(
        st.tuples(st.floats(-3600, 90000, allow_nan=False), st.floats(0.01, 10), st.integers(0, 10**10)), max_size=6
    ),
    window=st.floats(0.5, 4),
    fee=st.sampled_from([0.0, 0.01, 0.025, 0.5]),
)
def test_the_report_reconciles_with_any_share_sequence(
    steps: list[tuple[float, str, float]], found: list[tuple[float, float, int]], window: float, fee: float
) -> None:
    t = START - 3600.0
    shares = []
    for gap, worker, difficulty in steps:
        t += gap
        shares.append((t, worker, difficulty, False))
    blocks = [PaidBlock(f"{i:064x}", START + at, "confirmed", r, d) for i, (at, d, r) in enumerate(found)]
    report = daily_report(shares, blocks, DAY, PayoutRules(pplns_window=window, pool_fee=fee))
    in_day: dict[str, list[float]] = defaultdict(list)
    for when, worker, difficulty, _ in shares:
        if START <= when < END:
            in_day[worker].append(difficulty)
    rows = {w["worker"]: w for w in report["workers"] if w["shares"]}
    assert {w: (r["shares"], r["difficulty"]) for w, r in rows.items()} == {
        w: (len(v), math.fsum(v)) for w, v in in_day.items()
    }
    assert report["shares"] == len(shares_in := [s for s in shares if START <= s[0] < END])
    assert report["difficulty"] == math.fsum(s[2] for s in shares_in)
    day_rewards = sum(b.reward_sats or 0 for b in blocks if START <= b.found_at < END)
    assert report["reward_sats"] == day_rewards
    assert report["earned_sats"] + report["fee_sats"] == day_rewards
    assert sum(w["earned_sats"] for w in report["workers"]) == report["earned_sats"]
    for row in report["blocks"]:
        assert row["paid_sats"] + row["fee_sats"] == row["reward_sats"]
        kept = math.floor(row["reward_sats"] * Fraction(str(fee)))
        assert row["fee_sats"] == (kept if row["window_workers"] else row["reward_sats"])  # the split is whole
        assert row["window_difficulty"] <= window * row["network_difficulty"] * (1 + 1e-9)
    assert all(w["balance_sats"] == w["balance_before_sats"] + w["earned_sats"] for w in report["workers"])


def test_a_record_after_a_clock_step_back_still_counts_on_its_day() -> None:
    shares = [(START + 1, "a", 1.0, False), (END + 5, "a", 1.0, False), (END - 5, "b", 3.0, False)]
    report = daily_report(shares, [], DAY, PayoutRules())
    assert {w["worker"]: w["difficulty"] for w in report["workers"]} == {"a": 1.0, "b": 3.0}
