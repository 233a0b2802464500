"""`stratumkit serve` against a real regtest node, end to end: a miner on our client and CPU miner
finds blocks through the pool, the node accepts them and its peer follows, the pool's share log
and block ledger agree with the chain; and the node failing under the pool (down at start, killed
mid-run, down while a block is found) costs neither the pool nor the block."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import trio

from stratumkit.chain.address import Network, address_to_script
from stratumkit.chain.serialize import push_height
from stratumkit.jobs.rpc import NodeRPC
from stratumkit.shares.log import read_records
from tests.node.regtest import RegtestNetwork
from tests.support.miners import ScanningMiner, display_prevhash
from tests.support.waiting import wait_until, wait_until_async

from .conftest import StartPool
from .harness import POOL_TAG, SHARE_DIFFICULTY, PoolProcess, new_address

#: Regtest's subsidy halves every 150 blocks (seen on this node: 50 BTC at 149, 25 at 150).
REGTEST_HALVING = 150


def subsidy(height: int) -> int:
    return (50 * 100_000_000) >> (height // REGTEST_HALVING)


async def chain_since(node: NodeRPC, height: int) -> list[dict[str, Any]]:
    """Headers of the best chain above `height`, oldest first."""
    headers: list[dict[str, Any]] = []
    block_hash = await node.call("getbestblockhash")
    while True:
        header = await node.call("getblockheader", block_hash)
        if header["height"] <= height:
            return headers[::-1]
        headers.append(header)
        block_hash = header["previousblockhash"]


async def in_best_chain(node: NodeRPC, block_hash: str) -> bool:
    header = await node.call("getblockheader", block_hash)
    return bool(header["confirmations"] >= 1)


async def wait_confirmed(pool: PoolProcess, hashes: Iterable[str]) -> None:
    wanted = set(hashes)
    await wait_until(
        lambda: all(pool.ledger_status().get(h) == "confirmed" for h in wanted),
        what=f"ledger: {wanted} confirmed",
    )


async def test_blocks_found_through_the_pool_are_accepted_and_recorded(
    start_pool: StartPool, healthy_regtest: RegtestNetwork, nursery: trio.Nursery
) -> None:
    regtest = healthy_regtest
    payout = new_address()
    async with regtest.rpc as node1, NodeRPC(regtest.rpc_url2, timeout=10.0) as node2:
        checked = await node1.call("validateaddress", payout)
        assert checked["isvalid"], checked
        payout_script = address_to_script(payout, Network.REGTEST)
        assert checked["scriptPubKey"] == payout_script.hex()
        start = await node1.call("getblockcount")

        pool = await start_pool(payout_address=payout)
        miner = await ScanningMiner.connect(nursery, pool.port, "rig1.gpu0")

        # One clean job per block, mining on until three of the pool's blocks are in the chain
        # (every other hash is a block on regtest: a sibling may lose a height now and then).
        async def three_blocks() -> list[dict[str, Any]] | None:
            chain = await chain_since(node1, start)
            return chain if len(chain) >= 3 else None

        await wait_until_async(three_blocks, what="three blocks in the chain")
        await miner.quiesce()
        # a share racing a new tip may be stale (every other hash is a block here); nothing else is refused
        assert miner.results and all(r.accepted or r.code == 21 for r in miner.results.values()), miner.cpu.rejections
        # every block answered has reached the node before the chain is read
        await wait_until(lambda: "pending" not in pool.ledger_status().values(), what="every block submitted")

        chain = await chain_since(node1, start)
        assert len(chain) >= 3
        ours = [str(h["hash"]) for h in chain]
        # Every block above the start is the pool's, confirmed in its ledger ...
        await wait_confirmed(pool, ours)
        # ... and came with a clean job built on it.
        await miner.wait_for(lambda: ours[-1] in miner.clean_tips(), what="a clean job on the tip")
        tips = miner.clean_tips()
        assert all(h in tips for h in ours)
        assert tips[0] == (await node1.call("getblockheader", ours[0]))["previousblockhash"]

        for header in chain:
            block = await node1.call("getblock", header["hash"], 2)
            coinbase = block["tx"][0]
            script_sig = bytes.fromhex(coinbase["vin"][0]["coinbase"])
            assert script_sig.startswith(push_height(block["height"]))  # BIP34
            assert POOL_TAG.encode() in script_sig
            (out,) = coinbase["vout"]
            assert out["scriptPubKey"]["hex"] == payout_script.hex()
            assert out["scriptPubKey"]["addresses"] == [payout]
            assert round(out["value"] * 100_000_000) == subsidy(block["height"])

        # The peer follows the pool's blocks.
        await trio.to_thread.run_sync(regtest.wait_synced)
        assert await node2.call("getbestblockhash") == ours[-1]

        # Ledger: the chain's blocks, plus at most siblings that lost the race to one of them.
        ledger = {b.hash: b for b in pool.ledger()}
        heights = {int(h["height"]) for h in chain}
        for found in ledger.values():
            assert found.worker == "rig1.gpu0"
            if found.hash not in ours:
                assert found.height in heights and found.status != "confirmed"
                assert not await in_best_chain(node1, found.hash)

        assert await pool.stop() == 0, pool.tail()
        records = list(read_records(pool.data_dir / "shares"))
        # Every share is a block at regtest difficulty; each is in the ledger, and vice versa.
        assert len(records) == sum(r.accepted for r in miner.results.values())
        assert {r.hash[::-1].hex() for r in records} == set(ledger)
        # credited at the share difficulty sent: capped under regtest's network difficulty (~4.7e-10)
        assert all(r.block and r.worker == "rig1.gpu0" and r.difficulty < 1e-9 < SHARE_DIFFICULTY for r in records)
        assert {r.job_id for r in records} <= set(miner.submitted.values())
        assert len(pool.find_logs("block confirmed")) >= len(ours)


async def test_node_down_when_the_pool_starts(
    start_pool: StartPool, healthy_regtest: RegtestNetwork, nursery: trio.Nursery
) -> None:
    regtest = healthy_regtest
    await trio.to_thread.run_sync(regtest.stop_node1)
    pool = await start_pool(payout_address=new_address())
    failure = await pool.wait_log("node unavailable, retrying")
    assert "refused" in failure["error"], failure
    # Miners connect and hand-shake, and get no work while there is none.
    miner = await ScanningMiner.connect(nursery, pool.port, "early.rig")
    await pool.wait_log("miner authorized")
    await trio.sleep(1.0)  # several retries of the node (every 0.2 s, doubling)
    assert miner.notifies() == [] and pool.running

    await trio.to_thread.run_sync(regtest.start_node1)
    async with regtest.rpc as node1:
        tip = await node1.call("getbestblockhash")
        await miner.wait_for(lambda: miner.notifies(), what="work once the node is back")
        first = miner.notifies()[0]
        assert first.clean_jobs and display_prevhash(first) == tip
        await pool.wait_log("node answers again")
        # ... and it is real work: the block it finds is the node's new tip.
        await miner.wait_for(lambda: len(miner.clean_tips()) >= 2, what="a block")
        found = miner.clean_tips()[1]
        assert (await node1.call("getblockheader", found))["previousblockhash"] == tip
        await wait_confirmed(pool, [found])


async def test_node_killed_mid_run(
    start_pool: StartPool, healthy_regtest: RegtestNetwork, nursery: trio.Nursery
) -> None:
    regtest = healthy_regtest
    pool = await start_pool(payout_address=new_address())
    miner = await ScanningMiner.connect(nursery, pool.port, "steady.rig")
    await miner.wait_for(lambda: len(miner.clean_tips()) >= 2, what="a first block")
    await miner.quiesce()
    async with regtest.rpc as node1:
        tip = await node1.call("getbestblockhash")
    await miner.wait_for(lambda: miner.clean_tips()[-1] == tip, what="the job on the tip")
    # Node 2 must hold the tip: node 1 loses its unflushed blocks to SIGKILL and gets them back
    # from node 2 (a tip only node 1 had would be gone, and the block built on it with it).
    await trio.to_thread.run_sync(regtest.wait_synced)
    last_job = miner.job
    assert last_job is not None

    await trio.to_thread.run_sync(lambda: regtest.stop_node1(kill=True))
    failure = await pool.wait_log("node unavailable, retrying", where=lambda r: r["had_template"])
    assert pool.running, pool.tail()
    assert failure["error"]

    # Within its stale window the pool keeps serving the last job: to a new miner ...
    late = await ScanningMiner.connect(nursery, pool.port, "late.rig", mine=False)
    await late.wait_for(lambda: late.notifies(), what="the last job")
    assert late.notifies()[0].prevhash == last_job.prevhash and late.notifies()[0].clean_jobs
    # ... and for shares on the job the miner holds. Each is a block: written down first.
    miner.start_mining()
    await miner.wait_for(lambda: miner.accepted_on({last_job.job_id}), what="a share on the last job")
    assert miner.job is last_job  # no new work while the node is down
    pending = [b for b in pool.ledger() if b.status == "pending"]
    assert len(pending) >= 1
    down_block = pending[-1].hash  # list() is newest first: the first block found while down
    await pool.wait_log("block submit failed, will retry", where=lambda r: r["block"] == down_block)
    assert next(b for b in pool.ledger() if b.hash == down_block).attempts >= 1

    # SIGKILL cost node 1 its unflushed blocks: it restarts at genesis and syncs from node 2.
    # The pool is frozen meanwhile, so that its next submit finds the block's parent (a submit
    # racing the sync gets "inconclusive" and is never sent again: see BlockSubmitter).
    def restart() -> None:
        regtest.start_node1()
        regtest.wait_synced()

    pool.freeze()
    try:
        await trio.to_thread.run_sync(restart)
    finally:
        pool.thaw()
    # The pool submits the block, and its miners get clean work on top of it.
    await miner.wait_for(lambda: down_block in miner.clean_tips(), timeout=30, what="clean work on the block")
    await wait_confirmed(pool, [down_block])
    async with regtest.rpc as node1:
        assert await in_best_chain(node1, down_block)
    await late.wait_for(lambda: down_block in late.clean_tips(), what="clean work for the other miner")
    assert pool.find_logs("node answers again")


async def test_block_found_while_the_node_is_down_is_resubmitted_after_a_pool_restart(
    start_pool: StartPool, healthy_regtest: RegtestNetwork, nursery: trio.Nursery
) -> None:
    regtest = healthy_regtest
    pool = await start_pool(payout_address=new_address())
    miner = await ScanningMiner.connect(nursery, pool.port, "patient.rig", mine=False)
    await miner.wait_for(lambda: miner.notifies(), what="work")
    job = miner.job
    assert job is not None

    await trio.to_thread.run_sync(regtest.stop_node1)
    await pool.wait_log("node unavailable, retrying", where=lambda r: r["had_template"])
    miner.start_mining()
    await miner.wait_for(lambda: miner.accepted_on({job.job_id}), what="a block while the node is down")
    miner.close()
    assert await pool.stop() == 0, pool.tail()  # no wait for the submit retries
    found_while_down = pool.ledger()
    assert found_while_down and all(b.status == "pending" and b.attempts >= 1 for b in found_while_down)

    await trio.to_thread.run_sync(regtest.start_node1)
    await pool.restart(nursery)
    resubmitted = {b.hash for b in found_while_down}
    await wait_until(
        lambda: {r["block"] for r in pool.find_logs("resubmitting block from before restart")} == resubmitted
    )
    # One block per height wins (a scan chunk may have held two shares: siblings).
    await wait_until(lambda: "confirmed" in pool.ledger_status().values(), what="a confirmed block")
    found = next(b for b in pool.ledger() if b.status == "confirmed")
    async with regtest.rpc as node1:
        assert await in_best_chain(node1, found.hash)
    # New work builds on it.
    again = await ScanningMiner.connect(nursery, pool.port, "patient.rig", mine=False)
    await again.wait_for(lambda: found.hash in again.clean_tips(), what="work on the resubmitted block")
