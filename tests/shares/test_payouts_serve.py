"""The daily report of a real `stratumkit serve`, mined by real CPU miners: it reconciles with the
share log the process wrote, and a kill -9 and restart on the same data directory give the same
settlement (the report is made from durable files only)."""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import trio

from stratumkit.shares.log import read_records
from stratumkit.shares.payouts import PAYING, day_bounds
from tests.support.miners import ScanningMiner
from tests.support.processes import ServeProcess
from tests.support.waiting import wait_until_async

WORKERS = ("addr.one", "addr.two")
REWARD = 50 * 100_000_000


async def start(nursery: trio.Nursery, data: Path) -> tuple[ServeProcess, str]:
    server = await ServeProcess.start(
        nursery,
        *("--host", "127.0.0.1", "--port", "0", "--api-port", "0", "--data-dir", str(data)),
        *("--start-difficulty", "2e-5", "--min-difficulty", "1e-6", "--max-difficulty", "1e-4"),
        *("--embedded-difficulty", "0.0004", "--pool-fee", "0.02", "--pplns-window", "1.5"),
        *("--log-format", "json"),
        timeout=60,
    )
    return server, f"http://127.0.0.1:{await server.api_port()}"


async def report(url: str, day: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=url) as http:
        response = await http.get("/v1/reports/daily", params={"date": day})
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def test_a_serve_process_report_reconciles_and_survives_kill_9(tmp_path: Path, nursery: trio.Nursery) -> None:
    data = tmp_path / "pool"
    server, url = await start(nursery, data)
    miners = [await ScanningMiner.connect(nursery, server.port, w, one_share_per_job=False) for w in WORKERS]

    async def two_blocks() -> bool:  # that pay: a block racing another on the embedded chain may be refused
        async with httpx.AsyncClient(base_url=url) as http:
            blocks = (await http.get("/v1/blocks")).json()["blocks"]
        return sum(b["status"] in PAYING for b in blocks) >= 2 and all(m.has_accepted() for m in miners)

    await wait_until_async(two_blocks, what="two paying blocks and a share from each miner")
    for miner in miners:
        await miner.quiesce()
    day = datetime.now(UTC).date()
    before = await report(url, day.isoformat())

    records = list(read_records(data / "shares"))
    start_t, end_t = day_bounds(day)
    by_worker: dict[str, list[float]] = defaultdict(list)
    for record in records:
        if start_t <= record.time < end_t:
            by_worker[record.worker].append(record.difficulty)
    assert {w["worker"]: (w["shares"], w["difficulty"]) for w in before["workers"]} == {
        w: (len(v), math.fsum(v)) for w, v in by_worker.items()
    }
    paying = [b for b in before["blocks"] if b["pays"]]
    assert len(paying) >= 2 and before["reward_sats"] == REWARD * len(paying)
    assert before["fee_sats"] == REWARD * 2 // 100 * len(paying)
    assert sum(w["earned_sats"] for w in before["workers"]) + before["fee_sats"] == before["reward_sats"]

    server.process.kill()  # kill -9: the next process reads the same files
    await server.process.wait()
    again, url = await start(nursery, data)
    after = await report(url, day.isoformat())
    assert await again.stop() == 0
    for key in ("shares", "difficulty", "earned_sats", "fee_sats", "reward_sats", "workers"):
        assert after[key] == before[key], key
    assert [b["hash"] for b in after["blocks"]] == [b["hash"] for b in before["blocks"]]
