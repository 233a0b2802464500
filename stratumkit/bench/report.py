"""`stratumkit bench report`: how fast the daily report reads the share log (records/s).

A share log of `records` accepted shares from 100 workers over two UTC days is written to a
temporary directory (no fsync: it measures reading), with a block every 10,000 shares; then the
log is read alone (`read_accepted`) and the report of the second day is made under PPLNS and FPPS,
each timed once. The report reads the whole log on every request, so its time grows with the log.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from datetime import date

import trio

from stratumkit.shares.log import ShareLog, pack_share, read_accepted
from stratumkit.shares.payouts import PaidBlock, PayoutRules, daily_report, day_bounds

DAY = date(2026, 12, 1)
WORKERS = 100
BLOCK_EVERY = 10_000


async def _write(directory: str, records: int, start: float, step: float) -> list[PaidBlock]:
    log = ShareLog(directory, fsync=False)
    blocks = []
    async with trio.open_nursery() as nursery:
        await nursery.start(log.run)
        for i in range(records):
            t = start + i * step
            block = i % BLOCK_EVERY == BLOCK_EVERY - 1
            difficulty = 0.5 + (i % 7) * 0.25
            log.append(
                pack_share(t, f"addr.w{i % WORKERS}", "1", b"\0" * 4, b"\0" * 4, 0, i, 0, difficulty, b"\0" * 32, block)
            )
            if block:
                blocks.append(PaidBlock(f"{i:064x}", t, "confirmed", 312_500_000, 2_000.0))
            if i % 10_000 == 0:
                log.sync_now()
        log.sync_now()
        nursery.cancel_scope.cancel()
    return blocks


def run(records: int, as_json: bool) -> None:
    if records < BLOCK_EVERY:
        print(f"stratumkit bench report: --records must be at least {BLOCK_EVERY}, got {records}", file=sys.stderr)
        raise SystemExit(2)
    start = day_bounds(DAY)[0]
    with tempfile.TemporaryDirectory(prefix="stratumkit-bench-report-") as directory:
        blocks = trio.run(_write, directory, records, start - 86400, 2 * 86400 / records)
        figures: dict[str, float] = {"records": records}
        t0 = time.perf_counter()
        count = sum(1 for _ in read_accepted(directory))
        figures["read_records_per_s"] = count / (time.perf_counter() - t0)
        for scheme in ("pplns", "fpps"):
            rules = PayoutRules(scheme=scheme, pool_fee=0.01, fpps_reward_sats=312_500_000, fpps_network_difficulty=2e3)
            t0 = time.perf_counter()
            daily_report(read_accepted(directory), blocks, DAY, rules)
            elapsed = time.perf_counter() - t0
            figures[f"{scheme}_seconds"] = elapsed
            figures[f"{scheme}_records_per_s"] = records / elapsed
    if as_json:
        print(json.dumps(figures, indent=2))
        return
    print(f"share log: {records} records, {WORKERS} workers, {len(blocks)} blocks, two UTC days")
    print(f"read alone:   {figures['read_records_per_s']:,.0f} records/s")
    for scheme in ("pplns", "fpps"):
        seconds, rate = figures[f"{scheme}_seconds"], figures[f"{scheme}_records_per_s"]
        print(f"report {scheme}: {seconds:.2f} s, {rate:,.0f} records/s")
