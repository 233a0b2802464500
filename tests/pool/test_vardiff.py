"""Vardiff is pure: time is an argument, so these tests drive it without a clock."""

from __future__ import annotations

import pytest

from stratumkit.shares.vardiff import Vardiff, VardiffConfig

CFG = VardiffConfig(
    target_interval=10.0,
    retarget_time=60.0,
    retarget_shares=12,
    tolerance=1.5,
    max_step=4.0,
    minimum=1e-6,
    maximum=1e6,
)


def shares(v: Vardiff, start: float, interval: float, count: int) -> list[float | None]:
    return [v.on_share(start + interval * (i + 1)) for i in range(count)]


def test_fast_miner_is_raised_after_retarget_shares_by_at_most_max_step() -> None:
    v = Vardiff(CFG, 1.0, now=0.0)
    changes = shares(v, 0.0, 0.1, 12)  # 100x too fast
    assert changes[:11] == [None] * 11
    assert changes[11] == v.difficulty == 4.0


def test_moderately_fast_miner_is_raised_by_the_measured_ratio() -> None:
    v = Vardiff(CFG, 1.0, now=0.0)
    changes = shares(v, 0.0, 5.0, 12)  # one share per 5 s, aiming at 10 s
    assert changes[-1] == pytest.approx(2.0)
    assert v.difficulty == pytest.approx(2.0)


def test_slow_miner_is_lowered_at_retarget_time_by_at_most_max_step() -> None:
    v = Vardiff(CFG, 64.0, now=0.0)
    assert v.on_share(30.0) is None  # before retarget_time, too few shares: no decision yet
    new = v.on_share(400.0)  # 2 shares in 400 s: observed 200 s per share, 20x too slow
    assert new == v.difficulty == 16.0


def test_inside_the_band_nothing_changes() -> None:
    for interval in (7.0, 10.0, 14.0):  # ratio 1.43 .. 0.71, inside [1/1.5, 1.5]
        v = Vardiff(CFG, 1.0, now=0.0)
        assert shares(v, 0.0, interval, 12) == [None] * 12
        assert v.difficulty == 1.0


def test_just_outside_the_band_moves() -> None:
    v = Vardiff(CFG, 1.0, now=0.0)
    changes = shares(v, 0.0, 6.0, 10)  # the 10th share reaches retarget_time (60 s)
    assert changes[:9] == [None] * 9
    assert changes[9] == 1.66667  # 10/6, to six significant digits


def test_results_are_clamped_to_minimum_and_maximum() -> None:
    v = Vardiff(CFG, 5e5, now=0.0)
    assert shares(v, 0.0, 0.01, 12)[-1] == 1e6  # 4x would be 2e6
    low = Vardiff(CFG, 2e-6, now=0.0)
    assert low.tick(60.0) == 1e-6  # /4 would be 5e-7
    assert low.tick(120.0) is None  # already at the floor: no change to announce
    assert Vardiff(CFG, 1e9, now=0.0).difficulty == 1e6
    assert Vardiff(CFG, 1e-9, now=0.0).difficulty == 1e-6


def test_fractional_difficulties_are_kept_and_rounded_to_six_digits() -> None:
    v = Vardiff(CFG, 0.0012345678, now=0.0)
    assert v.difficulty == 0.00123457
    shares(v, 0.0, 10.0 / 3, 12)  # 3x too fast
    assert v.difficulty == pytest.approx(0.00370371, rel=1e-6)
    assert len(repr(v.difficulty)) <= len("0.00370371")


def test_quiet_miner_is_lowered_after_three_silent_intervals_not_a_whole_retarget_time() -> None:
    v = Vardiff(CFG, 8.0, now=100.0)
    assert v.next_deadline() == 130.0  # 3 x 10 s: at the right difficulty ~3 shares, e^-3 to see none
    assert v.tick(129.9) is None
    assert v.tick(130.0) == 2.0  # lowered, by at most max_step
    assert v.next_deadline() == 160.0  # measuring restarted
    assert v.tick(160.0) == 0.5  # still silent: lowered again


def test_a_miner_with_shares_waits_for_the_retarget_time() -> None:
    v = Vardiff(CFG, 1.0, now=100.0)
    assert v.on_share(105.0) is None
    assert v.next_deadline() == 160.0 and v.tick(130.0) is None


def test_reset_sets_the_difficulty_and_restarts_measuring() -> None:
    v = Vardiff(CFG, 1.0, now=0.0)
    shares(v, 0.0, 0.1, 11)
    assert v.reset(3.0, now=50.0) == 3.0
    assert v.on_share(50.1) is None  # the 11 shares before the reset no longer count
    assert v.next_deadline() == 110.0


@pytest.mark.parametrize("retarget_time", [60.0, 5.0, 2.0, 1.0])
def test_a_quiet_miner_is_never_raised(retarget_time: float) -> None:
    """The module's rule: a miner that sends nothing for retarget_time is *lowered* anyway."""
    cfg = VardiffConfig(target_interval=10.0, retarget_time=retarget_time)
    v = Vardiff(cfg, 1.0, now=0.0)
    new = v.tick(retarget_time)
    assert new is None or new < 1.0
    assert v.difficulty <= 1.0


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(target_interval=0),
        dict(retarget_time=-1),
        dict(retarget_shares=1),
        dict(tolerance=0.5),
        dict(max_step=1.0),
        dict(minimum=0),
        dict(minimum=2.0, maximum=1.0),
    ],
)
def test_bad_config_is_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        VardiffConfig(**kwargs)  # type: ignore[arg-type]
