"""A job's times, its last release cause and the expiry of results, on every engine; each checked
again on a new engine on the same store (a restart)."""

from __future__ import annotations

import dataclasses

import pytest

from stratumkit.queue.engine import MAX_CAUSE, InvalidArgument, NewJob, UnknownJob

from .queue_harness import Harness


async def test_job_times_from_enqueue_to_result(harness: Harness) -> None:
    async with harness.open() as engine:
        job_id = await engine.enqueue("q", {"n": 1})
        queued = await engine.info(job_id)
        assert (queued.job_id, queued.queue, queued.state) == (job_id, "q", "pending")
        assert queued.enqueued_at > 0
        assert (queued.claimed_at, queued.completed_at, queued.cause) == (None, None, None)

        await harness.advance(0.05)
        [claim] = await engine.claim("q", "rig-1", harness.timeout)
        claimed = await engine.info(job_id)
        assert claimed.state == "pending"
        assert claimed.claimed_at is not None and claimed.claimed_at > queued.enqueued_at
        assert claimed.enqueued_at == queued.enqueued_at

        await harness.advance(0.05)
        assert await engine.ack(claim, {"ok": True}) is True
        done = await engine.info(job_id)
        result = await engine.result(job_id)
        assert result is not None
        assert done.state == "done"
        assert done.completed_at == pytest.approx(result.completed_at)
        assert done.claimed_at == claimed.claimed_at
        assert done.completed_at is not None and done.completed_at > claimed.claimed_at

    async with harness.open() as engine:  # a restart
        assert await engine.info(job_id) == done


async def test_claimed_at_is_the_latest_delivery(harness: Harness) -> None:
    async with harness.open() as engine:
        job_id = await engine.enqueue("q", {})
        [first] = await engine.claim("q", "rig-1", harness.timeout)
        at_first = (await engine.info(job_id)).claimed_at
        await harness.advance(0.05)
        await engine.nack(first)
        [second] = await engine.claim("q", "rig-2", harness.timeout)
        at_second = (await engine.info(job_id)).claimed_at
        assert at_first is not None and at_second is not None and at_second > at_first
        assert second.deliveries == 2


async def test_release_cause_is_kept_with_the_job(harness: Harness) -> None:
    async with harness.open() as engine:
        job_id = await engine.enqueue("q", {}, max_deliveries=3)
        [claim] = await engine.claim("q", "rig-1", harness.timeout)
        await engine.nack(claim, cause="CUDA out of memory")
        assert (await engine.info(job_id)).cause == "CUDA out of memory"
        # a release without a cause keeps the last one given
        [claim] = await engine.claim("q", "rig-1", harness.timeout)
        await engine.nack(claim)
        assert (await engine.info(job_id)).cause == "CUDA out of memory"
        [claim] = await engine.claim("q", "rig-2", harness.timeout)
        await engine.nack(claim, cause="x" * (MAX_CAUSE + 10))
        with pytest.raises(InvalidArgument):
            await engine.nack(claim, cause=42)  # type: ignore[arg-type]

    async with harness.open() as engine:  # a restart: dead, with its cause
        info = await engine.info(job_id)
        assert info.state == "dead"
        assert info.cause == "x" * MAX_CAUSE
        letter = await engine.dead_letter(job_id)
        assert letter is not None and letter.job.deliveries == 3


async def test_unknown_job_has_no_info(harness: Harness) -> None:
    async with harness.open() as engine:
        with pytest.raises(UnknownJob):
            await engine.info("never-enqueued")


