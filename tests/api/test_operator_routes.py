"""/v1/blocks, /v1/history and the operator's /metrics families, against a real pool mined by
real CPU miners; the exposition is read with prometheus_client's own text parser."""

from __future__ import annotations

import itertools
from typing import Any

import httpx
import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families

from stratumkit.api.metrics import OTHER_WORKERS, render_operator_metrics
from tests.support.miners import ScanningMiner
from tests.support.waiting import wait_until

from .conftest import MakeStack, Stack, connect_rig

WORKERS = ("addr.one", "addr.two")
STATUSES = {"submitted", "confirmed", "orphaned", "rejected"}


async def mined_stack(make_stack: MakeStack, nursery: trio.Nursery, blocks: int) -> Stack:
    stack = await make_stack(
        start_difficulty=2e-5, min_difficulty=1e-6, max_difficulty=2e-5, embedded_difficulty=0.0004
    )
    miners = [await ScanningMiner.connect(nursery, stack.stratum_port, w, one_share_per_job=False) for w in WORKERS]
    await wait_until(
        lambda: stack.pool.ledger.count() >= blocks and all(m.has_accepted() for m in miners),
        what=f"{blocks} blocks and a share accepted from each miner",
    )
    for miner in miners:
        await miner.quiesce()
    return stack


async def get(http: httpx.AsyncClient, path: str, **params: Any) -> Any:
    response = await http.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.json()


async def test_blocks_pages_newest_first_with_effort_and_summaries(
    make_stack: MakeStack, nursery: trio.Nursery
) -> None:
    stack = await mined_stack(make_stack, nursery, 3)
    ledger = {b.hash for b in stack.pool.ledger.list()}
    async with httpx.AsyncClient(base_url=stack.url) as http:
        first = await get(http, "/v1/blocks", limit=2)
        assert len(first["blocks"]) == 2 and first["next"] is not None
        shown = list(first["blocks"])
        page = first
        while page["next"] is not None:
            page = await get(http, "/v1/blocks", limit=2, before=page["next"])
            shown += page["blocks"]
        await stack.pool.history.flush()  # the rounds now come from the store: the same answer
        again = await get(http, "/v1/blocks", limit=500)
    assert [b["hash"] for b in shown] == [b["hash"] for b in again["blocks"]]
    assert {b["hash"] for b in shown} == ledger
    times = [b["time"] for b in shown]
    assert times == sorted(times, reverse=True)
    for block in shown:
        assert block["status"] in STATUSES
        assert block["worker"] in WORKERS
        assert block["reward_sats"] == 50 * 100_000_000  # the embedded chain's subsidy, no fees
        assert block["network_difficulty"] == pytest.approx(0.0004, rel=1e-3)
        assert block["effort"] == pytest.approx(block["round_shares"] * 2e-5 / block["network_difficulty"])
    assert [b["effort"] for b in again["blocks"]] == pytest.approx([b["effort"] for b in shown])
    assert sum(b["round_shares"] for b in shown) <= stack.pool.stats.accepted
    assert again["summary"]["7d"]["blocks"] == again["summary"]["30d"]["blocks"] == len(ledger)
    efforts = [b["effort"] for b in shown if b["status"] != "rejected"]
    assert again["summary"]["7d"]["average_effort"] == pytest.approx(sum(efforts) / len(efforts))


async def test_history_series_for_the_pool_and_its_workers(make_stack: MakeStack, nursery: trio.Nursery) -> None:
    stack = await mined_stack(make_stack, nursery, 1)
    accepted = stack.pool.stats.accepted
    by_worker = {w: stack.pool.stats.workers[w].accepted for w in WORKERS}
    async with httpx.AsyncClient(base_url=stack.url) as http:
        live = await get(http, "/v1/history")
        await stack.pool.history.flush()
        stored = await get(http, "/v1/history")
        hours = await get(http, "/v1/history", bucket="hour", since=0)
        one = await get(http, "/v1/history", worker=WORKERS[1])
        top = await get(http, "/v1/history", top=1)
    for answer in (live, stored, hours):
        assert set(answer["series"]) == {"pool", *WORKERS}
        assert sum(p["accepted"] for p in answer["series"]["pool"]) == accepted
        for worker in WORKERS:
            assert sum(p["accepted"] for p in answer["series"][worker]) == by_worker[worker]
    assert live["bucket"] == "minute" and hours["bucket"] == "hour"
    points = stored["series"]["pool"]
    assert all(set(p) == {"t", "hashrate", "accepted", "rejected"} for p in points)
    assert all(isinstance(p["t"], int) and p["t"] % 60 == 0 for p in points)
    assert [b["t"] - a["t"] for a, b in itertools.pairwise(points)] == [60] * (len(points) - 1)
    assert all((p["hashrate"] > 0) == (p["accepted"] > 0) for p in points)  # a new minute may be empty
    assert set(one["series"]) == {"pool", WORKERS[1]}
    assert len(top["series"]) == 2


