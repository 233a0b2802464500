"""A probe miner for `stratumkit bench pool`: the submit-to-reply latency one miner sees under load.

Run as its own process (so the load generator's loop does not delay it): it connects, takes work,
then for `seconds` submits one valid share at a time, waits for the verdict, pauses a random
0-20 ms, and repeats. Prints one JSON object: {"n", "p50_ms", "p99_ms"}.
"""

from __future__ import annotations

import json
import random
import sys
import time

import trio

from stratumkit.agent.stratum import StratumClient
from stratumkit.agent.work import MinerJob
from stratumkit.hashing import scan_nonces
from stratumkit.percentile import percentile
from stratumkit.protocol.events import Event, Notify, SetDifficulty


async def probe(port: int, seconds: float) -> dict[str, float]:
    state: dict[str, object] = {}

    def on_event(event: Event) -> None:
        if isinstance(event, SetDifficulty):
            state["difficulty"] = event.difficulty
        elif isinstance(event, Notify):
            state["notify"] = event

    latencies: list[float] = []
    async with trio.open_nursery() as nursery:
        client = await StratumClient.connect(nursery, "127.0.0.1", port, on_event=on_event)
        sub = await client.handshake("bench.probe")
        while "notify" not in state:
            await trio.sleep(0.01)
        notify = state["notify"]
        assert isinstance(notify, Notify)
        job = MinerJob.from_notify(notify, float(state.get("difficulty", 1.0)))  # type: ignore[arg-type]
        extranonce2 = b"\xff\xff\xff\xff"
        header76 = job.header76(bytes.fromhex(sub.extranonce1), extranonce2)
        nonces = iter(scan_nonces(header76, 0, 1 << 24, job.share_target, max_found=100_000))
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            nonce = next(nonces)
            started = time.perf_counter()
            await client.call(
                client.conn.submit, "bench.probe", job.job_id, extranonce2.hex(), f"{job.ntime:08x}", f"{nonce:08x}"
            )
            latencies.append(time.perf_counter() - started)
            await trio.sleep(random.random() * 0.02)
        nursery.cancel_scope.cancel()
    return {
        "n": len(latencies),
        "p50_ms": 1000 * percentile(latencies, 0.5),
        "p99_ms": 1000 * percentile(latencies, 0.99),
    }


if __name__ == "__main__":
    print(json.dumps(trio.run(probe, int(sys.argv[1]), float(sys.argv[2]))), flush=True)
