"""The queue contract, checked the same way on every engine (see conftest.harness)."""

from __future__ import annotations

import dataclasses
import random
from typing import Any

import pytest
import trio

from stratumkit.queue.engine import (
    REASON_MAX_DELIVERIES,
    ClaimedJob,
    InvalidArgument,
    NewJob,
    QueueClosed,
    QueueEngine,
    StaleClaim,
    UnknownJob,
    wait_result,
)

from .queue_harness import Harness

PAYLOAD: dict[str, Any] = {
    "model": "all-MiniLM-L6-v2",
    "input": ["hello", "wörld"],
    "raw": b"\x00\xff\x10",
    "n": 2**40,
    "temperature": 0.25,
    "nested": {"a": [1, None, True]},
}


async def claim_one(engine: QueueEngine, consumer: str, timeout: float, queue: str = "q") -> ClaimedJob:
    claims = await engine.claim(queue, consumer, timeout)
    assert len(claims) == 1, claims
    return claims[0]


async def test_enqueue_claim_ack_round_trip(engine: QueueEngine, harness: Harness) -> None:
    job_id = await engine.enqueue("q", PAYLOAD)
    claim = await claim_one(engine, "rig-1", harness.timeout)
    assert (claim.job_id, claim.queue, claim.consumer) == (job_id, "q", "rig-1")
    assert claim.payload == PAYLOAD
    assert claim.deliveries == 1
    assert await engine.result(job_id) is None

    assert await engine.ack(claim, {"embedding": [0.5, -1.0], "tokens": 3}) is True
    result = await engine.result(job_id)
    assert result is not None
    assert result.payload == {"embedding": [0.5, -1.0], "tokens": 3}
    assert (result.job_id, result.queue, result.consumer, result.deliveries) == (
        job_id,
        "q",
        "rig-1",
        1,
    )
    assert await engine.claim("q", "rig-1", harness.timeout) == []
    stats = await engine.stats("q")
    assert (stats.ready, stats.in_flight, stats.done, stats.dead) == (0, 0, 1, 0)


async def test_claims_in_enqueue_order_up_to_max_jobs(engine: QueueEngine, harness: Harness) -> None:
    ids = [await engine.enqueue("q", {"i": i}) for i in range(5)]
    first = await engine.claim("q", "rig-1", harness.timeout, max_jobs=3)
    second = await engine.claim("q", "rig-2", harness.timeout, max_jobs=3)
    assert [c.job_id for c in first] == ids[:3]
    assert [c.job_id for c in second] == ids[3:]
    assert [c.payload["i"] for c in first + second] == list(range(5))
    assert len({c.token for c in first + second}) == 5
    assert await engine.claim("other", "rig-1", harness.timeout) == []


async def test_enqueue_is_idempotent_on_job_id(engine: QueueEngine, harness: Harness) -> None:
    assert await engine.enqueue("q", {"v": 1}, job_id="job-7") == "job-7"
    assert await engine.enqueue("q", {"v": 2}, job_id="job-7") == "job-7"
    assert (await engine.stats("q")).ready == 1
    claim = await claim_one(engine, "rig-1", harness.timeout)
    assert claim.payload == {"v": 1}
    assert await engine.ack(claim, {}) is True
    # A repeat after completion is still a no-op, not a second job.
    assert await engine.enqueue("q", {"v": 3}, job_id="job-7") == "job-7"
    assert await engine.claim("q", "rig-1", harness.timeout) == []
    with pytest.raises(InvalidArgument, match="already used on queue 'q'"):
        await engine.enqueue("elsewhere", {"v": 1}, job_id="job-7")


async def test_expired_claim_is_redelivered(engine: QueueEngine, harness: Harness) -> None:
    job_id = await engine.enqueue("q", {"x": 1})
    first = await claim_one(engine, "rig-1", harness.timeout)
    assert await engine.claim("q", "rig-2", harness.timeout) == []
    assert (await engine.stats("q")).in_flight == 1

    await harness.advance(harness.timeout * 1.25)
    assert (await engine.stats("q")).ready == 1
    second = await claim_one(engine, "rig-2", harness.timeout)
    assert second.job_id == job_id
    assert second.deliveries == 2
    assert second.token != first.token
    assert second.payload == {"x": 1}


