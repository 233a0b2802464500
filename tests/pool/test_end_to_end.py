"""The pool over real TCP: handshake, shares, blocks on the embedded chain, vardiff, extensions."""

from __future__ import annotations

import functools
import json

import trio

from stratumkit.chain.template import prevhash_from_stratum
from stratumkit.protocol.errors import ErrorCode
from stratumkit.protocol.events import ConfigureResult, Notify, Response, SetDifficulty
from stratumkit.server.pool import Pool
from stratumkit.shares.log import ShareRecord, read_records

from .conftest import MakePool
from .helpers import Miner, wait_until

BLOCKY = dict(embedded_difficulty=1e-4)  # a block every ~430,000 hashes: found in milliseconds


def logged(pool: Pool) -> list[ShareRecord]:
    return list(read_records(pool.config.data_path / "shares"))


async def test_handshake_sends_the_difficulty_then_a_clean_job(pool: Pool, nursery: trio.Nursery) -> None:
    miner = await Miner.connect(nursery, pool.port)
    kinds = [type(e) for e in miner.events]
    assert kinds[:2] == [SetDifficulty, Notify]
    first_difficulty, first_job = miner.events[0], miner.events[1]
    assert isinstance(first_difficulty, SetDifficulty) and isinstance(first_job, Notify)
    assert first_difficulty.difficulty == pool.config.start_difficulty
    assert first_job.clean_jobs and first_job.job_id == pool.registry.current.job_id  # type: ignore[union-attr]
    sub = miner.subscription
    assert len(bytes.fromhex(sub.extranonce1)) == 4 and sub.extranonce2_size == pool.config.extranonce2_size
    assert sub.session_id == sub.extranonce1
    assert len(pool.sessions) == 1 and pool.stats.connections == 1


async def test_shares_are_accepted_logged_and_counted(pool: Pool, nursery: trio.Nursery) -> None:
    miner = await Miner.connect(nursery, pool.port, "addr.rig1")
    shares = [miner.share() for _ in range(5)]
    for share in shares:
        result = await miner.submit(share)
        assert result.accepted, result
    records = {(r.extranonce1, r.extranonce2, r.ntime, r.nonce): r for r in logged(pool)}
    for share in shares:
        r = records[share.key(miner.extranonce1)]  # on disk before the reply was sent
        assert r.hash == share.hash and r.worker == "addr.rig1" and r.job_id == share.job_id
        assert r.difficulty == pool.config.start_difficulty and not r.block
    assert pool.stats.accepted == 5 and pool.stats.workers["addr.rig1"].accepted == 5
    snapshot = pool.snapshot()
    json.dumps(snapshot)  # what the HTTP API serves
    assert snapshot["accepted"] == 5 and snapshot["height"] == 1 and snapshot["source"] == "embedded"
    assert snapshot["hashrate"] > 0


async def test_pipelined_shares_are_all_answered_in_order(pool: Pool, nursery: trio.Nursery) -> None:
    miner = await Miner.connect(nursery, pool.port)
    results = await miner.submit_many([miner.share() for _ in range(60)])
    assert all(r.accepted for r in results)
    assert len(logged(pool)) == 60


async def test_duplicate_and_low_difficulty_shares_are_refused(pool: Pool, nursery: trio.Nursery) -> None:
    miner = await Miner.connect(nursery, pool.port)
    share = miner.share()
    assert (await miner.submit(share)).accepted
    dup = await miner.submit(share)
    assert not dup.accepted and dup.code == ErrorCode.DUPLICATE
    low = await miner.submit(miner.share(low=True))
    assert not low.accepted and low.code == ErrorCode.LOW_DIFFICULTY
    assert pool.stats.rejected == {"duplicate": 1, "low_difficulty": 1}
    assert len(logged(pool)) == 1


async def test_a_found_block_extends_the_chain_and_every_miner_gets_clean_work(
    make_pool: MakePool, nursery: trio.Nursery
) -> None:
    pool = await make_pool(**BLOCKY)
    finder = await Miner.connect(nursery, pool.port, "finder.1")
    other = await Miner.connect(nursery, pool.port, "other.1")
    old_job = finder.job
    assert old_job is not None
    stale_share = finder.share()  # found before the block, submitted after it

    block = finder.share(block=True)
    result = await finder.submit(block)
    assert result.accepted, result

    def on_new_block(m: Miner) -> bool:
        return m.job is not None and m.job.prevhash != old_job.prevhash

    for miner in (finder, other):
        await miner.wait_for(functools.partial(on_new_block, miner))
        newest = miner.notifies()[-1]
        assert newest.clean_jobs
        assert prevhash_from_stratum(newest.prevhash) == block.hash  # built on the found block
    assert pool.source.height == 1  # type: ignore[attr-defined]
    assert pool.stats.blocks == 1
    [record] = [r for r in logged(pool) if r.block]
    assert record.hash == block.hash and record.worker == "finder.1"
    await wait_until(lambda: [b.status for b in pool.ledger.list()] == ["confirmed"])
    [found] = pool.ledger.list()
    assert found.hash == block.hash[::-1].hex() and found.worker == "finder.1" and found.height == 1

    stale = await finder.submit(stale_share)
    assert not stale.accepted and stale.code == ErrorCode.JOB_NOT_FOUND
    assert (await other.submit(other.share())).accepted  # fresh work is fine


