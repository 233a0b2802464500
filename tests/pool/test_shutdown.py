"""Graceful shutdown in process: pool.shutdown() with miners connected and shares in flight."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
from structlog.testing import capture_logs

from stratumkit.app import make_source
from stratumkit.protocol.events import ConnectionClosed, Reconnect
from stratumkit.server.pool import Pool
from stratumkit.shares.log import read_records

from .helpers import Miner, pool_config, reopen_share_log


async def test_shutdown_returns_flushes_the_log_and_closes_every_socket(tmp_path: Path) -> None:
    config = pool_config(tmp_path / "pool")
    pool = Pool(config, make_source(config))
    returned = trio.Event()

    async def run_pool(task_status: trio.TaskStatus[Pool]) -> None:
        await pool.run(task_status=task_status)
        returned.set()  # run() returned normally: no exception escaped

    with capture_logs() as logs:
        async with trio.open_nursery() as nursery:
            await nursery.start(run_pool)
            port = pool.port
            assert port is not None
            miners = [await Miner.connect(nursery, port, f"w.{i}") for i in range(3)]
            for m in miners:
                for _ in range(3):
                    assert (await m.submit(m.share())).accepted
            for m in miners:  # more shares on the wire while the pool goes down
                for share in [m.share() for _ in range(20)]:
                    m.client.conn.send_request("mining.submit", share.params(m.worker))
                await m.client.flush()
            pool.shutdown()
            with trio.fail_after(5):
                await returned.wait()
                for m in miners:
                    await m.wait_closed()  # the pool closed each connection
            assert not pool.sessions and pool.stats.connections == 0
            with pytest.raises(OSError):
                await trio.open_tcp_stream("127.0.0.1", port)  # the listener is gone
            nursery.cancel_scope.cancel()

    assert any(e["event"] == "pool stopped" for e in logs)
    assert [e for e in logs if e["log_level"] in ("error", "critical")] == []
    directory = config.data_path / "shares"
    logged = {(r.extranonce1, r.extranonce2, r.ntime, r.nonce) for r in read_records(directory)}
    acknowledged = sum(r.accepted for m in miners for r in m.results) + 9
    assert len(logged) >= acknowledged >= 9
    assert await reopen_share_log(directory) == len(logged)  # nothing torn: closed cleanly


async def test_shutdown_before_any_miner_and_a_restart_on_the_same_data(tmp_path: Path) -> None:
    config = pool_config(tmp_path / "pool")
    for round_ in range(2):
        pool = Pool(config, make_source(config))
        async with trio.open_nursery() as nursery:
            await nursery.start(pool.run)
            assert pool.port is not None
            miner = await Miner.connect(nursery, pool.port, f"w.{round_}")
            assert (await miner.submit(miner.share())).accepted
            pool.shutdown()
            await miner.wait_closed()
            nursery.cancel_scope.cancel()
    assert len(list(read_records(config.data_path / "shares"))) == 2


async def test_at_shutdown_miners_are_told_to_reconnect_and_the_log_says_why(tmp_path: Path) -> None:
    config = pool_config(tmp_path / "pool")
    pool = Pool(config, make_source(config))
    with capture_logs() as logs:
        async with trio.open_nursery() as nursery:
            await nursery.start(pool.run)
            miner = await Miner.connect(nursery, pool.port)
            pool.shutdown()
            with trio.fail_after(5):
                await miner.wait_closed()
            nursery.cancel_scope.cancel()
    [goodbye] = [e for e in miner.events if isinstance(e, Reconnect)]
    assert (goodbye.host, goodbye.port, goodbye.wait) == ("127.0.0.1", pool.port, config.reconnect_wait)
    assert miner.events.index(goodbye) < miner.events.index(
        next(e for e in miner.events if isinstance(e, ConnectionClosed))
    )
    [closed] = [e for e in logs if e["event"] == "connection closed"]
    assert closed["reason"] == "pool shutting down"