async def test_each_claim_keeps_its_own_timeout(engine: QueueEngine, harness: Harness) -> None:
    await engine.enqueue("q", {})
    await claim_one(engine, "slow-rig", harness.timeout * 10)
    await harness.advance(harness.timeout * 1.25)
    # rig-2 asks for a shorter timeout; that does not shorten slow-rig's claim.
    assert await engine.claim("q", "rig-2", harness.timeout) == []


async def test_heartbeat_keeps_the_claim(engine: QueueEngine, harness: Harness) -> None:
    await engine.enqueue("q", {})
    claim = await claim_one(engine, "rig-1", harness.timeout)
    await harness.advance(harness.timeout * 0.6)
    claim = await engine.heartbeat(claim)
    await harness.advance(harness.timeout * 0.6)
    assert await engine.claim("q", "rig-2", harness.timeout) == []
    claim = await engine.heartbeat(claim)
    await harness.advance(harness.timeout * 0.6)
    assert await engine.claim("q", "rig-2", harness.timeout) == []
    assert await engine.ack(claim, {"ok": True}) is True
    assert (await engine.result(claim.job_id)).consumer == "rig-1"  # type: ignore[union-attr]


async def test_heartbeat_can_change_the_timeout(engine: QueueEngine, harness: Harness) -> None:
    await engine.enqueue("q", {})
    claim = await claim_one(engine, "rig-1", harness.timeout)
    longer = await engine.heartbeat(claim, harness.timeout * 3)
    assert longer.visibility_timeout == pytest.approx(harness.timeout * 3)
    assert longer.deadline > claim.deadline
    await harness.advance(harness.timeout * 1.25)
    assert await engine.claim("q", "rig-2", harness.timeout) == []


async def test_stale_ack_after_redelivery_is_refused(engine: QueueEngine, harness: Harness) -> None:
    job_id = await engine.enqueue("q", {"x": 1})
    presumed_dead = await claim_one(engine, "rig-1", harness.timeout)
    await harness.advance(harness.timeout * 1.25)
    fresh = await claim_one(engine, "rig-2", harness.timeout)

    # The superseded delivery can no longer heartbeat, nack or ack.
    with pytest.raises(StaleClaim):
        await engine.heartbeat(presumed_dead)
    with pytest.raises(StaleClaim):
        await engine.nack(presumed_dead)
    assert await engine.ack(presumed_dead, {"from": "rig-1"}) is False
    assert await engine.result(job_id) is None

    assert await engine.ack(fresh, {"from": "rig-2"}) is True
    # Late again after the job is done: still refused, and the result stays rig-2's.
    assert await engine.ack(presumed_dead, {"from": "rig-1"}) is False
    # Repeating the recorded delivery's ack (a lost reply) answers True and changes nothing.
    assert await engine.ack(fresh, {"from": "rig-2, retried"}) is True
    result = await engine.result(job_id)
    assert result is not None
    assert (result.payload, result.consumer, result.deliveries) == ({"from": "rig-2"}, "rig-2", 2)
    assert (await engine.stats("q")).done == 1
    with pytest.raises(StaleClaim):
        await engine.heartbeat(fresh)


async def test_late_ack_before_anyone_else_claims_is_accepted(engine: QueueEngine, harness: Harness) -> None:
    await engine.enqueue("q", {})
    claim = await claim_one(engine, "slow-rig", harness.timeout)
    await harness.advance(harness.timeout * 1.25)
    # Expired, but nobody took the job: the slow rig's claim is still the newest delivery.
    assert await engine.ack(claim, {"late": True}) is True
    assert await engine.claim("q", "rig-2", harness.timeout) == []


async def test_nack_releases_at_once_and_fences_the_claim(engine: QueueEngine, harness: Harness) -> None:
    job_id = await engine.enqueue("q", {})
    claim = await claim_one(engine, "rig-1", harness.timeout)
    await engine.nack(claim)
    assert (await engine.stats("q")).ready == 1
    again = await claim_one(engine, "rig-2", harness.timeout)
    assert (again.job_id, again.deliveries) == (job_id, 2)
    assert await engine.ack(claim, {}) is False
    assert await engine.ack(again, {}) is True


