"""`stratumkit bench report` as a real process: its JSON figures, and a bad --records refused."""

from __future__ import annotations

import json
import subprocess
import sys


def test_the_bench_reads_every_record_and_refuses_too_few() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "stratumkit.cli", "bench", "report", "--records", "20000", "--json"],
        capture_output=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout)
    assert figures["records"] == 20000
    assert all(figures[f"{k}_records_per_s"] > 0 for k in ("read", "pplns", "fpps"))
    bad = subprocess.run(
        [sys.executable, "-m", "stratumkit.cli", "bench", "report", "--records", "5"], capture_output=True
    )
    assert bad.returncode == 2
    assert bad.stderr.decode().strip() == "stratumkit bench report: --records must be at least 10000, got 5"
