"""/v1/reports/daily and `stratumkit report daily` against a real pool mined by real CPU miners:
the report reconciles with the share log the pool wrote, read back independently."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import httpx
import trio

from stratumkit.shares.log import read_records
from stratumkit.shares.payouts import day_bounds
from tests.support.miners import ScanningMiner
from tests.support.waiting import wait_until

from .conftest import MakeStack, Stack
from .test_cli import run

WORKERS = ("addr.one", "addr.two")
REWARD = 50 * 100_000_000  # the embedded chain's subsidy, no fees


def difficulties(stack: Stack) -> set[float]:
    return {r.difficulty for r in read_records(stack.pool.share_log.directory)}


async def mined(make_stack: MakeStack, nursery: trio.Nursery, blocks: int, **config: object) -> Stack:
    """A pool mined until it found `blocks` and logged shares of more than one difficulty (vardiff
    is free between 1e-6 and 1e-4, and the CPU miners are far faster than its target)."""
    stack = await make_stack(
        start_difficulty=2e-5, min_difficulty=1e-6, max_difficulty=1e-4, embedded_difficulty=0.0004, **config
    )
    miners = [await ScanningMiner.connect(nursery, stack.stratum_port, w, one_share_per_job=False) for w in WORKERS]
    await wait_until(
        lambda: (
            stack.pool.ledger.count() >= blocks
            and all(m.has_accepted() for m in miners)
            and len(difficulties(stack)) > 1
        ),
        what=f"{blocks} blocks, a share accepted from each miner, shares of two difficulties",
    )
    for miner in miners:
        await miner.quiesce()
    await stack.pool.share_log.synced()
    return stack


async def test_pplns_report_reconciles_with_the_share_log_and_the_blocks(
    make_stack: MakeStack, nursery: trio.Nursery
) -> None:
    stack = await mined(make_stack, nursery, 3, pool_fee=0.01, pplns_window=2.0)
    records = list(read_records(stack.pool.share_log.directory))
    day = datetime.fromtimestamp(records[-1].time, UTC).date()
    start, end = day_bounds(day)
    async with httpx.AsyncClient(base_url=stack.url) as http:
        response = await http.get("/v1/reports/daily", params={"date": day.isoformat()})
    assert response.status_code == 200, response.text
    report = response.json()

    by_worker: dict[str, list[float]] = defaultdict(list)
    for record in records:
        if start <= record.time < end:
            by_worker[record.worker].append(record.difficulty)
    assert len({d for values in by_worker.values() for d in values}) > 1  # vardiff moved
    rows = {w["worker"]: w for w in report["workers"]}
    assert {w: (r["shares"], r["difficulty"]) for w, r in rows.items()} == {
        w: (len(v), math.fsum(v)) for w, v in by_worker.items()
    }
    assert report["shares"] == sum(len(v) for v in by_worker.values())
    assert report["difficulty"] == math.fsum(d for values in by_worker.values() for d in values)

    found = [b for b in stack.pool.ledger.list() if start <= b.found_at < end]
    paying = [b for b in found if b.status not in ("rejected", "orphaned")]
    assert {b["hash"] for b in report["blocks"]} == {b.hash for b in found}
    assert report["reward_sats"] == REWARD * len(paying)
    assert report["fee_sats"] == REWARD // 100 * len(paying)
    assert report["earned_sats"] + report["fee_sats"] == report["reward_sats"]
    assert sum(r["earned_sats"] for r in rows.values()) == report["earned_sats"]
    assert any(row["pays"] for row in report["blocks"])
    for row in report["blocks"]:
        if not row["pays"]:  # a block the chain refused (three found at one height race) pays nobody
            assert (row["window_difficulty"], row["paid_sats"]) == (0.0, 0), row
            continue
        before = math.fsum(r.difficulty for r in records if r.time <= row["found_at"])
        window = min(2.0 * row["network_difficulty"], before)
        assert math.isclose(row["window_difficulty"], window, rel_tol=1e-9)
        assert row["paid_sats"] == REWARD - REWARD // 100


#: Prices in the [power] table: the report prices FPPS at this hashprice (free power: the policy mines).
PRICES = {"power_usd_per_kwh": 0.0, "hashprice_usd_per_th_day": 0.05, "gpu_usd_per_hour": 0.3}


async def test_fpps_report_and_bad_queries(make_stack: MakeStack, nursery: trio.Nursery) -> None:
    stack = await mined(make_stack, nursery, 1, payout_scheme="fpps", pool_fee=0.02, power=PRICES)
    day = datetime.now(UTC).date()
    async with httpx.AsyncClient(base_url=stack.url) as http:
        report = (await http.get("/v1/reports/daily", params={"date": day.isoformat()})).json()
        for bad in ("2026-13-01", "20261201", "yesterday"):
            refused = await http.get("/v1/reports/daily", params={"date": bad})
            assert refused.status_code == 400 and "YYYY-MM-DD" in refused.json()["error"], bad
        default = (await http.get("/v1/reports/daily")).json()
    assert report["scheme"] == "fpps" and report["fpps_rate"]["reward_sats"] == REWARD
    rate = report["fpps_rate"]
    for row in report["workers"]:
        expected = row["difficulty"] * REWARD * 0.98 / rate["network_difficulty"]
        assert abs(row["earned_sats"] - expected) <= 1
        # and in USD: its hashes at the hashprice, less the fee
        assert row["hashes"] == row["difficulty"] * 2**32
        assert math.isclose(row["earned_usd"], row["hashes"] * 0.05 / (1e12 * 86_400) * 0.98, rel_tol=1e-12)
    assert report["earned_sats"] + report["fee_sats"] == report["reward_sats"]
    assert report["hashprice_usd_per_th_day"] == 0.05
    assert math.isclose(report["earned_usd"], sum(w["earned_usd"] for w in report["workers"]), rel_tol=1e-12)
    assert default["date"] == (day - timedelta(days=1)).isoformat()
    table = await run("report", "daily", "--date", day.isoformat(), api=stack.url)
    lines = table.stdout.decode().splitlines()
    assert lines[1].split() == ["WORKER", "SHARES", "DIFFICULTY", "EARNED", "BALANCE", "USD"]
    assert lines[-1].endswith("USD at 0.05 USD/TH/day") and "sats" in lines[-1]


async def test_only_the_operator_reads_the_report(make_stack: MakeStack) -> None:
    stack = await make_stack(api_token="admin", integrator_tokens={"acme": "acme-token"})
    async with httpx.AsyncClient(base_url=stack.url) as http:
        acme = await http.get("/v1/reports/daily", headers={"authorization": "Bearer acme-token"})
        admin = await http.get("/v1/reports/daily", headers={"authorization": "Bearer admin"})
    assert acme.status_code == 403 and "operator" in acme.json()["error"]
    assert admin.status_code == 200 and admin.json()["workers"] == []


async def test_report_daily_command(make_stack: MakeStack, nursery: trio.Nursery) -> None:
    stack = await mined(make_stack, nursery, 1)
    day = datetime.now(UTC).date().isoformat()
    table = await run("report", "daily", "--date", day, api=stack.url)
    as_json = await run("report", "daily", "--date", day, "--json", api=stack.url)
    bad = await run("report", "daily", "--date", "2026-02-30", api=stack.url)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.decode().splitlines()
    assert lines[0].startswith(f"{day} (UTC) pplns window 2x fee 0:")
    assert lines[1].split() == ["WORKER", "SHARES", "DIFFICULTY", "EARNED", "BALANCE"]
    assert {line.split()[0] for line in lines[2:4]} == set(WORKERS)
    report = json.loads(as_json.stdout)
    assert lines[-1] == f"earned {report['earned_sats']} sats, pool fee {report['fee_sats']} sats"
    assert bad.returncode == 2 and "not a UTC day: '2026-02-30'" in bad.stderr.decode()