async def test_dead_letter_after_max_deliveries_by_expiry(engine: QueueEngine, harness: Harness) -> None:
    job_id = await engine.enqueue("q", {"poison": True}, max_deliveries=2)
    keep_id = await engine.enqueue("q", {"poison": False})
    for delivery in (1, 2):
        claims = await engine.claim("q", f"rig-{delivery}", harness.timeout, max_jobs=2)
        assert [c.deliveries for c in claims if c.job_id == job_id] == [delivery]
        assert all(c.max_deliveries == (2 if c.job_id == job_id else 5) for c in claims)
        await harness.advance(harness.timeout * 1.25)

    claims = await engine.claim("q", "rig-3", harness.timeout, max_jobs=2)
    assert [c.job_id for c in claims] == [keep_id]
    [letter] = await engine.dead_letters("q")
    assert letter.job.job_id == job_id
    assert letter.job.payload == {"poison": True}
    assert (letter.job.deliveries, letter.job.max_deliveries) == (2, 2)
    assert letter.reason == REASON_MAX_DELIVERIES
    stats = await engine.stats("q")
    assert (stats.ready, stats.in_flight, stats.dead) == (0, 1, 1)
    assert await engine.result(job_id) is None
    # a caller waiting on the job learns it is dead (and a live job is not)
    dead = await engine.dead_letter(job_id)
    assert dead is not None and dead.job.job_id == job_id and dead.reason == REASON_MAX_DELIVERIES
    assert await engine.dead_letter(keep_id) is None


async def test_dead_letter_after_max_deliveries_by_nack(engine: QueueEngine, harness: Harness) -> None:
    job_id = await engine.enqueue("q", {}, max_deliveries=2)
    first = await claim_one(engine, "rig-1", harness.timeout)
    await engine.nack(first)
    second = await claim_one(engine, "rig-1", harness.timeout)
    await engine.nack(second)
    assert await engine.claim("q", "rig-1", harness.timeout) == []
    assert [d.job.job_id for d in await engine.dead_letters("q")] == [job_id]
    assert (await engine.stats("q")).dead == 1
    assert await engine.ack(second, {}) is False
    letter = await engine.dead_letter(job_id)
    assert letter is not None and (letter.job.deliveries, letter.job.max_deliveries) == (2, 2)
    with pytest.raises(UnknownJob):
        await engine.dead_letter("never-enqueued")


async def test_stats_sees_an_exhausted_expired_claim_as_dead(engine: QueueEngine, harness: Harness) -> None:
    await engine.enqueue("q", {}, max_deliveries=1)
    await claim_one(engine, "rig-1", harness.timeout)
    await harness.advance(harness.timeout * 1.25)
    stats = await engine.stats("q")
    assert (stats.ready, stats.in_flight, stats.dead) == (0, 0, 1)
    assert len(await engine.dead_letters("q")) == 1


async def test_requeue_consumer_releases_a_dead_rigs_claims(engine: QueueEngine, harness: Harness) -> None:
    a = [await engine.enqueue("q", {"i": i}) for i in range(3)]
    b = await engine.enqueue("other", {"i": 9})
    exhausted = await engine.enqueue("q", {}, max_deliveries=1)
    dead_rig = await engine.claim("q", "rig-dead", harness.timeout * 10, max_jobs=4)
    dead_rig += await engine.claim("other", "rig-dead", harness.timeout * 10)
    survivor = await engine.enqueue("q", {"i": 4})
    alive = await claim_one(engine, "rig-alive", harness.timeout * 10)
    assert alive.job_id == survivor

    assert await engine.requeue_consumer("rig-dead") == 5
    assert await engine.requeue_consumer("rig-dead") == 0
    taken = await engine.claim("q", "rig-new", harness.timeout, max_jobs=10)
    taken += await engine.claim("other", "rig-new", harness.timeout)
    assert sorted(c.job_id for c in taken) == sorted([*a, b])
    assert {c.deliveries for c in taken} == {2}
    assert [d.job.job_id for d in await engine.dead_letters("q")] == [exhausted]
    for claim in dead_rig:
        assert await engine.ack(claim, {}) is False
    assert await engine.ack(alive, {}) is True  # other rigs' claims are untouched
    assert (await engine.stats("q")).in_flight == 3


