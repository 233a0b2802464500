"""Who may connect: an address whose connections keep breaking the rules is refused for a while
(virtual time: in-memory miners under trio's autojump clock)."""

from __future__ import annotations

import trio
import trio.testing

from tests.pool.conftest import MakePool
from tests.protocol.vectors import CAPTURED_BFGMINER_TLS_PROBE


async def test_an_address_that_keeps_misbehaving_is_refused_for_a_while(
    make_pool: MakePool, autojump_clock: trio.testing.MockClock
) -> None:
    pool = await make_pool(ban_after=2, ban_window=60.0, ban_time=30.0)

    async def garbage(peer: str) -> object:
        client, server = trio.testing.memory_stream_pair()
        await client.send_all(b"\x00\x01\x02 binary \xff\n")
        return await pool.serve_stream(server, peer)

    assert await garbage("10.0.0.9:1") is not None  # served, then dropped: protocol error
    assert await garbage("10.0.0.9:2") is not None  # the second strike bans the address
    assert await garbage("10.0.0.9:3") is None
    assert await garbage("10.0.0.8:1") is not None  # another address is not affected
    await trio.sleep(30.0)
    assert await garbage("10.0.0.9:4") is not None  # the ban is over


async def test_tls_probes_from_one_address_never_get_it_banned(
    make_pool: MakePool, autojump_clock: trio.testing.MockClock
) -> None:
    """bfgminer 5.x opens every connection with a TLS ClientHello, then connects in plain text:
    a farm of them behind one address must not be refused."""
    pool = await make_pool(ban_after=2, ban_window=60.0, ban_time=30.0)

    async def connect(peer: str, first: bytes) -> object:
        client, server = trio.testing.memory_stream_pair()
        await client.send_all(first)
        return await pool.serve_stream(server, peer)

    for rig in range(5):
        assert await connect(f"10.0.0.7:{rig}", CAPTURED_BFGMINER_TLS_PROBE) is not None
    assert await connect("10.0.0.7:9", b'{"id": 1, "method": "mining.subscribe", "params": []}\n') is not None