async def test_a_block_is_kept_even_when_its_share_is_refused(make_pool: MakePool, nursery: trio.Nursery) -> None:
    """The block check comes before every reason to refuse: here an ntime far in the future."""
    pool = await make_pool(**BLOCKY)
    miner = await Miner.connect(nursery, pool.port)
    job = miner.job
    assert job is not None
    block = miner.share(block=True, ntime=job.ntime + 3 * 3600)
    result = await miner.submit(block)
    assert not result.accepted and result.code == ErrorCode.OTHER
    await miner.wait_for(lambda: miner.job is not None and miner.job.prevhash == block.hash)
    assert pool.source.height == 1  # type: ignore[attr-defined]
    assert [b.hash for b in pool.ledger.list()] == [block.hash[::-1].hex()]


async def test_vardiff_raises_a_fast_miner(make_pool: MakePool, nursery: trio.Nursery) -> None:
    pool = await make_pool(max_difficulty=1.0, share_interval=10.0, retarget_time=60.0)
    miner = await Miner.connect(nursery, pool.port)
    for _ in range(12):  # retarget_shares: 12 shares in milliseconds, aiming at one per 10 s
        assert (await miner.submit(miner.share())).accepted
    await miner.wait_for(lambda: miner.difficulty != 1e-6 and miner.job.difficulty != 1e-6)  # type: ignore[union-attr]
    assert miner.difficulty == 4e-6  # by at most max_step
    assert isinstance(miner.events[-1], Notify)  # the new difficulty comes with work
    assert (await miner.submit(miner.share())).accepted
    [session] = pool.sessions
    assert session.session.vardiff.difficulty == 4e-6


async def test_shares_sent_before_a_difficulty_change_count_at_the_old_difficulty(
    make_pool: MakePool, nursery: trio.Nursery
) -> None:
    """validator.py: a share counts at the difficulty its job was sent with to that miner.

    Shares already on the wire when vardiff raises the difficulty were found under the old one;
    they must not be refused as low difficulty.
    """
    pool = await make_pool(max_difficulty=1.0, share_interval=10.0, retarget_time=60.0)
    miner = await Miner.connect(nursery, pool.port)
    # 24 shares meeting 1e-6 but not 4e-6 (what vardiff will move to after the 12th)
    shares = [miner.share(above_difficulty=4e-6) for _ in range(24)]
    results = await miner.submit_many(shares)
    refused = [(i, r.code) for i, r in enumerate(results) if not r.accepted]
    assert refused == []


async def test_a_quiet_miner_is_lowered(make_pool: MakePool, nursery: trio.Nursery) -> None:
    pool = await make_pool(max_difficulty=1e-6, share_interval=0.05, retarget_time=0.2)
    miner = await Miner.connect(nursery, pool.port)
    await miner.wait_for(lambda: miner.job is not None and miner.job.difficulty < 1e-6, timeout=3)
    assert miner.difficulties[:2] == [1e-6, 2.5e-7]  # lowered by at most max_step, with work
    assert (await miner.submit(miner.share())).accepted
    assert pool.stats.accepted == 1


async def test_a_quiet_miner_is_never_lowered_below_its_configured_minimum(
    make_pool: MakePool, nursery: trio.Nursery
) -> None:
    """mining.configure minimum-difficulty (BIP310): the pool promised not to go below it."""
    pool = await make_pool(max_difficulty=1e-3, share_interval=0.05, retarget_time=0.2)
    miner = await Miner.connect(nursery, pool.port, handshake=False)
    reply = await miner.client.call(miner.client.conn.configure, minimum_difficulty=1e-5)
    assert isinstance(reply, ConfigureResult) and reply.minimum_difficulty is True
    await miner.client.handshake("w.1")
    await miner.wait_for(lambda: miner.job is not None)
    assert miner.difficulties == [1e-5]
    with trio.move_on_after(4 * pool.config.retarget_time):  # several quiet-miner retargets
        await miner.wait_for(lambda: min(miner.difficulties) < 1e-5)
    assert min(miner.difficulties) >= 1e-5, miner.difficulties