async def test_stats_counts_each_state(engine: QueueEngine, harness: Harness) -> None:
    for i in range(6):
        await engine.enqueue("q", {"i": i})
    done, _expiring, held = await engine.claim("q", "rig-1", harness.timeout, max_jobs=3)
    held = await engine.heartbeat(held, harness.timeout * 10)
    await engine.ack(done, {})
    stats = await engine.stats("q")
    assert (stats.queue, stats.ready, stats.in_flight, stats.done, stats.dead) == ("q", 3, 2, 1, 0)
    await harness.advance(harness.timeout * 1.25)
    stats = await engine.stats("q")
    assert (stats.ready, stats.in_flight, stats.done, stats.dead) == (4, 1, 1, 0)
    empty = await engine.stats("never-used")
    assert (empty.ready, empty.in_flight, empty.done, empty.dead) == (0, 0, 0, 0)


async def test_unknown_jobs_and_bad_arguments(engine: QueueEngine, harness: Harness) -> None:
    with pytest.raises(UnknownJob):
        await engine.result("no-such-job")
    with pytest.raises(InvalidArgument):
        await engine.enqueue("", {})
    with pytest.raises(InvalidArgument):
        await engine.enqueue("q", {}, job_id="has space")
    with pytest.raises(InvalidArgument):
        await engine.enqueue("q", ["not", "a", "dict"])  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="msgpack"):
        await engine.enqueue("q", {"x": object()})
    with pytest.raises(InvalidArgument):
        await engine.enqueue("q", {}, max_deliveries=0)
    with pytest.raises(InvalidArgument):
        await engine.claim("q", "rig-1", 0)
    with pytest.raises(InvalidArgument):
        await engine.claim("q", "rig-1", harness.timeout, max_jobs=0)
    with pytest.raises(InvalidArgument):
        await engine.claim("q", "~released", harness.timeout)
    await engine.enqueue("q", {})
    claim = await claim_one(engine, "rig-1", harness.timeout)
    with pytest.raises(InvalidArgument):
        await engine.ack(claim, {"x": {1, 2}})
    assert (await engine.stats("q")).in_flight == 1  # the refused ack changed nothing


async def test_wait_result_returns_once_a_rig_acks(engine: QueueEngine, harness: Harness) -> None:
    job_id = await engine.enqueue("q", {"prompt": "hi"})

    async def rig() -> None:
        claim = await claim_one(engine, "rig-1", harness.timeout)
        await trio.sleep(0.05)
        await engine.ack(claim, {"text": claim.payload["prompt"] + "!"})

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(rig)
            result = await wait_result(engine, job_id, poll_interval=0.01)
    assert result.payload == {"text": "hi!"}


async def test_reopened_store_keeps_everything(harness: Harness) -> None:
    async with harness.open() as engine:
        ids = [await engine.enqueue("q", {"i": i}) for i in range(4)]
        done, held = await engine.claim("q", "rig-1", harness.timeout * 10, max_jobs=2)
        assert await engine.ack(done, {"out": 1}) is True
        await engine.enqueue("q", {}, max_deliveries=1, job_id="doomed")
        [doomed] = [c for c in await engine.claim("q", "rig-2", harness.timeout, max_jobs=3) if c.job_id == "doomed"]
        await engine.nack(doomed)
    with pytest.raises(QueueClosed):
        await engine.stats("q")

    async with harness.open() as engine:
        stats = await engine.stats("q")
        assert (stats.ready, stats.in_flight, stats.done, stats.dead) == (0, 3, 1, 1)
        result = await engine.result(ids[0])
        assert result is not None and result.payload == {"out": 1}
        # The claim made before the reopen is still current.
        assert await engine.ack(held, {"out": 2}) is True
        assert [d.job.job_id for d in await engine.dead_letters("q")] == ["doomed"]


