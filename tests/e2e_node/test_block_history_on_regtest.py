"""Block history and the node metrics of `stratumkit serve` against a real regtest node: the
blocks the node took are `confirmed` in `/v1/blocks` with the node's own reward and difficulty,
each block's effort is its round's share difficulty over that difficulty, and `/metrics` says the
node is up while it runs and down once it is stopped."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families

from stratumkit.shares.log import read_records
from tests.node.regtest import RegtestNetwork
from tests.support.miners import ScanningMiner
from tests.support.waiting import wait_until, wait_until_async

from .conftest import StartPool
from .harness import new_address
from .test_pool_on_regtest import chain_since


def metric(text: str, name: str) -> float:
    (value,) = [s.value for f in text_string_to_metric_families(text) for s in f.samples if s.name == name]
    return value


async def test_block_history_and_node_metrics_against_the_node(
    start_pool: StartPool, healthy_regtest: RegtestNetwork, nursery: trio.Nursery
) -> None:
    regtest = healthy_regtest
    async with regtest.rpc as node:
        start = await node.call("getblockcount")
        pool = await start_pool(payout_address=new_address())
        api = await pool.process.api_port()
        miner = await ScanningMiner.connect(nursery, pool.port, "rig1.gpu0")

        async def two_blocks() -> list[dict[str, Any]] | None:
            chain = await chain_since(node, start)
            return chain if len(chain) >= 2 else None

        await wait_until_async(two_blocks, what="two blocks in the chain")
        await miner.quiesce()
        chain = await chain_since(node, start)
        ours = {str(h["hash"]): h for h in chain}
        await wait_until(
            lambda: all(pool.ledger_status().get(h) == "confirmed" for h in ours), what="the chain's blocks confirmed"
        )
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{api}") as http:
            page = (await http.get("/v1/blocks")).json()
            up = (await http.get("/metrics")).text
            tip = await node.call("getblockchaininfo")
            rewards = {}
            for block_hash in ours:
                coinbase = (await node.call("getblock", block_hash, 2))["tx"][0]
                rewards[block_hash] = sum(round(out["value"] * 100_000_000) for out in coinbase["vout"])
            await trio.to_thread.run_sync(regtest.stop_node1)

            async def node_down() -> str | None:
                text = (await http.get("/metrics")).text
                return text if metric(text, "stratumkit_node_up") == 0 else None

            down = await wait_until_async(node_down, what="stratumkit_node_up 0 once the node is stopped")

    shares = {r.hash[::-1].hex(): r for r in read_records(pool.data_dir / "shares")}
    shown = {b["hash"]: b for b in page["blocks"]}
    assert set(ours) <= set(shown)
    for block_hash, header in ours.items():
        block = shown[block_hash]
        assert (block["status"], block["height"], block["worker"]) == ("confirmed", header["height"], "rig1.gpu0")
        assert block["network_difficulty"] == pytest.approx(header["difficulty"], rel=1e-12)
        assert block["reward_sats"] == rewards[block_hash]
        # every share is a block on regtest: a round is the block's own share (or none if it was refused)
        if block_hash in shares:
            assert block["round_shares"] == 1
            assert block["effort"] == pytest.approx(shares[block_hash].difficulty / header["difficulty"])
        else:
            assert block["round_shares"] == 0 and block["effort"] == 0
    assert metric(up, "stratumkit_node_up") == 1
    assert metric(up, "stratumkit_network_difficulty") == pytest.approx(tip["difficulty"], rel=1e-12)
    assert metric(up, "stratumkit_network_height") == tip["blocks"] + 1
    assert down is not None and metric(down, "stratumkit_template_age_seconds") >= 0
