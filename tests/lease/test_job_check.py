"""Jobs are checked at submit: a job no rig would run is a 400 with the reason, and is not queued."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from stratumkit.lease.errors import RequestError
from stratumkit.lease.job_check import check_job
from stratumkit.lease.service import LeaseService
from stratumkit.queue.sqlite import SqliteQueueEngine
from tests.lease.test_service import FakeRig, call, registration

MINILM = "all-MiniLM-L6-v2"
EMBED = {"kind": "embeddings", "model": MINILM, "input": ["hello"]}
CHAT = {"kind": "chat.completions", "model": "llama-3-8b", "messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize("payload", [EMBED, CHAT, {**CHAT, "stream": False, "max_tokens": 16}])
def test_good_jobs_pass(payload: dict[str, Any]) -> None:
    check_job(payload, "q", None)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ({"model": MINILM, "input": ["x"]}, "needs a 'kind'"),
        ({**EMBED, "kind": "chat"}, "unknown job kind 'chat'"),
        ({**CHAT, "stream": True}, "streaming responses are not supported"),
        ({**CHAT, "n": 2}, "only n=1"),
        ({"kind": "embeddings", "input": ["x"]}, "missing required field 'model'"),
        ({**EMBED, "temperature": 1}, "unrecognized field"),
        ({"kind": "chat.completions", "model": "m"}, "messages"),
    ],
)
def test_bad_jobs_say_why(payload: dict[str, Any], reason: str) -> None:
    with pytest.raises(RequestError, match=reason):
        check_job(payload, "q", None)


def test_the_model_must_be_served_by_the_queues_leases() -> None:
    check_job(EMBED, "q", {MINILM, "bge-small"})
    check_job(EMBED, "q", set())  # leased rigs that declare no models: the shape is all we can check
    with pytest.raises(
        RequestError, match=r"no rig leased to queue 'q' serves model 'all-MiniLM-L6-v2'; they serve bge"
    ):
        check_job(EMBED, "q", {"bge-small"})


async def test_the_service_refuses_a_bad_job_and_queues_nothing(
    queue: SqliteQueueEngine, nursery: trio.Nursery
) -> None:
    service = LeaseService(queue, check_jobs=True)
    await nursery.start(service.run)
    await service.enqueue("embed", {**EMBED, "model": "anything"})  # no lease yet: any model may wait for one
    await call(service, FakeRig(), registration(models=(MINILM,)))
    await service.create_lease({"count": 1, "queue": "embed", "duration_s": 60})
    assert service.served_models("embed") == {MINILM} and service.served_models("other") is None
    await service.enqueue("embed", EMBED)
    with pytest.raises(RequestError, match="serves model 'gpt-4'"):
        await service.enqueue("embed", {**EMBED, "model": "gpt-4"})
    with pytest.raises(RequestError, match="needs a 'kind'"):
        await service.enqueue("embed", {"input": ["x"]})
    assert (await queue.stats("embed")).ready == 2  # the two accepted jobs only
