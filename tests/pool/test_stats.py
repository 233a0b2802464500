"""Pool accounting: hashrate timed from a worker's start over a sliding window, and totals that
come from the share log and the block ledger, so a restarted pool reports the same numbers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import trio

from stratumkit.app import make_source
from stratumkit.server.config import PoolConfig
from stratumkit.server.pool import Pool
from stratumkit.shares.stats import WINDOW, PoolStats

from .helpers import Miner, pool_config

T0 = 1_700_000_017.25  # not on a bucket boundary
D = 1e-3
PER_SHARE = D * 2**32  # hashes one share of difficulty D stands for


def mine(stats: PoolStats, worker: str, rate: float, start: float, seconds: float, d: float = D) -> float:
    """Shares of difficulty `d` at a fixed `rate` per second, the first 1/rate after `start` (a
    share ends a stretch of hashing); returns the time of the last one."""
    count = round(seconds * rate)
    for i in range(1, count + 1):
        stats.on_accepted(worker, d, start + i / rate, False)
    return start + count / rate


@pytest.mark.parametrize("rate", [0.1, 0.2, 1.0, 5.0])
def test_a_worker_is_timed_from_its_start_not_its_first_share(rate: float) -> None:
    stats = PoolStats()
    stats.on_worker_started("w", T0)
    end = mine(stats, "w", rate, T0, 60.0)
    expected = PER_SHARE * rate
    shares = 60.0 * rate
    # a fixed schedule has no noise beyond where the window cuts: under half a share here
    assert stats.worker("w").hashrate(end) == pytest.approx(expected, rel=0.5 / shares)
    assert stats.hashrate(end) == pytest.approx(expected, rel=0.5 / shares)


def test_without_a_start_the_estimate_is_timed_from_the_first_share() -> None:
    stats = PoolStats()
    end = mine(stats, "w", 0.5, T0, 60.0)
    first = T0 + 2.0
    assert stats.worker("w").hashrate(end) == pytest.approx(30 * PER_SHARE / (end - first))


def test_the_window_slides_an_old_rate_is_forgotten() -> None:
    stats = PoolStats()
    stats.on_worker_started("w", T0)
    slow_end = mine(stats, "w", 0.5, T0, 20 * 60.0)
    end = mine(stats, "w", 2.0, slow_end, 20 * 60.0)
    # the window is 540-600 s long: one share in ~1100 is the most the cut can move it
    assert stats.hashrate(end) == pytest.approx(PER_SHARE * 2.0, rel=1 / 1000)
    assert stats.worker("w").accepted == 600 + 2400


def test_a_worker_gone_longer_than_the_window_adds_nothing_to_the_pool() -> None:
    stats = PoolStats()
    stats.on_worker_started("gone", T0)
    stats.on_worker_started("here", T0)
    gone_end = mine(stats, "gone", 1.0, T0, 60.0, d=100 * D)  # a big miner that left
    mid = gone_end + WINDOW / 2
    mine(stats, "here", 1.0, T0, mid - T0)
    assert stats.hashrate(mid) == pytest.approx(stats.worker("here").hashrate(mid) + stats.worker("gone").hashrate(mid))
    assert stats.worker("gone").hashrate(mid) > 0  # its shares are still in the window

    late = gone_end + WINDOW + 1.0
    here_end = mine(stats, "here", 1.0, mid, late - mid)
    assert stats.worker("gone").hashrate(late) == 0.0
    assert stats.hashrate(here_end) == pytest.approx(stats.worker("here").hashrate(here_end))
    assert stats.hashrate(here_end) == pytest.approx(PER_SHARE, rel=1 / 500)
    assert stats.snapshot(here_end)["hashrate"] == stats.hashrate(here_end)


def test_a_second_start_while_mining_keeps_the_first_one_after_a_long_gap_it_restarts() -> None:
    stats = PoolStats()
    stats.on_worker_started("w", T0)
    end = mine(stats, "w", 1.0, T0, 30.0)
    stats.on_worker_started("w", end)  # a second rig under the same name
    end = mine(stats, "w", 1.0, end, 30.0)
    assert stats.hashrate(end) == pytest.approx(PER_SHARE, rel=0.5 / 60)

    back = end + 2 * WINDOW  # gone, then authorized again
    stats.on_worker_started("w", back)
    end = mine(stats, "w", 0.25, back, 60.0)
    assert stats.hashrate(end) == pytest.approx(PER_SHARE * 0.25, rel=0.5 / 15)


def test_without_starts_the_first_share_after_a_long_gap_restarts_the_timing() -> None:
    stats = PoolStats()
    end = mine(stats, "w", 1.0, T0, 60.0)
    back = end + 2 * WINDOW
    stats.on_accepted("w", D, back, False)
    end = mine(stats, "w", 1.0, back, 40.0)
    assert stats.hashrate(end) == pytest.approx(41 * PER_SHARE / 40.0)


def test_totals_start_from_what_they_are_seeded_with() -> None:
    stats = PoolStats(accepted=7, blocks=2)
    stats.on_accepted("w", D, T0, True)
    snap = stats.snapshot(T0)
    assert (snap["accepted"], snap["blocks"], stats.worker("w").accepted) == (8, 3, 1)


# -------------------------------------------------------------------------------- over a restart


BLOCKY = dict(embedded_difficulty=1e-4)  # a block every ~100 shares: found in milliseconds


async def run_until_stopped(config: PoolConfig, body: Callable[[Pool, trio.Nursery], Awaitable[None]]) -> None:
    """Start a pool on `config`, run `body(pool, nursery)`, then shut the pool down and wait for
    run() to return (the share log flushed, the ledger closed)."""
    pool = Pool(config, make_source(config))
    returned = trio.Event()

    async def run_pool(task_status: trio.TaskStatus[Pool]) -> None:
        await pool.run(task_status=task_status)
        returned.set()

    async with trio.open_nursery() as nursery:
        await nursery.start(run_pool)
        await body(pool, nursery)
        pool.shutdown()
        with trio.fail_after(5):
            await returned.wait()
        nursery.cancel_scope.cancel()


async def new_block(miner: Miner, prevhash: object) -> None:
    await miner.wait_for(lambda: miner.job is not None and miner.job.prevhash != prevhash)


async def test_accepted_and_blocks_survive_a_restart_and_blocks_agree_with_the_ledger(tmp_path: Path) -> None:
    config = pool_config(tmp_path / "pool", **BLOCKY)
    seen: dict[str, object] = {}

    async def first_run(pool: Pool, nursery: trio.Nursery) -> None:
        miner = await Miner.connect(nursery, pool.port, "finder.1")
        job = miner.job
        assert job is not None
        assert (await miner.submit(miner.share(block=True))).accepted
        await new_block(miner, job.prevhash)
        for _ in range(3):
            assert (await miner.submit(miner.share())).accepted
        seen.update(pool.snapshot())

    await run_until_stopped(config, first_run)
    assert (seen["accepted"], seen["blocks"]) == (4, 1)
    assert len(seen["blocks_found"]) == 1  # type: ignore[arg-type]

    async def second_run(pool: Pool, nursery: trio.Nursery) -> None:
        snap = pool.snapshot()
        assert (snap["accepted"], snap["blocks"], len(snap["blocks_found"])) == (4, 1, 1)
        miner = await Miner.connect(nursery, pool.port, "finder.1")
        assert (await miner.submit(miner.share())).accepted
        job = miner.job
        assert job is not None
        # a block whose share is refused (ntime hours ahead) is still found and in the ledger
        refused = miner.share(block=True, ntime=job.ntime + 3 * 3600)
        assert not (await miner.submit(refused)).accepted
        await new_block(miner, job.prevhash)
        snap = pool.snapshot()
        assert (snap["accepted"], snap["blocks"], len(snap["blocks_found"])) == (5, 2, 2)
        assert snap["accepted"] == pool.share_log.records

    await run_until_stopped(config, second_run)
