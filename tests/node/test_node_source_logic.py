"""NodeTemplateSource's decisions, run against an in-memory node on trio's autojump clock:
backoff, quiet fallback from longpoll, templates that do not parse, a longpoll answer racing the
poller, and how node answers map to submit_block and block_status results. The same behaviours
against the real node are in test_node_source.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
from structlog.testing import capture_logs

from stratumkit.jobs.node import NodeTemplateSource
from stratumkit.jobs.rpc import NodeTimeout, NodeUnreachable, RPCError
from stratumkit.jobs.sources import SourceUnavailable, TemplateUpdate

Updates = trio.MemoryReceiveChannel[TemplateUpdate]


class MemoryNode:
    """Answers the calls the source makes the way bitcoind does, from a tip the test moves."""

    url = "http://memory-node/"

    def __init__(self) -> None:
        self.height = 100
        self.tip = self._hash(self.height)
        self.fault: Exception | None = None  # raised by every call while set
        self.longpoll_fault: Exception | None = None
        self.template_override: Any = None
        self.answers: dict[str, Any] = {}  # method -> answer (an Exception is raised)
        self.calls: list[str] = []
        self.longpoll_gate: trio.Event | None = None  # hold longpoll answers until set
        self.template_gate: trio.Event | None = None  # hold other getblocktemplate answers
        self._tip_moved = trio.Event()

    @staticmethod
    def _hash(height: int) -> str:
        return f"{height:064x}"

    def mine(self) -> None:
        self.height += 1
        self.tip = self._hash(self.height)
        self._tip_moved.set()
        self._tip_moved = trio.Event()

    def gbt(self) -> Any:
        if self.template_override is not None:
            return self.template_override
        return {
            "version": 0x20000000,
            "previousblockhash": self.tip,
            "transactions": [],
            "coinbasevalue": 50_0000_0000,
            "curtime": 1_700_000_000,
            "mintime": 1_700_000_000,
            "bits": "207fffff",
            "height": self.height + 1,
            "longpollid": f"{self.tip}{self.height}",
        }

    async def call(self, method: str, *params: Any, timeout: float | None = None) -> Any:
        self.calls.append(method)
        await trio.lowlevel.checkpoint()
        if self.fault is not None:
            raise self.fault
        if method in self.answers:
            answer = self.answers[method]
            if isinstance(answer, Exception):
                raise answer
            return answer
        if method == "getbestblockhash":
            return self.tip
        if method == "getblocktemplate" and "longpollid" in params[0]:
            if self.longpoll_fault is not None:
                raise self.longpoll_fault
            with trio.move_on_after(timeout or 300):
                while params[0]["longpollid"] == self.gbt()["longpollid"]:
                    await self._tip_moved.wait()
                if self.longpoll_gate is not None:
                    await self.longpoll_gate.wait()
                return self.gbt()
            raise NodeTimeout(f"no answer within {timeout} s")
        if method == "getblocktemplate":
            if self.template_gate is not None:
                await self.template_gate.wait()
            return self.gbt()
        raise RPCError(-32601, "Method not found", method)


@asynccontextmanager
async def running(source: NodeTemplateSource) -> AsyncIterator[Updates]:
    send, receive = trio.open_memory_channel[TemplateUpdate](100)
    async with trio.open_nursery() as nursery:
        await nursery.start(source.run, send)
        yield receive
        nursery.cancel_scope.cancel()


def drain(updates: Updates) -> list[str]:
    reasons = []
    while True:
        try:
            reasons.append(updates.receive_nowait().reason)
        except trio.WouldBlock:
            return reasons


async def test_backoff_and_one_warning_per_fault(autojump_clock: trio.abc.Clock) -> None:
    node = MemoryNode()
    node.fault = NodeUnreachable("connection refused by http://memory-node/")
    source = NodeTemplateSource(node, poll_interval=1, retry_max=8, longpoll=False)
    with capture_logs() as logs:
        async with running(source) as updates:
            await trio.sleep(60)
            # 0, 1, 3, 7, 15, 23, ... : doubling up to retry_max, not one call per poll.
            assert 8 <= len(node.calls) <= 10
            assert drain(updates) == []
            assert not source.healthy and source.unhealthy_since is not None
            node.fault = None
            await trio.sleep(8)
            assert drain(updates) == ["initial"]
            assert source.healthy and source.unhealthy_since is None
    assert [e["event"] for e in logs if e["log_level"] == "warning"] == ["node unavailable, retrying"]


async def test_error_change_is_logged_and_tip_move_reported(autojump_clock: trio.abc.Clock) -> None:
    node = MemoryNode()
    source = NodeTemplateSource(node, poll_interval=1, longpoll=False)
    with capture_logs() as logs:
        async with running(source) as updates:
            assert drain(updates) == ["initial"]
            node.fault = NodeUnreachable("connection refused")
            await trio.sleep(3)
            node.fault = RPCError(-28, "Loading block index...", "getblocktemplate")
            await trio.sleep(10)
            assert source.last_error == "getblocktemplate: node error -28: Loading block index..."
            node.fault = None
            node.mine()  # the tip moved while the node was away
            await trio.sleep(10)
            assert drain(updates) == ["new-block"]
    warnings = [e["error"] for e in logs if e["log_level"] == "warning"]
    assert warnings == ["connection refused", source.last_error]


async def test_unusable_template(autojump_clock: trio.abc.Clock) -> None:
    node = MemoryNode()
    node.template_override = {"previousblockhash": "zz"}
    source = NodeTemplateSource(node, poll_interval=1, longpoll=False)
    async with running(source) as updates:
        assert not source.healthy
        assert "not a usable template" in (source.last_error or "")
        node.template_override = None
        await trio.sleep(5)
        assert drain(updates) == ["initial"]


async def test_longpoll_unsupported_falls_back_quietly(autojump_clock: trio.abc.Clock) -> None:
    node = MemoryNode()
    node.longpoll_fault = RPCError(-8, "Invalid parameter", "getblocktemplate")
    source = NodeTemplateSource(node, poll_interval=1, refresh_interval=1000)
    with capture_logs() as logs:
        async with running(source) as updates:
            node.mine()
            await trio.sleep(1.5)
            assert drain(updates) == ["initial", "new-block"]
            assert not source.longpoll_active and source.healthy
    assert [e for e in logs if e["log_level"] in ("warning", "error")] == []


async def test_longpoll_wins_the_race(autojump_clock: trio.abc.Clock) -> None:
    node = MemoryNode()
    source = NodeTemplateSource(node, poll_interval=100, refresh_interval=1000)
    async with running(source) as updates:
        await trio.sleep(1)
        node.mine()
        await trio.sleep(0.01)  # long before the next poll
        assert drain(updates) == ["initial", "new-block"]
        assert source.longpoll_active
        assert node.calls.count("getbestblockhash") == 0


async def test_longpoll_answer_already_handled_by_the_poller(
    autojump_clock: trio.abc.Clock,
) -> None:
    node = MemoryNode()
    node.longpoll_gate = trio.Event()  # the longpoll answer comes late
    source = NodeTemplateSource(node, poll_interval=1, refresh_interval=1000)
    async with running(source) as updates:
        node.mine()
        await trio.sleep(1.5)
        assert drain(updates) == ["initial", "new-block"]  # from the poller
        node.longpoll_gate.set()
        await trio.sleep(5)
        assert drain(updates) == []  # the same block is not pushed again


async def test_poller_answer_already_pushed_by_the_longpoll(
    autojump_clock: trio.abc.Clock,
) -> None:
    node = MemoryNode()
    source = NodeTemplateSource(node, poll_interval=1, refresh_interval=1000)
    async with running(source) as updates:
        node.longpoll_gate, node.template_gate = trio.Event(), trio.Event()
        node.mine()
        await trio.sleep(1.5)  # the poller saw the new tip; its getblocktemplate is out
        node.longpoll_gate.set()
        await trio.sleep(0.1)
        assert drain(updates) == ["initial", "new-block"]  # from the longpoll
        node.template_gate.set()
        await trio.sleep(5)
        assert drain(updates) == []  # the poller's copy of the same block is not pushed


async def test_refresh_and_longpoll_timeout(autojump_clock: trio.abc.Clock) -> None:
    node = MemoryNode()
    source = NodeTemplateSource(node, poll_interval=1, refresh_interval=10, longpoll_timeout=4)
    async with running(source) as updates:
        await trio.sleep(25)
        assert drain(updates) == ["initial", "refresh", "refresh"]
        assert source.healthy  # a longpoll held past its timeout is asked again, not a fault
        assert node.calls.count("getblocktemplate") >= 3 + 5


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (None, None),
        ("duplicate", "duplicate"),
        ("high-hash", "high-hash"),
        (RPCError(-22, "Block decode failed", "submitblock"), "rejected: Block decode failed"),
        ({"odd": 1}, "rejected: unexpected submitblock answer {'odd': 1}"),
    ],
)
async def test_submit_block_answers(answer: object, expected: str | None) -> None:
    node = MemoryNode()
    node.answers["submitblock"] = answer
    source = NodeTemplateSource(node)
    assert await source.submit_block(b"\x01\x02") == expected


@pytest.mark.parametrize(
    "fault",
    [RPCError(-28, "Loading block index...", "submitblock"), NodeUnreachable("connection refused")],
)
async def test_submit_block_retryable(fault: Exception) -> None:
    node = MemoryNode()
    node.answers["submitblock"] = fault
    with pytest.raises(SourceUnavailable):
        await NodeTemplateSource(node).submit_block(b"\x01")


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ({"confirmations": 3}, "in-chain"),
        ({"confirmations": 1}, "in-chain"),
        ({"confirmations": -1}, "orphaned"),  # known, but off the best chain
        (RPCError(-5, "Block not found", "getblockheader"), "unknown"),
    ],
)
async def test_block_status(answer: object, expected: str) -> None:
    node = MemoryNode()
    node.answers["getblockheader"] = answer
    assert await NodeTemplateSource(node).block_status("ab" * 32) == expected


async def test_block_status_node_not_ready() -> None:
    node = MemoryNode()
    node.answers["getblockheader"] = RPCError(-28, "Loading block index...", "getblockheader")
    with pytest.raises(SourceUnavailable, match="-28"):
        await NodeTemplateSource(node).block_status("ab" * 32)


def test_bad_intervals() -> None:
    with pytest.raises(ValueError, match="poll_interval"):
        NodeTemplateSource(MemoryNode(), poll_interval=0)
