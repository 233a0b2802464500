"""Misbehaving miners: each gets the right error code or a clean disconnect, and an honest miner
on another connection is still served afterwards (one miner never affects another)."""

from __future__ import annotations

import time
from typing import Any

import pytest
import trio
from structlog.testing import capture_logs

from stratumkit.agent.work import MinerJob
from stratumkit.protocol.errors import ErrorCode
from stratumkit.protocol.events import Notify
from stratumkit.server.pool import Pool
from stratumkit.shares.log import read_records

from .conftest import MakePool
from .helpers import Miner, RawConnection, assert_served, error_code, make_share, wait_until

LIMITS = dict(max_line_length=1024, max_invalid_shares=5)

#: The start of a real TLS 1.2 ClientHello record.
CLIENT_HELLO = bytes.fromhex(
    "16030100c4010000c00303" + "ab" * 32 + "000020c02bc02fc02cc030cca9cca8c013c014009c009d002f0035"
    "c012000a0100007700000014001200000f706f6f6c2e6578616d706c652e6f7267"
)


@pytest.fixture
async def abuse(make_pool: MakePool, nursery: trio.Nursery) -> tuple[Pool, Miner]:
    pool = await make_pool(**LIMITS)
    honest = await Miner.connect(nursery, pool.port, "honest.1")
    return pool, honest


def raw_job(params: list[Any], difficulty: float) -> MinerJob:
    notify = Notify(params[0], params[1], params[2], params[3], tuple(params[4]), *params[5:9])
    return MinerJob.from_notify(notify, difficulty)


async def raw_miner(nursery: trio.Nursery, pool: Pool, worker: str = "raw.1") -> tuple[RawConnection, str, list[Any]]:
    """A raw connection after a full handshake: (connection, extranonce1 hex, notify params)."""
    raw = await RawConnection.connect(nursery, pool.port)
    sub = await raw.handshake(worker)
    params = await raw.next_notify()
    return raw, sub["result"][1], params


async def still_open(raw: RawConnection, request_id: int = 900) -> None:
    reply = await raw.request(request_id, "mining.extranonce.subscribe", [])
    assert reply["result"] is True, reply


# ---------------------------------------------------------------------------- recoverable


@pytest.mark.parametrize(
    "line",
    [
        b"{not json}\n",
        b'{"id": 1, "method": "mining.subscribe", "params": [}\n',
        b"[1, 2, 3]\n",
        b'"just a string"\n',
        b'{"id": {"x": 1}, "method": "mining.subscribe", "params": []}\n',
    ],
)
async def test_malformed_json_is_answered_20_and_the_connection_stays(
    abuse: tuple[Pool, Miner], nursery: trio.Nursery, line: bytes
) -> None:
    pool, honest = abuse
    raw = await RawConnection.connect(nursery, pool.port)
    await raw.send(line)
    reply = await raw.read_message()
    assert reply is not None and error_code(reply) == ErrorCode.OTHER
    await raw.handshake()  # the connection goes on
    await still_open(raw)
    await assert_served(honest)


@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("mining.submit", [1, 2, 3, 4, 5]),
        ("mining.submit", "w,1,2,3,4"),
        ("mining.submit", ["w", "j"]),
        ("mining.authorize", [123, "x"]),
        ("mining.subscribe", "raw"),
        ("mining.subscribe", [42]),
        ("mining.suggest_difficulty", ["high"]),
        ("mining.suggest_difficulty", [-1]),
        ("mining.configure", {"version-rolling": True}),
    ],
)
async def test_wrong_param_types_are_answered_20(
    abuse: tuple[Pool, Miner], nursery: trio.Nursery, method: str, params: Any
) -> None:
    pool, honest = abuse
    raw, _, _ = await raw_miner(nursery, pool)
    reply = await raw.request(7, method, params)
    assert error_code(reply) == ErrorCode.OTHER, reply
    await still_open(raw)
    await assert_served(honest)


