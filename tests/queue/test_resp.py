"""The Redis engine's lean script connection: its RESP2 codec (hiredis, as configured), its URLs, a server restart."""

from __future__ import annotations

import pytest

from stratumkit.queue.redis import open_redis_queue
from stratumkit.queue.resp import RawPool, RespError, UnreadableReply, encode_command, reply_reader

from .queue_harness import RedisServer


def test_encode_command() -> None:
    assert encode_command(("EVALSHA", b"\x00\xff", 3)) == b"*3\r\n$7\r\nEVALSHA\r\n$2\r\n\x00\xff\r\n$1\r\n3\r\n"


def read(data: bytes) -> object:
    reader = reply_reader()
    reader.feed(data)
    return reader.gets()


def test_reader_reads_every_kind() -> None:
    value = read(b"*6\r\n+OK\r\n:-7\r\n$3\r\na\r\n\r\n$-1\r\n*1\r\n*0\r\n-ERR no\r\n")
    assert isinstance(value, list)
    assert value[:5] == [b"OK", -7, b"a\r\n", None, [[]]]
    assert isinstance(value[5], RespError) and str(value[5]) == "ERR no"


@pytest.mark.parametrize("cut", range(1, 20))
def test_reader_waits_for_the_whole_reply(cut: int) -> None:
    data = b"*2\r\n$5\r\nhello\r\n:42\r\n"
    assert read(data[: min(cut, len(data) - 1)]) is False


def test_reader_refuses_what_it_cannot_read() -> None:
    with pytest.raises(UnreadableReply):
        read(b"?2\r\n")


def test_from_url() -> None:
    assert RawPool.from_url("rediss://h:1/0") is None
    assert RawPool.from_url("unix:///tmp/redis.sock") is None
    assert RawPool.from_url("redis://h:1/x") is None
    pool = RawPool.from_url("redis://u:p%40ss@h:7/3")
    assert pool is not None
    assert (pool._host, pool._port, pool._setup) == ("h", 7, [("AUTH", "u", "p@ss"), ("SELECT", 3)])


async def test_raw_pool_talks_to_redis(redis_server: RedisServer) -> None:
    pool = RawPool.from_url(redis_server.url)
    assert pool is not None
    try:
        assert await pool.call("PING") == b"PONG"
        with pytest.raises(RespError, match="unknown command"):
            await pool.call("NO-SUCH-COMMAND")
        assert await pool.call("ECHO", "still in step") == b"still in step"
    finally:
        await pool.aclose()


async def test_engine_without_raw_scripts_still_works(redis_server: RedisServer) -> None:
    """coredis runs the scripts when the raw connection is off (or the URL is not plain redis://)."""
    async with open_redis_queue(redis_server.url, prefix="resp-test", raw_scripts=False) as engine:
        job_id = await engine.enqueue("q", {"n": 1})
        [claim] = await engine.claim("q", "rig", 30)
        assert claim.job_id == job_id
        assert await engine.ack(claim, {"ok": True}) is True
        result = await engine.result(job_id)
        assert result is not None and result.payload == {"ok": True}


async def test_a_server_that_is_gone_is_a_queue_error(private_redis_server: RedisServer) -> None:
    """The raw connection reconnects after a restart, and a server that stays down is a QueueError."""
    from stratumkit.queue.engine import QueueError

    async with open_redis_queue(private_redis_server.url, prefix="gone") as engine:
        await engine.enqueue("q", {})
        private_redis_server.kill()
        with pytest.raises(QueueError):
            await engine.enqueue("q", {})
        private_redis_server.start()
        await engine.enqueue("q", {})
        assert (await engine.stats("q")).ready == 2


async def test_concurrent_calls_get_connections_of_their_own(redis_server: RedisServer) -> None:
    import trio

    from stratumkit.queue import resp

    pool = RawPool.from_url(redis_server.url)
    assert pool is not None
    replies: list[object] = []

    async def one(i: int) -> None:
        replies.append(await pool.call("EVAL", "redis.call('SET', KEYS[1], ARGV[1]) return ARGV[1]", 1, f"resp:{i}", i))

    try:
        async with trio.open_nursery() as nursery:
            for i in range(resp.MAX_IDLE + 4):
                nursery.start_soon(one, i)
        assert sorted(int(r) for r in replies) == list(range(resp.MAX_IDLE + 4))  # type: ignore[call-overload]
        assert len(pool._idle) == resp.MAX_IDLE
    finally:
        await pool.aclose()
    assert pool._idle == []
