"""/metrics: the Prometheus page, rendered from pure dicts and served from a pool that is mined."""

from __future__ import annotations

import re

import httpx
import trio

from stratumkit.agent.cpu_miner import CpuMiner
from stratumkit.agent.stratum import StratumClient
from stratumkit.api.metrics import CONTENT_TYPE, render_metrics

from .conftest import TIMEOUT, MakeStack, connect_rig

_SAMPLE = re.compile(r'([a-z_]+)(?:\{((?:[a-z_]+="(?:[^"\\]|\\.)*",?)*)\})? (\S+)')
_LABEL = re.compile(r'([a-z_]+)="((?:[^"\\]|\\.)*)"')


def parse(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Samples of an exposition: (name, labels) -> value; every line must be well formed."""
    assert text.endswith("\n")
    samples = {}
    for line in text.splitlines():
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            continue
        match = _SAMPLE.fullmatch(line)
        assert match is not None, f"malformed line: {line!r}"
        labels = tuple(_LABEL.findall(match[2] or ""))
        samples[(match[1], labels)] = float(match[3])
    return samples


def test_render_metrics_from_snapshots() -> None:
    pool = {
        "accepted": 12,
        "rejected": {"duplicate": 2, 'odd"reason\\\n': 1},
        "blocks": 1,
        "connections": 3,
        "hashrate": 1.5e12,
        "height": 812,
        "uptime": 42.25,
    }
    leases = {
        "rigs": 4,
        "leases_live": 2,
        "divert_latency_s": {"n": 3, "p50": 0.25, "p99": 0.5, "max": 0.5},
        "return_latency_s": None,
    }
    text = render_metrics(pool, leases)
    samples = parse(text)
    assert samples[("stratumkit_shares_accepted_total", ())] == 12
    assert samples[("stratumkit_shares_rejected_total", (("reason", "duplicate"),))] == 2
    assert samples[("stratumkit_shares_rejected_total", (("reason", 'odd\\"reason\\\\\\n'),))] == 1
    assert samples[("stratumkit_blocks_found_total", ())] == 1
    assert samples[("stratumkit_connections", ())] == 3
    assert samples[("stratumkit_hashrate_hashes_per_second", ())] == 1.5e12
    assert samples[("stratumkit_block_height", ())] == 812
    assert samples[("stratumkit_uptime_seconds", ())] == 42.25
    assert samples[("stratumkit_rigs", ())] == 4
    assert samples[("stratumkit_leases_live", ())] == 2
    divert = "stratumkit_lease_divert_latency_seconds"
    assert samples[(divert, (("quantile", "0.5"),))] == 0.25
    assert samples[(divert, (("quantile", "0.99"),))] == 0.5
    assert samples[(divert + "_count", ())] == 3
    assert not any(name.startswith("stratumkit_lease_return") for name, _ in samples)
    assert "# TYPE stratumkit_shares_accepted_total counter" in text
    assert "# TYPE stratumkit_connections gauge" in text
    assert "\nstratumkit_shares_accepted_total 12\n" in text  # integers print without ".0"


def test_render_metrics_before_any_work() -> None:
    samples = parse(render_metrics({"height": None, "rejected": {}}, {}))
    assert samples[("stratumkit_shares_accepted_total", ())] == 0
    assert not any(name == "stratumkit_shares_rejected_total" for name, _ in samples)
    assert not any(name == "stratumkit_block_height" for name, _ in samples)


async def test_metrics_of_a_mined_pool(make_stack: MakeStack, nursery: trio.Nursery) -> None:
    """A real CPU miner finds shares; a stale one is refused; a rig registers and is leased."""
    stack = await make_stack(start_difficulty=1e-5, min_difficulty=1e-6, max_difficulty=1e-5)
    with trio.CancelScope() as mining:
        miner: CpuMiner | None = None

        def on_event(event: object) -> None:
            if miner is not None:
                miner.on_event(event)  # type: ignore[arg-type]

        client = await StratumClient.connect(nursery, "127.0.0.1", stack.stratum_port, on_event=on_event)
        miner = CpuMiner(client, "miner.1")
        subscribed = await client.handshake("miner.1")
        miner.attach(subscribed.extranonce1, subscribed.extranonce2_size)
        async with trio.open_nursery() as mine:
            mine.start_soon(miner.run)
            with trio.fail_after(TIMEOUT):
                while miner.accepted < 2:
                    await trio.sleep(0.01)
            mine.cancel_scope.cancel()
        stale = await client.call(client.conn.submit, "miner.1", "no-such-job", "00000000", "00000000", "00000000")
        assert getattr(stale, "code", None) == 21  # job not found
        await connect_rig(nursery, stack, "rig-a")
        async with httpx.AsyncClient(base_url=stack.url) as http:
            await http.post("/v1/leases", json={"count": 1, "queue": "q", "duration_s": 30})
            response = await http.get("/metrics")
        await client.aclose()
        mining.cancel()

    assert response.status_code == 200
    assert response.headers["content-type"] == CONTENT_TYPE
    samples = parse(response.text)
    stats = stack.pool.stats
    assert stats.accepted >= 2 and stats.rejected
    assert samples[("stratumkit_shares_accepted_total", ())] == stats.accepted
    for reason, count in stats.rejected.items():
        assert samples[("stratumkit_shares_rejected_total", (("reason", reason),))] == count
    assert samples[("stratumkit_blocks_found_total", ())] == stats.blocks
    assert samples[("stratumkit_connections", ())] == 2  # the miner and the rig
    assert samples[("stratumkit_hashrate_hashes_per_second", ())] > 0
    assert samples[("stratumkit_rigs", ())] == 1
    assert samples[("stratumkit_leases_live", ())] == 1