async def test_an_unknown_method_is_answered_20(abuse: tuple[Pool, Miner], nursery: trio.Nursery) -> None:
    pool, honest = abuse
    raw = await RawConnection.connect(nursery, pool.port)
    reply = await raw.request(3, "mining.get_free_money", [])
    assert error_code(reply) == ErrorCode.OTHER and "unknown method" in reply["error"][1]
    await raw.handshake()
    await still_open(raw)
    await assert_served(honest)


async def test_submit_before_subscribe_is_25_and_before_authorize_is_24(
    abuse: tuple[Pool, Miner], nursery: trio.Nursery
) -> None:
    pool, honest = abuse
    raw = await RawConnection.connect(nursery, pool.port)
    share = ["raw.1", "1", "00000000", "00000000", "00000000"]
    assert error_code(await raw.request(1, "mining.submit", share)) == ErrorCode.NOT_SUBSCRIBED
    await raw.request(2, "mining.subscribe", [])
    assert error_code(await raw.request(3, "mining.submit", share)) == ErrorCode.UNAUTHORIZED
    auth = await raw.request(4, "mining.authorize", ["raw.1", "x"])
    assert auth["result"] is True
    await still_open(raw)
    await assert_served(honest)


async def test_a_share_for_a_worker_that_did_not_authorize_is_24(
    abuse: tuple[Pool, Miner], nursery: trio.Nursery
) -> None:
    pool, honest = abuse
    miner = await Miner.connect(nursery, pool.port, "mine.1")
    result = await miner.submit(miner.share(), worker="someone.else")
    assert not result.accepted and result.code == ErrorCode.UNAUTHORIZED
    assert (await miner.submit(miner.share())).accepted  # its own worker still mines
    assert "someone.else" not in pool.stats.workers or not pool.stats.workers["someone.else"].accepted
    await assert_served(honest)


async def test_a_bad_worker_name_is_refused_at_authorize(abuse: tuple[Pool, Miner], nursery: trio.Nursery) -> None:
    pool, honest = abuse
    raw = await RawConnection.connect(nursery, pool.port)
    await raw.request(1, "mining.subscribe", [])
    for i, name in enumerate(["", "x" * 129, "tab\there"]):
        reply = await raw.request(10 + i, "mining.authorize", [name, "x"])
        assert error_code(reply) == ErrorCode.UNAUTHORIZED, reply
    await still_open(raw)
    await assert_served(honest)


@pytest.mark.parametrize(
    "fields",
    [
        dict(extranonce2="000001"),
        dict(extranonce2="0000000001"),
        dict(extranonce2="0000000g"),
        dict(ntime="6000000"),
        dict(ntime="6000000z"),
        dict(nonce="zzzzzzzz"),
        dict(nonce="0x000001"),
        dict(nonce="\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668"),
    ],
)
async def test_fields_of_the_wrong_width_or_not_hex_are_20(
    abuse: tuple[Pool, Miner], nursery: trio.Nursery, fields: dict[str, str]
) -> None:
    pool, honest = abuse
    raw, _, params = await raw_miner(nursery, pool)
    job_id = params[0]
    share = dict(extranonce2="00000001", ntime=f"{int(time.time()):08x}", nonce="00000001")
    share.update(fields)
    reply = await raw.request(
        5, "mining.submit", ["raw.1", job_id, share["extranonce2"], share["ntime"], share["nonce"]]
    )
    assert error_code(reply) == ErrorCode.OTHER, reply
    await still_open(raw)
    await assert_served(honest)


async def test_unknown_job_stale_21(abuse: tuple[Pool, Miner], nursery: trio.Nursery) -> None:
    pool, honest = abuse
    miner = await Miner.connect(nursery, pool.port, "mine.1")
    share = miner.share()
    result = await miner.submit_params(["mine.1", "deadbeef", share.extranonce2, share.ntime, share.nonce])
    assert not result.accepted and result.code == ErrorCode.JOB_NOT_FOUND
    await assert_served(miner)
    await assert_served(honest)