async def test_suggest_difficulty_is_clamped_to_the_configured_bounds(
    make_pool: MakePool, nursery: trio.Nursery
) -> None:
    pool = await make_pool(min_difficulty=1e-7, start_difficulty=1e-6, max_difficulty=1e-3)
    miner = await Miner.connect(nursery, pool.port)
    reply = await miner.client.call(miner.client.conn.suggest_difficulty, 1e6)
    assert isinstance(reply, Response) and reply.result is True
    await miner.wait_for(lambda: miner.job is not None and miner.job.difficulty == 1e-3)
    assert miner.difficulty == pool.config.max_difficulty

    await miner.client.call(miner.client.conn.suggest_difficulty, 1e-12)
    await miner.wait_for(lambda: miner.job is not None and miner.job.difficulty == 1e-7)
    assert (await miner.submit(miner.share())).accepted  # judged at the new, lower difficulty

    early = await Miner.connect(nursery, pool.port, "early.1", handshake=False)
    await early.client.call(early.client.conn.suggest_difficulty, 5e5)  # before subscribing
    await early.client.handshake("early.1")
    await early.wait_for(lambda: early.job is not None)
    assert early.difficulties == [1e-3]


async def test_version_rolling_mask_is_negotiated_and_used(pool: Pool, nursery: trio.Nursery) -> None:
    miner = await Miner.connect(nursery, pool.port, handshake=False)
    miner_mask = 0x00FFE000
    reply = await miner.client.call(miner.client.conn.configure, version_rolling_mask=miner_mask)
    assert isinstance(reply, ConfigureResult)
    assert reply.version_rolling_mask == pool.config.version_mask & miner_mask == 0x00FFE000
    await miner.client.handshake("w.1")
    await miner.wait_for(lambda: miner.job is not None)
    job = miner.job
    assert job is not None

    inside = miner.share(version_bits=0x00A02000)
    assert (await miner.submit(inside)).accepted
    [record] = logged(pool)
    assert record.version == (job.version & ~miner_mask) | 0x00A02000

    # allowed by the pool's mask, but not by what this miner negotiated
    outside = miner.share(version_bits=0x10000000)
    result = await miner.submit(outside)
    assert not result.accepted and result.code == ErrorCode.OTHER


async def test_extranonce_subscribe_is_answered_true(pool: Pool, nursery: trio.Nursery) -> None:
    miner = await Miner.connect(nursery, pool.port)
    reply = await miner.client.call(miner.client.conn.extranonce_subscribe)
    assert isinstance(reply, Response) and reply.result is True
    assert (await miner.submit(miner.share())).accepted


async def test_a_miner_resumes_its_session_after_a_reconnect(pool: Pool, nursery: trio.Nursery) -> None:
    first = await Miner.connect(nursery, pool.port)
    extranonce1, session_id = first.extranonce1, first.subscription.session_id
    assert session_id is not None
    await first.client.aclose()
    await wait_until(lambda: not pool.sessions and len(pool.extranonces) == 0)

    again = await Miner.connect(nursery, pool.port, session_id=session_id)
    assert again.extranonce1 == extranonce1
    assert (await again.submit(again.share())).accepted

    # the extranonce1 is held now: a second miner asking for it gets its own
    thief = await Miner.connect(nursery, pool.port, "thief.1", session_id=session_id)
    assert thief.extranonce1 != extranonce1


async def test_miners_get_distinct_extranonces_and_both_are_served(pool: Pool, nursery: trio.Nursery) -> None:
    miners = [await Miner.connect(nursery, pool.port, f"w.{i}") for i in range(4)]
    assert len({m.extranonce1 for m in miners}) == 4
    async with trio.open_nursery() as inner:
        for m in miners:
            inner.start_soon(m.submit_many, [m.share() for _ in range(10)])
    assert pool.stats.accepted == 40
    assert all(r.accepted for m in miners for r in m.results)


async def test_work_from_before_a_refresh_stays_valid(make_pool: MakePool, nursery: trio.Nursery) -> None:
    pool = await make_pool(template_refresh=0.1)
    miner = await Miner.connect(nursery, pool.port)
    first = miner.job
    assert first is not None
    await miner.wait_for(lambda: len(miner.notifies()) >= 2)
    refresh = miner.notifies()[-1]
    assert not refresh.clean_jobs and refresh.job_id != first.job_id
    assert refresh.prevhash == miner.notifies()[0].prevhash  # same block, newer template
    assert (await miner.submit(miner.share(first))).accepted  # inside the stale window
    assert (await miner.submit(miner.share())).accepted


async def test_several_workers_on_one_connection(pool: Pool, nursery: trio.Nursery) -> None:
    miner = await Miner.connect(nursery, pool.port, "addr.rig1")
    reply = await miner.client.call(miner.client.conn.authorize, "addr.rig2", "x")
    assert getattr(reply, "ok", False) is True
    assert (await miner.submit(miner.share(), worker="addr.rig1")).accepted
    assert (await miner.submit(miner.share(), worker="addr.rig2")).accepted
    assert {w: s.accepted for w, s in pool.stats.workers.items()} == {
        "addr.rig1": 1,
        "addr.rig2": 1,
    }
    assert sorted(r.worker for r in logged(pool)) == ["addr.rig1", "addr.rig2"]
