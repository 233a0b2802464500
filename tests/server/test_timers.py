"""Timer deadlines fire within one tick, however many connections come and go meanwhile (virtual
time: in-memory miners, so trio's autojump clock drives the pool's timer loop)."""

from __future__ import annotations

import trio
import trio.testing

from stratumkit.server.pool import TIMER_TICK
from tests.pool.conftest import MakePool

HANDSHAKE = 5.0


async def test_handshake_deadlines_fire_within_one_tick_under_churn(
    make_pool: MakePool, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    pool = await make_pool(handshake_timeout=HANDSHAKE, max_connections_per_ip=10_000)
    lifetimes: list[float] = []

    async def stalled_miner(index: int) -> None:
        """Subscribes, never authorizes: the pool must close it at its handshake deadline."""
        client, server = trio.testing.memory_stream_pair()
        nursery.start_soon(pool.serve_stream, server, f"10.0.0.1:{index}")
        opened = trio.current_time()
        await client.send_all(b'{"id":1,"method":"mining.subscribe","params":[]}\n')
        while await client.receive_some(4096):
            pass
        lifetimes.append(trio.current_time() - opened)

    async with trio.open_nursery() as miners:
        for i in range(300):  # a new miner every 37 ms while earlier ones time out: churn
            miners.start_soon(stalled_miner, i)
            await trio.sleep(0.037)
    assert len(lifetimes) == 300
    assert HANDSHAKE <= min(lifetimes) and max(lifetimes) <= HANDSHAKE + TIMER_TICK + 0.01, (
        min(lifetimes),
        max(lifetimes),
    )