async def test_duplicate_22_and_low_difficulty_23(abuse: tuple[Pool, Miner], nursery: trio.Nursery) -> None:
    pool, honest = abuse
    miner = await Miner.connect(nursery, pool.port, "mine.1")
    share = miner.share()
    assert (await miner.submit(share)).accepted
    dup = await miner.submit(share)
    assert (dup.accepted, dup.code) == (False, ErrorCode.DUPLICATE)
    shouting = await miner.submit_params(
        [
            "mine.1",
            share.job_id,
            share.extranonce2.upper(),
            share.ntime.upper(),
            share.nonce.upper(),
        ]
    )
    assert (shouting.accepted, shouting.code) == (False, ErrorCode.DUPLICATE)  # the same work
    low = await miner.submit(miner.share(low=True))
    assert (low.accepted, low.code) == (False, ErrorCode.LOW_DIFFICULTY)
    await assert_served(miner)
    await assert_served(honest)


async def test_version_bits_outside_the_mask_are_20(abuse: tuple[Pool, Miner], nursery: trio.Nursery) -> None:
    pool, honest = abuse
    rolling = await Miner.connect(nursery, pool.port, "roll.1", version_rolling=True)
    assert rolling.client.conn.version_rolling_mask == 0x1FFFE000
    bad = await rolling.submit(rolling.share(version_bits=0x00000100))
    assert (bad.accepted, bad.code) == (False, ErrorCode.OTHER)
    plain = await Miner.connect(nursery, pool.port, "plain.1")  # never negotiated version rolling
    bad = await plain.submit(plain.share(version_bits=0x00002000))
    assert (bad.accepted, bad.code) == (False, ErrorCode.OTHER)
    assert (await rolling.submit(rolling.share(version_bits=0x00002000))).accepted
    await assert_served(honest)


# ---------------------------------------------------------------------------- floods


async def test_a_flood_of_invalid_shares_is_answered_then_dropped(
    abuse: tuple[Pool, Miner], nursery: trio.Nursery
) -> None:
    pool, honest = abuse
    raw, _, _ = await raw_miner(nursery, pool)
    line = '{"id": %d, "method": "mining.submit", "params": ["raw.1", "beef", "%08x", "00", "00"]}\n'
    await raw.send(b"".join((line % (100 + i, i)).encode() for i in range(8)))
    seen = await raw.wait_closed()
    replies = [m for m in seen if "method" not in m]
    assert [m["id"] for m in replies] == [
        100,
        101,
        102,
        103,
        104,
    ]  # max_invalid_shares, each answered
    assert all(error_code(m) == ErrorCode.JOB_NOT_FOUND for m in replies)
    await wait_until(lambda: len(pool.sessions) == 1)
    await assert_served(honest)


async def test_an_occasional_bad_share_is_tolerated(abuse: tuple[Pool, Miner], nursery: trio.Nursery) -> None:
    pool, honest = abuse
    miner = await Miner.connect(nursery, pool.port, "mine.1")
    for _ in range(10):  # one bad share in three: 2 of every 6, below 5 of the last 10
        assert (await miner.submit(miner.share(low=True))).code == ErrorCode.LOW_DIFFICULTY
        assert (await miner.submit(miner.share())).accepted
        assert (await miner.submit(miner.share())).accepted
    assert not miner.client.closed.is_set()
    await assert_served(honest)


async def test_a_valid_share_slipped_in_does_not_save_a_flood(abuse: tuple[Pool, Miner], nursery: trio.Nursery) -> None:
    pool, honest = abuse
    miner = await Miner.connect(nursery, pool.port, "mine.1")
    for _ in range(4):  # one short of max_invalid_shares, then a valid one: the old streak reset
        assert (await miner.submit(miner.share(low=True))).code == ErrorCode.LOW_DIFFICULTY
    assert (await miner.submit(miner.share())).accepted
    assert (await miner.submit(miner.share(low=True))).code == ErrorCode.LOW_DIFFICULTY
    await miner.wait_closed()  # 5 of the last 6 were bad
    await wait_until(lambda: len(pool.sessions) == 1)
    await assert_served(honest)


