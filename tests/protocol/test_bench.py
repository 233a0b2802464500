from __future__ import annotations

import pytest

from stratumkit.protocol import bench


def test_bench_runs_and_reports_every_measure(capsys: pytest.CaptureFixture[str]) -> None:
    bench.main(["--count", "200", "--rounds", "1"])
    lines = capsys.readouterr().out.splitlines()
    names = [line.split("ns", 1)[1].strip() for line in lines]
    assert names == list(bench.measure(count=10, rounds=1))
    assert all(float(line.split()[0]) > 0 for line in lines)


def test_submit_path_stays_far_below_the_share_budget() -> None:
    """The whole share may cost 50 us of CPU; the protocol's part must be a small slice of it.
    The bound is loose on purpose (shared CI machines); it catches an accidental O(n) path."""
    results = bench.measure(count=2_000, rounds=3)
    assert results["per accepted share (parse + reply + data_to_send)"] < 25_000
