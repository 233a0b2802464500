"""A new job reaches every miner: the shared-buffer fan-out split between the loop thread and the
sender thread (more than PARALLEL_FANOUT_MIN miners), with each miner's own bookkeeping kept."""

from __future__ import annotations

import json

import trio

from stratumkit.server.pool import PARALLEL_FANOUT_MIN
from tests.pool.conftest import MakePool
from tests.support.waiting import TIMEOUT

MINERS = PARALLEL_FANOUT_MIN + 44


async def raw_miner(port: int, index: int, seen: list[list[str]], notified: trio.MemorySendChannel[int]) -> None:
    """Handshake over a bare socket, then record the job id of every mining.notify (and say so)."""
    async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
        await stream.send_all(
            b'{"id":1,"method":"mining.subscribe","params":["raw/1.0"]}\n'
            + json.dumps({"id": 2, "method": "mining.authorize", "params": [f"fan.{index}", "x"]}).encode()
            + b"\n"
        )
        buffer = b""
        while True:
            data = await stream.receive_some(65536)
            if not data:
                return
            buffer += data
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                message = json.loads(line)
                if message.get("method") == "mining.notify":
                    seen[index].append(message["params"][0])
                    await notified.send(index)


async def test_a_new_job_reaches_every_one_of_hundreds_of_miners(make_pool: MakePool, nursery: trio.Nursery) -> None:
    pool = await make_pool(max_connections_per_ip=MINERS + 10, template_refresh=3600.0)
    assert pool.port is not None
    seen: list[list[str]] = [[] for _ in range(MINERS)]
    send, receive = trio.open_memory_channel[int](2 * MINERS)
    for i in range(MINERS):
        nursery.start_soon(raw_miner, pool.port, i, seen, send)
    with trio.fail_after(TIMEOUT):
        for _ in range(MINERS):
            await receive.receive()
    template = pool.source.template()  # type: ignore[attr-defined]
    job, clean = pool.registry.new_job(template, trio.current_time(), ntime=template.curtime + 1)
    pool.broadcast(job, clean)
    with trio.fail_after(TIMEOUT):
        for _ in range(MINERS):
            await receive.receive()
    assert [len(ids) for ids in seen] == [2] * MINERS
    assert {ids[1] for ids in seen} == {job.job_id}
    for conn in pool.sessions:
        assert conn.session.job_difficulty(job.job_id) == pool.config.start_difficulty
