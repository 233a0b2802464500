"""What only the Redis engine promises: surviving a redis-server crash, and its trio plumbing."""

from __future__ import annotations

import gc
import random

import pytest
import trio

from stratumkit.queue.engine import ClaimedJob, NewJob, QueueEngine, QueueError
from stratumkit.queue.redis import open_redis_queue

from . import queue_harness
from .queue_harness import REDIS_INSTALL_HINT, RedisServer, find_redis_server


async def test_kill_9_of_redis_server_loses_nothing(private_redis_server: RedisServer) -> None:
    server = private_redis_server
    async with open_redis_queue(server.url) as engine:
        ids = [await engine.enqueue("q", {"i": i}, job_id=f"job-{i}") for i in range(10)]
        await engine.enqueue("q", {}, job_id="doomed", max_deliveries=1)
        claims = await engine.claim("q", "rig-1", 60, max_jobs=4)
        assert [c.job_id for c in claims] == ids[:4]
        done, acked, held, expiring = claims
        assert await engine.ack(done, {"out": "done"}) is True
        assert await engine.ack(acked, {"out": "acked"}) is True
        expiring = await engine.heartbeat(expiring, 0.5)
        [doomed] = [c for c in await engine.claim("q", "rig-2", 60, max_jobs=7) if c.job_id == "doomed"]
        await engine.nack(doomed)
        before = await engine.stats("q")

        server.kill()
        server.start()

        # The engine opened before the crash reconnects by itself.
        after = await engine.stats("q")
        assert after == before
        assert (after.ready, after.in_flight, after.done, after.dead) == (0, 8, 2, 1)

    async with open_redis_queue(server.url) as engine:
        for claim, out in ((done, "done"), (acked, "acked")):
            result = await engine.result(claim.job_id)
            assert result is not None
            assert (result.payload, result.consumer, result.deliveries) == (
                {"out": out},
                "rig-1",
                1,
            )
        assert [d.job.job_id for d in await engine.dead_letters("q")] == ["doomed"]
        # Idempotent enqueue still knows every id.
        assert await engine.enqueue("q", {"again": True}, job_id="job-9") == "job-9"
        # Claims (owner, delivery count, deadline) survived: the held one can still finish...
        assert await engine.ack(held, {"out": "held"}) is True
        # ...and the one whose short deadline passed is delivered again.
        await trio.sleep(0.6)
        [again] = await engine.claim("q", "rig-3", 60)
        assert (again.job_id, again.deliveries) == (expiring.job_id, 2)
        assert await engine.ack(expiring, {}) is False
        stats = await engine.stats("q")
        assert (stats.ready, stats.in_flight, stats.done, stats.dead) == (0, 7, 3, 1)


@pytest.mark.parametrize("combined", [False, True])
async def test_kill_9_of_redis_server_keeps_every_batch_that_returned(
    private_redis_server: RedisServer, combined: bool
) -> None:
    """A producer enqueues 16 jobs per `enqueue_many` and acks half of each claimed 16 with
    `ack_many` (combined: with the next claim, in `ack_and_claim`) until redis-server is killed
    mid-stream: every batch that returned is there after the restart, and the batch the kill cut
    short is there whole or not at all."""
    server, batch = private_redis_server, 16
    enqueued: list[str] = []
    acked: list[str] = []

    async def work(engine: QueueEngine) -> None:
        n = 0
        held: list[ClaimedJob] = []
        while True:
            jobs = [NewJob({"n": i}, job_id=f"job-{i}") for i in range(n, n + batch)]
            n += batch
            enqueued.extend(await engine.enqueue_many("q", jobs))
            if combined:
                acks = [(claim, {"n": claim.payload["n"]}) for claim in held]
                answers, claims = await engine.ack_and_claim(acks, "q", "rig-1", 600, max_jobs=batch)
                assert all(answers)
                acked.extend(claim.job_id for claim in held)
                held = claims[::2]
                continue
            claims = (await engine.claim("q", "rig-1", 600, max_jobs=batch))[::2]
            answers = await engine.ack_many([(claim, {"n": claim.payload["n"]}) for claim in claims])
            assert all(answers)
            acked.extend(claim.job_id for claim in claims)

    with trio.fail_after(30):
        async with open_redis_queue(server.url) as engine, trio.open_nursery() as nursery:
            nursery.start_soon(work, engine)
            while len(acked) < 20 * batch // 2:
                await trio.sleep(0.005)
            await trio.sleep(random.uniform(0, 0.01))
            server.kill()
            nursery.cancel_scope.cancel()
        promised_enqueued, promised_acked = set(enqueued), set(acked)
        server.start()
        async with open_redis_queue(server.url) as engine:
            for job_id in promised_enqueued:
                await engine.result(job_id)  # raises UnknownJob if the enqueue was lost
            for job_id in promised_acked:
                result = await engine.result(job_id)
                assert result is not None, f"the ack of {job_id} was promised and lost"
                assert result.payload == {"n": int(job_id.removeprefix("job-"))}
            stats = await engine.stats("q")
    stored = stats.ready + stats.in_flight + stats.done
    assert len(promised_enqueued) <= stored <= len(promised_enqueued) + batch
    assert stored % batch == 0, f"{stored} jobs: a batch enqueue was cut in part"
    assert len(promised_acked) <= stats.done