async def test_expired_results_are_forgotten(harness: Harness) -> None:
    async with harness.open() as engine:
        old = await engine.enqueue_many("q", [NewJob({"i": i}) for i in range(3)])
        claims = await engine.claim("q", "rig-1", harness.timeout, max_jobs=3)
        assert await engine.ack_many([(c, {"i": c.payload["i"]}) for c in claims]) == [True] * 3
        [cut] = {(await engine.info(job_id)).completed_at for job_id in old}
        assert cut is not None
        await harness.advance(0.05)
        [kept] = await engine.enqueue_many("q", [NewJob({"i": 3})])
        [claim] = await engine.claim("q", "rig-1", harness.timeout)
        assert await engine.ack(claim, {"i": 3}) is True
        [pending] = await engine.enqueue_many("q", [NewJob({"i": 4})])

        assert await engine.expire_results(cut) == 0  # strictly before
        assert await engine.expire_results(cut + 0.01) == 3

    async with harness.open() as engine:  # a restart: still forgotten
        for job_id in old:
            with pytest.raises(UnknownJob):
                await engine.result(job_id)
            with pytest.raises(UnknownJob):
                await engine.info(job_id)
        assert (await engine.info(kept)).state == "done"
        assert (await engine.info(pending)).state == "pending"
        assert await engine.result(kept) is not None
        assert await engine.expire_results(cut + 0.01) == 0
        stats = await engine.stats("q")
        assert (stats.ready, stats.in_flight, stats.done) == (1, 0, 1)
        # an expired id is free again
        assert await engine.enqueue("q", {"again": True}, job_id=old[0]) == old[0]
        assert (await engine.info(old[0])).state == "pending"


async def test_expire_in_chunks(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    from stratumkit.queue import redis, sqlite

    monkeypatch.setattr(sqlite, "EXPIRE_CHUNK", 2)
    monkeypatch.setattr(redis, "EXPIRE_CHUNK", 2)
    async with harness.open() as engine:
        await engine.enqueue_many("q", [NewJob({}) for _ in range(5)])
        claims = await engine.claim("q", "rig-1", harness.timeout, max_jobs=5)
        await engine.ack_many([(c, {}) for c in claims])
        await harness.advance(0.05)
        assert await engine.expire_results(float("inf")) == 5
        stats = await engine.stats("q")
        assert (stats.ready, stats.done) == (0, 0)


async def test_ack_and_claim_is_ack_many_then_claim(harness: Harness) -> None:
    async with harness.open() as engine:
        ids = await engine.enqueue_many("q", [NewJob({"i": i}) for i in range(5)])
        answers, first = await engine.ack_and_claim([], "q", "rig-1", harness.timeout, max_jobs=2)
        assert answers == [] and [c.job_id for c in first] == ids[:2]
        await engine.nack(first[1])  # that claim is stale now; the job is ready again
        answers, second = await engine.ack_and_claim(
            [(first[0], {"r": 0}), (first[1], {"r": 9}), (first[0], {"r": 0})],
            "q",
            "rig-1",
            harness.timeout,
            max_jobs=16,
        )
        assert answers == [True, False, True]
        # the released job first (delivered again), then the new ones; never the one just acked
        assert [(c.job_id, c.deliveries) for c in second] == [(ids[1], 2), *((i, 1) for i in ids[2:])]
        result = await engine.result(ids[0])
        assert result is not None and result.payload == {"r": 0}
        assert await engine.result(ids[1]) is None
        stats = await engine.stats("q")
        assert (stats.ready, stats.in_flight, stats.done) == (0, 4, 1)


async def test_ack_and_claim_with_an_unknown_job_does_nothing(harness: Harness) -> None:
    async with harness.open() as engine:
        ids = await engine.enqueue_many("q", [NewJob({}) for _ in range(3)])
        [claim] = await engine.claim("q", "rig-1", harness.timeout)
        ghost = dataclasses.replace(claim, job_id="never-enqueued")
        with pytest.raises(UnknownJob):
            await engine.ack_and_claim([(claim, {}), (ghost, {})], "q", "rig-1", harness.timeout, max_jobs=2)
        assert await engine.result(ids[0]) is None
        stats = await engine.stats("q")
        assert (stats.ready, stats.in_flight, stats.done) == (2, 1, 0)
        with pytest.raises(InvalidArgument):
            await engine.ack_and_claim([(claim, {})], "q", "rig-1", 0, max_jobs=2)
        assert await engine.result(ids[0]) is None
