"""`stratumkit bench queue` runs each of its shapes to the end and checks its own counts (no figures)."""

from __future__ import annotations

from pathlib import Path

import pytest

from stratumkit.bench.queue import measure, no_server
from stratumkit.queue.sqlite import open_sqlite_queue


@pytest.mark.parametrize(
    ("shape", "batch", "prefetch", "held", "together"),
    [
        ("phases", 1, False, 0, False),
        ("phases", 16, True, 7, False),
        ("concurrent", 16, False, 0, False),
        ("concurrent", 5, True, 3, False),
        ("phases", 16, False, 2, True),
        ("concurrent", 5, False, 0, True),
    ],
)
async def test_a_run_drains_every_job(
    tmp_path: Path, shape: str, batch: int, prefetch: bool, held: int, together: bool
) -> None:
    path = tmp_path / "q.sqlite3"
    opener = lambda: open_sqlite_queue(path)  # noqa: E731
    run = await measure(opener, no_server, "sqlite", shape, 50, batch, 4, prefetch, held, together)
    assert run.ack_with_claim is together
    assert (run.engine, run.shape, run.jobs, run.batch, run.claim_batch, run.prefetch) == (
        "sqlite", shape, 50, batch, 4, prefetch)  # fmt: skip
    assert run.cycle_per_s > 0 and run.client_cpu_us > 0 and run.server_cpu_us is None
    async with open_sqlite_queue(path) as queue:
        stats = await queue.stats("bench")
    assert (stats.ready, stats.in_flight, stats.done) == (0, held, 50)
