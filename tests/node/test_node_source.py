"""NodeTemplateSource against real regtest nodes: real templates, blocks mined from them and
accepted, new blocks seen by longpoll and by polling, and the node failing in the ways nodes fail
(down at start, stopped mid-run, hung, answering errors) without the source ever crashing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio
from structlog.testing import capture_logs

from stratumkit.chain import BlockTemplate, coinbase_with_witness, parse_block
from stratumkit.jobs.blocks import BlockLedger, BlockSubmitter
from stratumkit.jobs.node import NodeTemplateSource
from stratumkit.jobs.rpc import NodeRPC, NodeUnreachable
from stratumkit.jobs.sources import SourceUnavailable, TemplateUpdate
from tests.support.ports import refused_port
from tests.support.waiting import TIMEOUT, wait_until

from .regtest import PAYOUT_ADDRESS, RegtestNetwork, block_for

Updates = trio.MemoryReceiveChannel[TemplateUpdate]


@asynccontextmanager
async def running(source: NodeTemplateSource) -> AsyncIterator[Updates]:
    """Run the source in a nursery for the block's duration; yield its update channel."""
    send, receive = trio.open_memory_channel[TemplateUpdate](100)
    async with trio.open_nursery() as nursery:
        with trio.fail_after(15):
            await nursery.start(source.run, send)
        yield receive
        nursery.cancel_scope.cancel()


async def next_update(updates: Updates, timeout: float = TIMEOUT) -> TemplateUpdate:
    with trio.fail_after(timeout):
        return await updates.receive()


async def test_initial_template_is_real(rpc: NodeRPC) -> None:
    source = NodeTemplateSource(rpc, poll_interval=0.2)
    async with running(source) as updates:
        # started() comes after the first template was pushed: it is already waiting.
        first = updates.receive_nowait()
        assert first.reason == "initial"
        template = first.template
        info = await rpc.call("getblockchaininfo")
        assert template.previousblockhash == info["bestblockhash"]
        assert template.height == info["blocks"] + 1
        assert not template.has_witness_commitment  # this node has no segwit
        assert template.coinbasevalue > 0
        # The same answer parsed by hand gives the same template.
        again = BlockTemplate.from_gbt(await rpc.call("getblocktemplate", {"rules": ["segwit"]}))
        assert again.prevhash == template.prevhash and again.nbits == template.nbits
        assert source.healthy and source.last_error is None
        assert source.status()["height"] == template.height


async def test_mined_block_is_accepted_and_followed(healthy_regtest: RegtestNetwork) -> None:
    async with healthy_regtest.rpc as rpc:
        source = NodeTemplateSource(rpc, poll_interval=0.2)
        async with running(source) as updates:
            template = (await next_update(updates)).template
            block, block_hash = block_for(template)
            header, txs = parse_block(block)
            assert header.prevhash == template.prevhash and len(txs) == 1 + len(template.transactions)

            assert await source.submit_block(block) is None
            assert await source.block_status(block_hash) == "in-chain"
            # The pool's source sees its own block as the new tip.
            update = await next_update(updates)
            assert update.reason == "new-block"
            assert update.template.previousblockhash == block_hash
            assert update.template.height == template.height + 1

            assert await source.submit_block(block) == "duplicate"

            # Valid work on the old tip: the node stores it off the best chain and says so.
            stale, stale_hash = block_for(template)
            assert await source.submit_block(stale) == "inconclusive"
            assert await source.block_status(stale_hash) == "orphaned"

            unsolved, unsolved_hash = block_for(update.template, solved=False)
            result = await source.submit_block(unsolved)
            assert result is not None and result != "duplicate"
            assert "high-hash" in result
            assert await source.block_status(unsolved_hash) == "unknown"

            # A coinbase with a witness: this node, without segwit, reads the marker byte as an
            # empty input list and answers -22 "Block does not start with a coinbase".
            solved, solved_hash = block_for(update.template)
            header_and_count = solved[:81]
            coinbase = parse_block(solved)[1][0].serialize(witness=False)
            witnessed = header_and_count + coinbase_with_witness(coinbase)
            result = await source.submit_block(witnessed)
            assert result is not None and result.startswith("rejected: ") and "coinbase" in result
            assert await source.block_status(solved_hash) == "unknown"
            assert await source.block_status("00" * 32) == "unknown"

    # The second node follows the first.
    await trio.to_thread.run_sync(healthy_regtest.wait_synced)
    assert healthy_regtest.node2.call("getblockheader", block_hash)["confirmations"] >= 1


async def test_block_submitter_confirms(healthy_regtest: RegtestNetwork, tmp_path: Path) -> None:
    async with healthy_regtest.rpc as rpc:
        source = NodeTemplateSource(rpc, poll_interval=0.2)
        template = BlockTemplate.from_gbt(await rpc.call("getblocktemplate", {"rules": ["segwit"]}))
        block, block_hash = block_for(template)
        ledger = BlockLedger(tmp_path / "blocks.sqlite3")
        try:
            submitter = BlockSubmitter(ledger, source, confirm_delay=0.1)
            await submitter.record(block_hash, template.height, "worker.1", block)
            with trio.fail_after(TIMEOUT):
                assert await submitter.submit(block_hash, block) == "confirmed"
            (found,) = ledger.list()
            assert (found.hash, found.status) == (block_hash, "confirmed")
        finally:
            ledger.close()