# ---------------------------------------------------------------------------- disconnects


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(
            b'{"id": 1, "method": "mining.subscribe", "params": ["' + b"a" * 2000,
            id="oversized-line",
        ),
        pytest.param(b"\x00\x01\x02\xff\xfe\xfd garbage \x80\x81\n", id="binary-garbage"),
        pytest.param(b'{"id": 1, "method": "\xc3\x28"}\n', id="invalid-utf8"),
        pytest.param(CLIENT_HELLO, id="tls-client-hello"),
    ],
)
async def test_unusable_bytes_close_the_connection(
    abuse: tuple[Pool, Miner], nursery: trio.Nursery, payload: bytes
) -> None:
    pool, honest = abuse
    raw = await RawConnection.connect(nursery, pool.port)
    await raw.send(payload)
    await raw.wait_closed()
    await wait_until(lambda: len(pool.sessions) == 1)
    await assert_served(honest)


async def test_an_oversized_line_after_the_handshake_closes_the_connection(
    abuse: tuple[Pool, Miner], nursery: trio.Nursery
) -> None:
    pool, honest = abuse
    raw, _, _ = await raw_miner(nursery, pool)
    await raw.send(b'{"id": 9, "method": "mining.submit", "params": ["' + b"f" * 5000 + b'"]}\n')
    await raw.wait_closed()
    await wait_until(lambda: len(pool.sessions) == 1)
    await assert_served(honest)


async def test_a_share_just_before_garbage_is_still_judged(make_pool: MakePool, nursery: trio.Nursery) -> None:
    """RemoteProtocolError.events: complete messages before the damage must not be lost -- here a
    share that solves a block, sent in the same packet as an oversized line."""
    pool = await make_pool(embedded_difficulty=1e-4, **LIMITS)
    raw, extranonce1, params = await raw_miner(nursery, pool)
    job = raw_job(params, pool.config.start_difficulty)
    share = make_share(job, bytes.fromhex(extranonce1), b"\x00\x00\x00\x07", target=job.network_target)
    line = b'{"id": 50, "method": "mining.submit", "params": ["raw.1", "%s", "%s", "%s", "%s"]}\n' % (
        share.job_id.encode(),
        share.extranonce2.encode(),
        share.ntime.encode(),
        share.nonce.encode(),
    )
    await raw.send(line + b"x" * 4000)  # one write: the share, then a line far over the limit
    await raw.wait_closed()
    await wait_until(lambda: not pool.sessions)
    assert [b.hash for b in pool.ledger.list()] == [share.hash[::-1].hex()], "the block was thrown away"
    assert [r.hash for r in read_records(pool.config.data_path / "shares")] == [share.hash]


async def test_a_slow_reader_is_dropped_and_a_reading_miner_is_not(make_pool: MakePool, nursery: trio.Nursery) -> None:
    pool = await make_pool(send_queue=4, send_timeout=2.0)
    honest = await Miner.connect(nursery, pool.port, "honest.1")
    slow = await RawConnection.connect(nursery, pool.port, rcvbuf=1024)
    await slow.handshake("slow.1")  # ... and from now on it never reads
    await wait_until(lambda: any(s.worker == "slow.1" and s.session.working for s in pool.sessions))
    [slow_session] = [s for s in pool.sessions if s.worker == "slow.1"]
    job = pool.registry.current
    assert job is not None
    with trio.fail_after(20):
        for _ in range(5000):
            if slow_session not in pool.sessions:
                break
            before = len(honest.notifies())
            for _ in range(3):
                pool.broadcast(job, False)
            await honest.wait_for(lambda b=before: len(honest.notifies()) >= b + 3)  # type: ignore[misc]
    assert slow_session not in pool.sessions
    reason = slow_session.session.drop_reason
    assert reason is not None and reason.startswith("slow reader")
    assert [s.worker for s in pool.sessions] == ["honest.1"]
    await assert_served(honest)


