"""A queue outage as integrators see it: 503 (Unavailable), not 400; /health and stats say so; and
it is over when the queue answers again. A real redis-server, stopped and started under the
lease service."""

from __future__ import annotations

import gc

import pytest
import trio

from stratumkit.lease.errors import RequestError, Unavailable
from stratumkit.lease.service import LeaseService
from stratumkit.queue.redis import open_redis_queue
from tests.queue.queue_harness import RedisServer


# coredis leaves anyio memory streams unclosed when a connection attempt fails (see
# tests/queue/test_queue_redis.py); collected here so the warning stays with this test.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_a_redis_outage_is_unavailable_then_over(
    private_redis_server: RedisServer, nursery: trio.Nursery
) -> None:
    async with open_redis_queue(private_redis_server.url, prefix="outage") as queue:
        service = LeaseService(queue)
        await nursery.start(service.run)
        job_id = await service.enqueue("q", {"n": 1})
        assert await service.health() == {"queue": {"status": "ok"}}
        with pytest.raises(RequestError, match="job_id"):  # the request's fault: still 400, no outage
            await service.enqueue("q", {"n": 2}, job_id="bad id with spaces")
        assert service.stats()["queue_up"] is True and service.stats()["queue_outages"] == 0

        private_redis_server.stop()
        with pytest.raises(Unavailable, match="queue is unavailable"):
            await service.enqueue("q", {"n": 3})
        with pytest.raises(Unavailable):
            await service.job(job_id)
        health = await service.health()
        assert health["queue"]["status"] == "unavailable" and health["queue"]["error"]
        assert service.stats()["queue_up"] is False and service.stats()["queue_outages"] == 1

        private_redis_server.start()  # appendonly with an fsync per write: the job enqueued before is still there
        assert await service.health() == {"queue": {"status": "ok"}}
        assert (await service.job(job_id))["status"] == "pending"
        assert service.stats()["queue_up"] is True and service.stats()["queue_outages"] == 1
    gc.collect()