async def test_a_lone_exception_crosses_the_client_task_group_as_itself(
    redis_server: RedisServer,
) -> None:
    with pytest.raises(KeyError, match="mine"):
        async with open_redis_queue(redis_server.url, prefix="test:lone"):
            raise KeyError("mine")


# coredis 6.9 leaves anyio memory streams unclosed when a connection attempt fails; they warn
# when collected. Collect them here so the warning stays with this test, and ignore only it.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_an_unreachable_server_is_a_queue_error() -> None:
    with pytest.raises(QueueError, match=r"127\.0\.0\.1:1\b"):
        async with open_redis_queue("redis://127.0.0.1:1/0"):
            pass
    gc.collect()


async def test_cancelling_a_caller_closes_the_engine(redis_server: RedisServer) -> None:
    with trio.move_on_after(0.1) as scope:
        async with open_redis_queue(redis_server.url, prefix="test:cancel") as engine:
            await trio.sleep_forever()
    assert scope.cancelled_caught
    with pytest.raises(QueueError):
        await engine.stats("q")


def test_engines_satisfy_the_protocol(redis_server: RedisServer) -> None:
    from stratumkit.queue.redis import RedisQueueEngine
    from stratumkit.queue.sqlite import SqliteQueueEngine

    for cls in (RedisQueueEngine, SqliteQueueEngine):
        missing = [
            name for name in dir(QueueEngine) if not name.startswith("_") and not callable(getattr(cls, name, None))
        ]
        assert missing == [], f"{cls.__name__} lacks {missing}"


def test_missing_redis_server_fails_and_says_how_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("shutil.which", lambda name: None)
    monkeypatch.setattr(queue_harness, "_REDIS_LOCATIONS", ())
    with pytest.raises(pytest.fail.Exception) as failure:
        find_redis_server()
    assert REDIS_INSTALL_HINT in str(failure.value)


async def test_a_claim_of_a_job_id_enqueued_again_after_its_result_expired_is_stale(
    redis_server: RedisServer,
) -> None:
    """The claims value names the job's incarnation (its enqueue batch), not only its deliveries:
    the id enqueued again after `expire_results` forgot it is a new job, which the first
    incarnation's claim cannot ack, heartbeat or nack."""
    async with open_redis_queue(redis_server.url, prefix=f"test:again:{random.getrandbits(64):x}") as engine:
        await engine.enqueue("q", {"n": 1}, job_id="again")
        [first] = await engine.claim("q", "rig-1", 30.0)
        assert await engine.ack(first, {"n": 1}) is True
        info = await engine.info("again")
        assert await engine.expire_results(info.completed_at + 1) == 1  # type: ignore[operator]
        await engine.enqueue("q", {"n": 2}, job_id="again")
        [second] = await engine.claim("q", "rig-1", 30.0)
        assert (second.deliveries, second.payload) == (first.deliveries, {"n": 2})
        assert second.token != first.token
        assert await engine.ack(first, {"n": "stale"}) is False
        assert await engine.result("again") is None
        assert await engine.ack(second, {"n": 2}) is True
        result = await engine.result("again")
        assert result is not None and result.payload == {"n": 2}