@pytest.mark.parametrize("batched", [False, True], ids=["single", "batched"])
async def test_racing_consumers_complete_each_job_exactly_once(harness: Harness, batched: bool) -> None:
    """Batched: enqueued 7 at a time, each claimed batch acked in one `ack_many`."""
    jobs, consumers = 60, 6
    recorded: list[str] = []
    refused: list[str] = []
    async with harness.open() as engine:
        if batched:
            ids = set()
            for start in range(0, jobs, 7):
                ids |= set(
                    await engine.enqueue_many("race", [NewJob({"i": i}) for i in range(start, min(start + 7, jobs))])
                )
        else:
            ids = {await engine.enqueue("race", {"i": i}) for i in range(jobs)}

    async def consumer(name: str) -> None:
        rng = random.Random(name)
        async with harness.open() as engine:  # its own connection, like a separate rig
            while True:
                claims = await engine.claim("race", name, harness.timeout * 10, max_jobs=rng.randint(1, 3))
                if not claims:
                    if (await engine.stats("race")).ready == 0:
                        return
                    continue
                if batched:
                    await trio.sleep(rng.random() * 0.002)
                    answers = await engine.ack_many([(claim, {"by": name}) for claim in claims])
                else:
                    answers = []
                    for claim in claims:
                        await trio.sleep(rng.random() * 0.002)
                        answers.append(await engine.ack(claim, {"by": name}))
                for claim, answer in zip(claims, answers, strict=True):
                    (recorded if answer else refused).append(claim.job_id)

    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            for n in range(consumers):
                nursery.start_soon(consumer, f"rig-{n}")

    assert sorted(recorded) == sorted(ids)
    assert refused == []
    async with harness.open() as engine:
        stats = await engine.stats("race")
        assert (stats.ready, stats.in_flight, stats.done) == (0, 0, jobs)
        for job_id in ids:
            result = await engine.result(job_id)
            assert result is not None and result.payload["by"].startswith("rig-")


async def test_racing_acks_for_one_job_record_one_result(harness: Harness) -> None:
    """Two deliveries of the same job (the first presumed dead) ack at the same moment."""
    async with harness.open() as engine:
        job_id = await engine.enqueue("q", {})
        first = await claim_one(engine, "rig-1", harness.timeout)
        await harness.advance(harness.timeout * 1.25)
        second = await claim_one(engine, "rig-2", harness.timeout)
    answers: dict[str, bool] = {}

    async def ack(claim: ClaimedJob) -> None:
        async with harness.open() as engine:
            answers[claim.consumer] = await engine.ack(claim, {"by": claim.consumer})

    async with trio.open_nursery() as nursery:
        nursery.start_soon(ack, first)
        nursery.start_soon(ack, second)
    assert answers == {"rig-1": False, "rig-2": True}
    async with harness.open() as engine:
        result = await engine.result(job_id)
        assert result is not None and result.consumer == "rig-2"
        assert (await engine.stats("q")).done == 1


# --- batches: the same contract, one round trip ---------------------------------------------------


async def test_enqueue_many_keeps_order_and_is_idempotent(engine: QueueEngine, harness: Harness) -> None:
    assert await engine.enqueue_many("q", []) == []
    await engine.enqueue("q", {"v": "stored"}, job_id="known")
    jobs = [NewJob({"i": 0}), NewJob({"i": 1}, job_id="mine"), NewJob({"v": "again"}, job_id="known"),
            NewJob({"i": 2}, max_deliveries=2), NewJob({"i": "repeat"}, job_id="mine")]  # fmt: skip
    ids = await engine.enqueue_many("q", jobs)
    assert len(ids) == 5 and ids[1] == ids[4] == "mine" and ids[2] == "known"
    assert len(set(ids)) == 4
    # the repeat of a known id (stored, or earlier in the batch) added nothing
    assert (await engine.stats("q")).ready == 4
    claims = await engine.claim("q", "rig-1", harness.timeout, max_jobs=10)
    assert [c.job_id for c in claims] == ["known", ids[0], "mine", ids[3]]
    assert [c.payload for c in claims] == [{"v": "stored"}, {"i": 0}, {"i": 1}, {"i": 2}]
    assert [c.max_deliveries for c in claims] == [5, 5, 5, 2]
    assert await engine.enqueue_many("q", [NewJob({}, job_id="mine")]) == ["mine"]
    assert (await engine.stats("q")).in_flight == 4


async def test_a_refused_enqueue_many_enqueues_nothing(engine: QueueEngine, harness: Harness) -> None:
    await engine.enqueue("elsewhere", {}, job_id="taken")
    batch = [NewJob({"i": 0}, job_id="a"), NewJob({"i": 1}, job_id="taken"), NewJob({"i": 2}, job_id="b")]
    with pytest.raises(InvalidArgument, match="'taken' is already used on queue 'elsewhere'"):
        await engine.enqueue_many("q", batch)
    for bad in (NewJob({"x": object()}), NewJob({}, job_id="has space"), NewJob({}, max_deliveries=0)):
        with pytest.raises(InvalidArgument):
            await engine.enqueue_many("q", [NewJob({}, job_id="c"), bad])
    with pytest.raises(InvalidArgument):
        await engine.enqueue_many("q", {"payload": {}})  # type: ignore[arg-type]
    for job_id in ("a", "b", "c"):
        with pytest.raises(UnknownJob):
            await engine.result(job_id)
    assert (await engine.stats("q")).ready == 0
    assert await engine.claim("q", "rig-1", harness.timeout) == []