async def test_handshake_timeout(make_pool: MakePool, nursery: trio.Nursery) -> None:
    pool = await make_pool(handshake_timeout=0.5)
    honest = await Miner.connect(nursery, pool.port, "honest.1")
    started = trio.current_time()
    raw = await RawConnection.connect(nursery, pool.port)
    await raw.request(1, "mining.subscribe", [])  # ... and never authorizes
    await raw.wait_closed(timeout=5)
    assert 0.5 <= trio.current_time() - started < 4
    await wait_until(lambda: len(pool.sessions) == 1)
    await assert_served(honest)


async def test_idle_timeout_closes_only_the_idle_connection(make_pool: MakePool, nursery: trio.Nursery) -> None:
    pool = await make_pool(idle_timeout=0.5)
    honest = await Miner.connect(nursery, pool.port, "honest.1")
    idler_closed = trio.Event()

    async def keep_mining() -> None:  # the honest miner is never idle
        while not idler_closed.is_set():
            await assert_served(honest)
            await trio.sleep(0.05)

    nursery.start_soon(keep_mining)
    idler, _, _ = await raw_miner(nursery, pool, "idle.1")
    started = trio.current_time()  # its last message (authorize) was answered just now
    await idler.wait_closed(timeout=5)
    idler_closed.set()
    assert 0.4 <= trio.current_time() - started < 4
    assert [s.worker for s in pool.sessions] == ["honest.1"]
    await assert_served(honest)


async def test_the_per_ip_cap_closes_extra_connections(make_pool: MakePool, nursery: trio.Nursery) -> None:
    pool = await make_pool(max_connections_per_ip=2)
    honest = await Miner.connect(nursery, pool.port, "honest.1")
    second, _, _ = await raw_miner(nursery, pool, "second.1")
    third = await RawConnection.connect(nursery, pool.port)
    await third.send_json({"id": 1, "method": "mining.subscribe", "params": []})
    assert await third.wait_closed() == []  # closed without a word
    assert len(pool.sessions) == 2

    elsewhere = await RawConnection.connect(nursery, pool.port, source="127.0.0.2")  # another IP
    await elsewhere.handshake("elsewhere.1")

    await second.aclose()
    await wait_until(lambda: len(pool.sessions) == 2)
    fourth, _, _ = await raw_miner(nursery, pool, "fourth.1")  # room again
    await still_open(fourth)
    await assert_served(honest)


async def test_drops_are_logged_with_their_reason(make_pool: MakePool, nursery: trio.Nursery) -> None:
    pool = await make_pool(handshake_timeout=1.0, **LIMITS)
    honest = await Miner.connect(nursery, pool.port, "honest.1")
    with capture_logs() as logs:
        silent = await RawConnection.connect(nursery, pool.port)
        oversized = await RawConnection.connect(nursery, pool.port)
        await oversized.send(b"[" * 3000)
        tls = await RawConnection.connect(nursery, pool.port)
        await tls.send(CLIENT_HELLO)
        flood, _, _ = await raw_miner(nursery, pool, "flood.1")
        for i in range(5):
            await flood.send_json({"id": i, "method": "mining.submit", "params": ["flood.1", "00", "00", "00", "00"]})
        for conn in (silent, oversized, tls, flood):
            await conn.wait_closed()
        await wait_until(lambda: sum(e["event"] == "connection closed" for e in logs) >= 4)
    reasons = sorted(e["reason"] for e in logs if e["event"] == "connection closed")
    assert [e for e in logs if e["log_level"] in ("error", "critical")] == []  # no "internal error"
    assert reasons[0] == "5 invalid messages among the last 5"
    assert reasons[1] == "handshake timeout"
    assert all(r.startswith("protocol error") for r in reasons[2:]), reasons
    await assert_served(honest)