async def test_longpoll_brings_a_block_found_elsewhere(healthy_regtest: RegtestNetwork) -> None:
    async with healthy_regtest.rpc as rpc:
        # Polling every 60 s: only the longpoll can bring the block within next_update's 20 s.
        source = NodeTemplateSource(rpc, poll_interval=60, refresh_interval=60)
        async with running(source) as updates:
            assert (await next_update(updates)).reason == "initial"
            (mined,) = await trio.to_thread.run_sync(healthy_regtest.node2.call, "generatetoaddress", 1, PAYOUT_ADDRESS)
            update = await next_update(updates)
            assert update.reason == "new-block"
            assert update.template.previousblockhash == mined
            assert source.longpoll_active


async def test_polling_alone_sees_new_blocks(healthy_regtest: RegtestNetwork) -> None:
    async with healthy_regtest.rpc as rpc:
        source = NodeTemplateSource(rpc, poll_interval=0.2, refresh_interval=60, longpoll=False)
        async with running(source) as updates:
            assert (await next_update(updates)).reason == "initial"
            (mined,) = await trio.to_thread.run_sync(healthy_regtest.node2.call, "generatetoaddress", 1, PAYOUT_ADDRESS)
            update = await next_update(updates)
            assert (update.reason, update.template.previousblockhash) == ("new-block", mined)
            assert not source.longpoll_active


async def test_refresh_keeps_the_tip(rpc: NodeRPC) -> None:
    source = NodeTemplateSource(rpc, poll_interval=0.1, refresh_interval=0.3, longpoll=False)
    async with running(source) as updates:
        first = await next_update(updates)
        refresh = await next_update(updates)
        assert refresh.reason == "refresh"
        assert refresh.template.prevhash == first.template.prevhash


async def test_node_down_at_start() -> None:
    with refused_port() as port:
        async with NodeRPC(f"http://u:p@127.0.0.1:{port}") as rpc:
            source = NodeTemplateSource(rpc, poll_interval=0.05, retry_max=0.2)
            with capture_logs() as logs:
                async with running(source) as updates:
                    # Started although there is no work; keeps trying without crashing.
                    assert not source.healthy
                    assert "connection refused" in (source.last_error or "")
                    await trio.sleep(0.5)
                    with pytest.raises(trio.WouldBlock):
                        updates.receive_nowait()
                    with pytest.raises(NodeUnreachable):
                        await source.submit_block(b"\x00" * 81)
                    with pytest.raises(SourceUnavailable):
                        await source.block_status("00" * 32)
    warnings = [e for e in logs if e["log_level"] == "warning"]
    assert len(warnings) == 1, "one warning for one fault, not one per retry"
    assert warnings[0]["event"] == "node unavailable, retrying"
    assert "p@" not in str(logs)


async def test_node_without_peers_answers_errors(healthy_regtest: RegtestNetwork) -> None:
    node1 = healthy_regtest.node1
    async with healthy_regtest.rpc as rpc:
        source = NodeTemplateSource(rpc, poll_interval=0.1, refresh_interval=0.2, retry_max=0.4)
        async with running(source) as updates:
            first = await next_update(updates)
            try:
                await trio.to_thread.run_sync(node1.call, "setnetworkactive", False)
                await wait_until(lambda: not source.healthy, what="the source to notice")
                assert "not connected" in (source.last_error or "")
            finally:
                await trio.to_thread.run_sync(node1.call, "setnetworkactive", True)
            while (update := await next_update(updates)).reason == "refresh":
                pass
            assert update.reason == "recovered"
            assert update.template.prevhash == first.template.prevhash
            assert source.healthy
            assert "not connected" in (source.last_error or ""), "the last error is kept"


async def test_hung_node(healthy_regtest: RegtestNetwork) -> None:
    node1 = healthy_regtest.node1
    async with healthy_regtest.rpc as rpc:
        source = NodeTemplateSource(rpc, poll_interval=0.1, rpc_timeout=0.5, retry_max=0.4)
        async with running(source) as updates:
            first = await next_update(updates)
            node1.pause()
            try:
                await wait_until(lambda: not source.healthy, what="the source to notice")
                assert "within 0.5 s" in (source.last_error or "")
            finally:
                node1.resume()
            update = await next_update(updates)
            assert update.reason == "recovered"
            assert update.template.prevhash == first.template.prevhash


async def test_node_stopped_and_restarted(healthy_regtest: RegtestNetwork) -> None:
    regtest = healthy_regtest
    # Cookie auth: the restart writes a new cookie, which the client must pick up.
    async with NodeRPC(regtest.url_without_auth, cookie_file=regtest.cookie_path) as rpc:
        source = NodeTemplateSource(rpc, poll_interval=0.2, retry_max=0.4)
        async with running(source) as updates:
            first = await next_update(updates)
            cookie = regtest.cookie_path.read_text()
            try:
                await trio.to_thread.run_sync(regtest.stop_node1)
                await wait_until(lambda: not source.healthy, what="the source to notice")
                assert source.last_error
                with pytest.raises(NodeUnreachable):
                    await source.submit_block(b"\x00" * 81)
                # A block found elsewhere while the pool's node is down.
                (mined,) = await trio.to_thread.run_sync(regtest.node2.call, "generatetoaddress", 1, PAYOUT_ADDRESS)
            finally:
                await trio.to_thread.run_sync(regtest.start_node1)
            assert regtest.cookie_path.read_text() != cookie, "a new cookie, read after a 401"
            update = await next_update(updates)
            assert update.reason in ("recovered", "new-block")
            assert source.healthy
            # Node 1 catches up with node 2's block and the source moves to it.
            while update.template.previousblockhash != mined:
                update = await next_update(updates)
            assert update.reason == "new-block"
            assert update.template.prevhash != first.template.prevhash