async def test_ack_many_answers_as_single_acks_would(engine: QueueEngine, harness: Harness) -> None:
    ids = await engine.enqueue_many("q", [NewJob({"i": i}) for i in range(4)])
    other = await engine.enqueue("other", {"i": 9})
    stale, late_0, late_1 = await engine.claim("q", "rig-1", harness.timeout, max_jobs=3)
    [fresh] = await engine.claim("q", "rig-2", harness.timeout * 10)
    [elsewhere] = await engine.claim("other", "rig-1", harness.timeout * 10)
    await harness.advance(harness.timeout * 1.25)
    # ids[0]'s first delivery ran out and was taken over; the two after it ran out, nobody took them
    [taken_over] = await engine.claim("q", "rig-3", harness.timeout * 10)
    assert (taken_over.job_id, taken_over.deliveries, stale.job_id) == (ids[0], 2, ids[0])
    assert (late_0.job_id, late_1.job_id, fresh.job_id) == tuple(ids[1:])

    answers = await engine.ack_many(
        [
            (stale, {"by": "stale"}),
            (late_0, {"by": 0}),
            (late_1, {"by": 1}),
            (late_0, {"by": "again"}),
            (elsewhere, {"by": "other"}),
            (taken_over, {"by": "rig-3"}),
            (stale, {"by": "stale"}),
        ]
    )
    assert answers == [False, True, True, True, True, True, False]
    assert await engine.ack_many([]) == []
    results = {job_id: await engine.result(job_id) for job_id in (*ids[:3], other)}
    assert {job_id: r.payload for job_id, r in results.items() if r is not None} == {
        ids[0]: {"by": "rig-3"}, ids[1]: {"by": 0}, ids[2]: {"by": 1}, other: {"by": "other"}}  # fmt: skip
    assert [r.deliveries for r in results.values() if r is not None] == [2, 1, 1, 1]
    # the batch again: the recorded deliveries answer True, the superseded one False
    assert await engine.ack_many([(late_1, {}), (stale, {}), (taken_over, {})]) == [True, False, True]
    stats = await engine.stats("q")
    assert (stats.ready, stats.in_flight, stats.done) == (0, 1, 3)
    assert (await engine.stats("other")).done == 1
    assert await engine.ack(fresh, {}) is True


async def test_a_refused_ack_many_records_nothing(engine: QueueEngine, harness: Harness) -> None:
    await engine.enqueue_many("q", [NewJob({"i": i}) for i in range(2)])
    first, second = await engine.claim("q", "rig-1", harness.timeout * 10, max_jobs=2)
    never = dataclasses.replace(second, job_id="never-enqueued")
    with pytest.raises(UnknownJob) as refused:
        await engine.ack_many([(first, {}), (never, {}), (second, {})])
    assert refused.value.job_id == "never-enqueued"
    with pytest.raises(InvalidArgument):
        await engine.ack_many([(first, {}), (second, {"x": {1, 2}})])
    assert await engine.result(first.job_id) is None
    assert await engine.result(second.job_id) is None
    assert (await engine.stats("q")).in_flight == 2
    assert await engine.ack_many([(first, {"ok": 1}), (second, {"ok": 2})]) == [True, True]


async def test_ack_many_of_a_dead_lettered_job_is_refused(engine: QueueEngine, harness: Harness) -> None:
    [doomed_id, kept_id] = await engine.enqueue_many("q", [NewJob({}, max_deliveries=1), NewJob({})])
    doomed, kept = await engine.claim("q", "rig-1", harness.timeout, max_jobs=2)
    await engine.nack(doomed)
    assert await engine.ack_many([(doomed, {}), (kept, {})]) == [False, True]
    assert [d.job.job_id for d in await engine.dead_letters("q")] == [doomed_id]
    assert (await engine.result(kept_id)) is not None
