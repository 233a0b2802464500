"""The CPU miner's duty rest: a cycle of the fastest scan / duty, whatever one scan took."""

from __future__ import annotations

import pytest

from stratumkit.agent.cpu_miner import duty_rest


def test_a_normal_scan_rests_the_rest_of_its_cycle() -> None:
    # fastest scan 0.1 ms at duty 0.005: a 20 ms cycle; 0.15 ms of it went on the thread and scan
    assert duty_rest(1e-4, 0.005, 1.5e-4) == pytest.approx(0.02 - 1.5e-4)


def test_a_scan_slowed_by_a_busy_machine_does_not_buy_a_longer_rest() -> None:
    # the same chunk preempted to 10 ms: the rest shrinks (it was 2 s when scaled by the scan's time)
    assert duty_rest(1e-4, 0.005, 0.01) == pytest.approx(0.01)
    assert duty_rest(1e-4, 0.005, 0.05) == 0.0  # a cycle overrun: the next chunk at once
    assert duty_rest(1e-4, 1.0, 1e-4) == 0.0  # full duty never rests
