"""The pool's result expiry timer (queue/expiry.py) on a real SQLite engine, and its config key."""

from __future__ import annotations

from pathlib import Path

import trio
import trio.testing

from stratumkit.queue.engine import NewJob, QueueError, UnknownJob
from stratumkit.queue.expiry import DEFAULT_RESULT_TTL, expire_results_every, sweep_interval
from stratumkit.queue.sqlite import SqliteQueueEngine, open_sqlite_queue
from stratumkit.server.config import KEY_HELP, PoolConfig

from .queue_harness import ManualClock


def test_config_key_and_interval() -> None:
    assert PoolConfig().job_result_ttl == DEFAULT_RESULT_TTL == 7 * 24 * 3600
    assert "job_result_ttl" in KEY_HELP
    assert sweep_interval(DEFAULT_RESULT_TTL) == 3600.0
    assert sweep_interval(60.0) == 6.0
    assert sweep_interval(0.5) == 1.0


async def _finish(queue: SqliteQueueEngine, n: int) -> list[str]:
    ids = await queue.enqueue_many("q", [NewJob({"i": i}) for i in range(n)])
    claims = await queue.claim("q", "rig", 30.0, max_jobs=n)
    assert await queue.ack_many([(c, {}) for c in claims]) == [True] * n
    return ids


async def test_timer_forgets_results_after_the_ttl(tmp_path: Path, autojump_clock: trio.testing.MockClock) -> None:
    clock = ManualClock()  # the engine's wall clock, moved with trio's
    start = trio.current_time()

    def wall() -> float:
        return clock.now

    async with open_sqlite_queue(tmp_path / "q.db", clock=wall, offload=False) as queue:
        old = await _finish(queue, 3)
        async with trio.open_nursery() as nursery:
            await nursery.start(lambda task_status: expire_results_every(queue, 100.0, clock=wall,
                                                                            task_status=task_status))  # fmt: skip
            for step in range(1, 30):  # 29 sweeps of 10 s: the first 3 results go after 100 s
                await trio.sleep_until(start + step * 10.0 + 0.5)
                clock.now += 10.0
                if step == 5:
                    new = await _finish(queue, 2)  # recorded at +50 s: gone after +150 s
                if step == 9:
                    assert [await queue.result(j) is not None for j in old] == [True] * 3
            nursery.cancel_scope.cancel()
        for job_id in old + new:
            try:
                await queue.info(job_id)
            except UnknownJob:
                continue
            raise AssertionError(f"{job_id} outlived its ttl")


async def test_ttl_0_keeps_results(tmp_path: Path) -> None:
    async with open_sqlite_queue(tmp_path / "q.db") as queue:
        ids = await _finish(queue, 1)
        with trio.fail_after(5):
            await expire_results_every(queue, 0.0, clock=lambda: 1e12)  # returns at once
        assert await queue.result(ids[0]) is not None


async def test_a_refused_sweep_is_tried_again(tmp_path: Path, autojump_clock: trio.testing.MockClock) -> None:
    calls: list[float] = []

    class Flaky(SqliteQueueEngine):
        async def expire_results(self, before: float) -> int:
            calls.append(before)
            if len(calls) == 1:
                raise QueueError("disk I/O error")
            return await super().expire_results(before)

    async with open_sqlite_queue(tmp_path / "q.db", offload=False) as queue:
        flaky = Flaky(queue._conn, lambda: 2e9, offload=False)  # type: ignore[arg-type]
        with trio.move_on_after(25):
            await expire_results_every(flaky, 100.0, clock=lambda: 2e9)
        assert len(calls) == 3  # at 0, 10 and 20 s: the failure did not stop the timer