async def test_history_and_blocks_refuse_bad_queries(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.url) as http:
        for path, params in [
            ("/v1/history", {"bucket": "day"}),
            ("/v1/history", {"since": "yesterday"}),
            ("/v1/history", {"since": "nan"}),
            ("/v1/history", {"top": "1000"}),
            ("/v1/history", {"color": "red"}),
            ("/v1/blocks", {"limit": "0"}),
            ("/v1/blocks", {"before": "not-a-cursor"}),
        ]:
            response = await http.get(path, params=params)
            assert response.status_code == 400, (path, params, response.text)
            assert "error" in response.json()
        empty = await get(http, "/v1/blocks")
    assert empty["blocks"] == [] and empty["next"] is None
    assert empty["summary"]["7d"] == {"blocks": 0, "confirmed": 0, "average_effort": None}


async def test_operator_metrics_parse_with_prometheus_client(make_stack: MakeStack, nursery: trio.Nursery) -> None:
    stack = await mined_stack(make_stack, nursery, 1)
    await connect_rig(nursery, stack, "rig-a")
    async with httpx.AsyncClient(base_url=stack.url) as http:
        created = await http.post("/v1/leases", json={"count": 1, "queue": "embed", "duration_s": 60})
        assert created.status_code == 201
        queued = await http.post("/v1/queues/embed/jobs", json={"jobs": [{"payload": {"n": 1}}, {"payload": {"n": 2}}]})
        assert queued.status_code == 201
        text = (await http.get("/metrics")).text
    families = {f.name: f for f in text_string_to_metric_families(text)}

    def value(family: str, sample: str | None = None, **labels: str) -> float:
        found = [
            s.value
            for s in families[family].samples
            if s.name == (sample or family) and all(s.labels.get(k) == v for k, v in labels.items())
        ]
        assert len(found) == 1, (family, labels, families[family].samples)
        return found[0]

    stats = stack.pool.stats
    assert families["stratumkit_worker_hashrate_hashes_per_second"].type == "gauge"
    for worker in WORKERS:
        assert value("stratumkit_worker_hashrate_hashes_per_second", worker=worker) > 0
        shares = "stratumkit_worker_shares_accepted"  # the parser drops a counter's _total
        assert value(shares, shares + "_total", worker=worker) == stats.workers[worker].accepted
    assert value("stratumkit_node_up", source="embedded") == 1
    assert 0 <= value("stratumkit_template_age_seconds") < 60
    assert value("stratumkit_network_difficulty") == pytest.approx(0.0004, rel=1e-3)
    assert value("stratumkit_network_height") == stack.pool.registry.current.template.height  # type: ignore[union-attr]
    assert value("stratumkit_queue_jobs", queue="embed", state="ready") == 2
    sync = "stratumkit_share_log_sync_seconds"
    assert families[sync].type == "histogram"
    assert value(sync, sync + "_count") == stack.pool.share_log.batches > 0
    assert value(sync, sync + "_bucket", le="+Inf") == stack.pool.share_log.batches
    assert value("stratumkit_connections_by_state", state="authorized", transport="tcp") == 3  # two miners, a rig
    assert value("stratumkit_rigs_by_mode", mode="diverted") == 1


def test_worker_labels_are_capped_and_the_rest_summed() -> None:
    workers = {f"w{i:02d}": {"hashrate": float(i), "accepted": 1, "rejected": {"duplicate": 1}} for i in range(60)}
    text = render_operator_metrics({"workers": workers}, worker_labels=50)
    families = {f.name: f for f in text_string_to_metric_families(text)}
    rates = {s.labels["worker"]: s.value for s in families["stratumkit_worker_hashrate_hashes_per_second"].samples}
    assert len(rates) == 51
    assert rates[OTHER_WORKERS] == sum(range(10))  # the ten slowest
    assert "w09" not in rates and rates["w59"] == 59
    accepted = {s.labels["worker"]: s.value for s in families["stratumkit_worker_shares_accepted"].samples}
    assert accepted[OTHER_WORKERS] == 10
    rejected = {s.labels["worker"]: s.value for s in families["stratumkit_worker_shares_rejected"].samples}
    assert rejected[OTHER_WORKERS] == 10 and rejected["w59"] == 1
