"""Share history and block rounds across restarts of a real `stratumkit serve`: a clean stop
(SIGTERM: the history is flushed), then a kill -9 (nothing flushed since the start), and the
third process's `/v1/history`, `/v1/blocks` and `/v1/stats` checked against the durable record
read straight from the data directory (the share log and the block ledger)."""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from stratumkit.chain.block import HEADER_SIZE, BlockHeader
from stratumkit.chain.targets import network_difficulty
from stratumkit.protocol.events import SubmitResult
from stratumkit.shares.log import ShareRecord, read_records
from tests.support.miners import ScanningMiner
from tests.support.processes import ServeProcess
from tests.support.waiting import wait_until_async

pytestmark = pytest.mark.slow

WORKERS = ("addr.one", "addr.two")


def flags(data: Path) -> tuple[str, ...]:
    return (
        "--host", "127.0.0.1", "--port", "0", "--api-port", "0", "--data-dir", str(data),
        "--log-format", "json", "--embedded-difficulty", "0.0004",
        "--start-difficulty", "2e-5", "--min-difficulty", "1e-6", "--max-difficulty", "2e-5",
    )  # fmt: skip


async def get(api: int, path: str, **params: Any) -> Any:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{api}") as http:
        response = await http.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.json()


async def mine_blocks(nursery: trio.Nursery, server: ServeProcess, api: int, blocks: int) -> list[ScanningMiner]:
    """Both workers mine until the ledger holds `blocks` blocks and each has a share accepted,
    then stop and get every answer."""
    miners = [await ScanningMiner.connect(nursery, server.port, w, one_share_per_job=False) for w in WORKERS]

    async def enough() -> bool:
        found = len((await get(api, "/v1/blocks"))["blocks"]) >= blocks
        return found and all(m.has_accepted() for m in miners)

    await wait_until_async(enough, what=f"{blocks} blocks found and a share accepted from each worker")
    for miner in miners:
        await miner.quiesce()
    return miners


def durable_rounds(data: Path, records: list[ShareRecord]) -> dict[str, tuple[float, int]]:
    """Each block's round from the durable record alone: the accepted shares timed after the
    previous block's found_at and not after its own -> (effort, shares)."""
    with sqlite3.connect(data / "blocks.sqlite") as db:
        blocks = db.execute("SELECT hash, found_at, substr(block, 1, ?) FROM blocks ORDER BY found_at", (HEADER_SIZE,))
        rows = blocks.fetchall()
    out = {}
    previous = -math.inf
    for block_hash, found_at, head in rows:
        inside = [r for r in records if previous < r.time <= found_at]
        difficulty = network_difficulty(BlockHeader.parse(bytes(head)).nbits)
        out[block_hash] = (sum(r.difficulty for r in inside) / difficulty, len(inside))
        previous = found_at
    return out


async def test_history_and_rounds_survive_a_clean_stop_and_a_kill_9(tmp_path: Path) -> None:
    data = tmp_path / "pool"
    # 1: mine, one refused share, then a clean stop
    async with trio.open_nursery() as run:
        server = await ServeProcess.start(run, *flags(data))
        api = await server.api_port()
        miners = await mine_blocks(run, server, api, 2)
        refused = await miners[0].client.call(
            miners[0].client.conn.submit, WORKERS[0], "no-such-job", "00000000", "00000000", "00000000"
        )
        assert isinstance(refused, SubmitResult) and refused.code == 21
        first = await get(api, "/v1/stats")
        assert await server.stop() == 0
        run.cancel_scope.cancel()
    rejected = sum(first["pool"]["rejected"].values())
    assert rejected >= 1  # ours, and any share that raced a new block (stale)

    # 2: the stats are back from the durable record; mine more, then kill -9 (nothing flushed)
    async with trio.open_nursery() as run:
        server = await ServeProcess.start(run, *flags(data))
        api = await server.api_port()
        second = await get(api, "/v1/stats")
        assert not server.find_events("share history rebuilt from the share log")  # all flushed at the stop
        for worker in WORKERS:
            was, now = first["pool"]["workers"][worker], second["pool"]["workers"][worker]
            assert (now["accepted"], now["rejected"], now["blocks"]) == (
                was["accepted"],
                was["rejected"],
                was["blocks"],
            )
            assert now["hashrate"] > 0  # the last ten minutes come back from the minute buckets
        assert second["pool"]["rejected"] == first["pool"]["rejected"]
        blocks_before = len(first["pool"]["blocks_found"])
        await mine_blocks(run, server, api, blocks_before + 2)
        server.process.kill()
        await server.wait_exit()
        run.cancel_scope.cancel()

    # 3: everything durable is counted once, and every round is what the durable record says
    records = list(read_records(data / "shares"))
    expected = durable_rounds(data, records)
    async with trio.open_nursery() as run:
        server = await ServeProcess.start(run, *flags(data))
        api = await server.api_port()
        await server.wait_event("share history rebuilt from the share log")
        page = await get(api, "/v1/blocks", limit=500)
        history = await get(api, "/v1/history", bucket="hour", since=0)
        minutes = await get(api, "/v1/history", bucket="minute", since=0, worker=WORKERS[1])
        third = await get(api, "/v1/stats")
        run.cancel_scope.cancel()

    assert len(page["blocks"]) == len(expected) >= blocks_before + 2
    for block in page["blocks"]:
        effort, shares = expected[block["hash"]]
        assert block["round_shares"] == shares
        assert block["effort"] == pytest.approx(effort, rel=1e-9)
    assert page["summary"]["7d"]["blocks"] == len(expected)
    assert sum(p["accepted"] for p in history["series"]["pool"]) == len(records)
    assert sum(p["rejected"] for p in history["series"]["pool"]) == rejected  # flushed by the clean stop
    for worker in WORKERS:
        mine = [r for r in records if r.worker == worker]
        assert sum(p["accepted"] for p in history["series"][worker]) == len(mine)
        assert third["pool"]["workers"][worker]["accepted"] == len(mine)
    assert sum(p["accepted"] for p in minutes["series"][WORKERS[1]]) == sum(
        1 for r in records if r.worker == WORKERS[1]
    )
    assert set(minutes["series"]) == {"pool", WORKERS[1]}
