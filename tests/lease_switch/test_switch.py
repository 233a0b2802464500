"""Leases end to end in one process: rigs switch from hashing to a queue and back over stratum."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import trio

from stratumkit.inference.backend import InferenceBackend
from stratumkit.lease.service import RequestError
from stratumkit.protocol.events import Event, ExtensionNotification, Notify, SetDifficulty
from tests.support.miners import Miner
from tests.support.waiting import wait_until

from .conftest import EMBED, open_site


async def test_rigs_register_and_mine_and_plain_miners_are_never_leased(tmp_path: Path) -> None:
    async with open_site(tmp_path) as site:
        plain = await Miner.connect(site.nursery, site.pool.port, "plain.1")
        rig = await site.add_rig("rig-a")
        await wait_until(lambda: rig.agent.miner is not None and rig.agent.miner.accepted > 0)
        assert [r["rig_id"] for r in site.leases.rigs()] == ["rig-a"]
        with pytest.raises(RequestError, match="idle rig"):
            await site.leases.create_lease({"count": 2, "queue": "q", "duration_s": 5})
        lease = await site.leases.create_lease({"count": 1, "queue": "q", "duration_s": 5})
        await wait_until(lambda: rig.agent.mode == "serving")
        assert site.leases.lease_view(lease["lease_id"])["state"] == "serving"
        assert not any(isinstance(e, ExtensionNotification) for e in plain.events)  # the plain miner saw nothing


async def test_selector_refuses_rigs_that_do_not_match(tmp_path: Path) -> None:
    async with open_site(tmp_path) as site:
        await site.add_rig("small", gpu="RTX 3060", vram=12288)
        for body, message in [
            ({"count": 1, "queue": "q", "duration_s": 5, "gpu_model": "H100"}, "idle rig"),
            ({"count": 1, "queue": "q", "duration_s": 5, "min_vram_mb": 20000}, "idle rig"),
            ({"count": 1, "queue": "q", "duration_s": 5, "model": "llama-70b"}, "idle rig"),
            ({"count": 1, "queue": "q"}, "missing field: duration_s"),
            ({"count": 0, "queue": "q", "duration_s": 5}, "count"),
            ({"count": 1, "queue": "q", "duration_s": -1}, "duration_s"),
            ({"count": 1, "queue": "q", "duration_s": 5, "colour": "red"}, "unknown field"),
        ]:
            with pytest.raises(RequestError, match=message):
                await site.leases.create_lease(body)
        lease = await site.leases.create_lease(
            {
                "count": 1,
                "queue": "q",
                "duration_s": 5,
                "gpu_model": "rtx 3060",
                "min_vram_mb": 12000,
                "model": "all-MiniLM-L6-v2",
            }
        )
        assert lease["rigs"][0]["rig_id"] == "small"


async def test_lease_serves_real_embeddings_and_returns_to_mining_with_fresh_work(tmp_path: Path) -> None:
    async with open_site(tmp_path) as site:
        leased = await site.add_rig("rig-a")
        other = await site.add_rig("rig-b")
        await wait_until(lambda: all(r.agent.miner and r.agent.miner.accepted for r in (leased, other)))
        lease = await site.leases.create_lease({"count": 1, "queue": "emb", "duration_s": 3})
        chosen = lease["rigs"][0]["rig_id"]
        rig, idle = (leased, other) if chosen == "rig-a" else (other, leased)
        texts = ["a cat sits on the mat", "a kitten is sitting on a rug", "stock markets fell sharply"]
        ids = [await site.leases.enqueue("emb", {**EMBED, "input": [t]}) for t in texts]
        results = await site.wait_jobs(ids)
        assert {r["rig"] for r in results} == {chosen}
        vectors = [r["result"]["data"][0]["embedding"] for r in results]
        assert all(len(v) == 384 and math.isclose(sum(x * x for x in v), 1.0, rel_tol=1e-3) for v in vectors)

        def cos(a: list[float], b: list[float]) -> float:
            return sum(x * y for x, y in zip(a, b, strict=True))

        assert cos(vectors[0], vectors[1]) > cos(vectors[0], vectors[2])
        idle_before = idle.agent.miner.accepted if idle.agent.miner else 0
        assert rig.agent.mode == "serving"
        accepted_while_serving = rig.agent.miner.accepted if rig.agent.miner else 0
        # the lease runs out: the rig returns, gets a fresh difficulty and a clean job, and mines
        await wait_until(lambda: site.leases.lease_view(lease["lease_id"])["state"] == "done")
        await wait_until(lambda: rig.agent.miner is not None and rig.agent.miner.accepted > accepted_while_serving)
        assert rig.agent.mode == "mining"
        assert idle.agent.mode == "mining"  # never leased, never stopped
        await wait_until(lambda: idle.agent.miner is not None and idle.agent.miner.accepted > idle_before)
        usage = site.leases.lease_view(lease["lease_id"])["usage"]
        assert usage["jobs_done"] == 3 and usage["gpu_seconds"] > 0 and usage["hashes_foregone"] > 0
        # the return was measured (once: one rig came back); its figure is `stratumkit bench lease`'s
        assert site.leases.stats()["return_latency_s"]["n"] == 1


async def test_fresh_work_after_return_is_a_clean_job_with_a_difficulty(tmp_path: Path) -> None:
    async with open_site(tmp_path) as site:
        rig = await site.add_rig("rig-a")
        await wait_until(lambda: rig.agent.miner is not None and rig.agent.miner.job is not None)
        seen: list[Event] = []
        assert rig.agent.client is not None
        original = rig.agent.client.on_event

        def spy(event: Event) -> None:
            seen.append(event)
            original(event)

        rig.agent.client.on_event = spy
        lease = await site.leases.create_lease({"count": 1, "queue": "q", "duration_s": 60})
        await wait_until(lambda: rig.agent.mode == "serving")
        seen.clear()
        await site.leases.cancel_lease(lease["lease_id"])
        await wait_until(lambda: rig.agent.mode == "mining")
        await wait_until(lambda: any(isinstance(e, Notify) for e in seen))
        kinds = [type(e) for e in seen if isinstance(e, SetDifficulty | Notify)]
        assert kinds[:2] == [SetDifficulty, Notify]
        assert next(e for e in seen if isinstance(e, Notify)).clean_jobs
        assert site.leases.lease_view(lease["lease_id"])["state"] == "cancelled"


class SlowBackend:
    """The real model behind a delay, so a job is surely in flight when its rig is killed."""

    def __init__(self, inner: InferenceBackend, delay: float) -> None:
        self.inner = inner
        self.delay = delay
        self.started = trio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def embed(self, model: str, inputs: list[str]) -> Any:
        self.started.set()
        await trio.sleep(self.delay)
        return await self.inner.embed(model, inputs)


async def test_killed_rig_mid_job_its_jobs_complete_elsewhere_exactly_once(tmp_path: Path) -> None:
    async with open_site(tmp_path) as site:
        slow = SlowBackend(site.backend, delay=30)
        victim = await site.add_rig("victim", backend=slow)
        survivor = await site.add_rig("survivor")
        lease = await site.leases.create_lease({"count": 2, "queue": "emb", "duration_s": 60})
        await wait_until(lambda: victim.agent.mode == "serving" and survivor.agent.mode == "serving")
        ids = [await site.leases.enqueue("emb", {**EMBED, "input": [f"sentence {i}"]}) for i in range(20)]
        with trio.fail_after(10):
            await slow.started.wait()  # the victim holds a job now
        victim.kill()
        results = await site.wait_jobs(ids)
        assert {r["rig"] for r in results} == {"survivor"}
        assert all(r["deliveries"] >= 1 for r in results)
        assert any(r["deliveries"] == 2 for r in results)  # the victim's job was delivered again
        stats = await site.leases.queue.stats("emb")
        assert (stats.done, stats.ready, stats.in_flight, stats.dead) == (20, 0, 0, 0)
        view = site.leases.lease_view(lease["lease_id"])
        assert view["state"] == "serving"
        assert view["usage"]["jobs_done"] == 20


async def test_stale_tokens_and_unregistered_calls_are_refused(tmp_path: Path) -> None:
    async with open_site(tmp_path) as site:
        plain = await Miner.connect(site.nursery, site.pool.port, "plain.1")
        reply = await plain.client.call(plain.client.conn.send_request, "stratumkit.lease.serving", [1])
        assert "not a registered rig" in getattr(reply, "message", "")
        rig = await site.add_rig("rig-a")
        assert rig.agent.client is not None
        for method, params in [
            ("stratumkit.lease.serving", [999]),
            ("stratumkit.lease.returned", [999]),
            ("stratumkit.job.claim", [999, 1, 10, 0]),
            ("stratumkit.job.result", ["nope", {}]),
            ("stratumkit.lease.serving", ["not-an-int"]),
        ]:
            reply = await rig.agent.client.call(rig.agent.client.conn.send_request, method, params)
            assert type(reply).__name__ == "ErrorReply", (method, reply)
        assert rig.agent.mode == "mining"


async def test_an_agent_without_a_gpu_mines_and_is_not_leasable(tmp_path: Path) -> None:
    async with open_site(tmp_path) as site:
        rig = await site.add_rig("cpu-only", gpu=None)
        await wait_until(lambda: rig.agent.miner is not None and rig.agent.miner.accepted > 0)
        assert site.leases.rigs() == []
        assert rig.agent.mode == "mining"


async def test_a_result_longer_than_a_miners_line_limit_comes_back(tmp_path: Path) -> None:
    """Sixteen embeddings are ~130 KB of JSON on one stratum line: registered rigs may send that,
    while plain miners keep the small line limit."""
    async with open_site(tmp_path) as site:
        await site.add_rig("rig-a")
        await site.leases.create_lease({"count": 1, "queue": "emb", "duration_s": 60})
        texts = [f"sentence {k} of a long embedding request" for k in range(16)]
        [job_id] = [await site.leases.enqueue("emb", {**EMBED, "input": texts})]
        [result] = await site.wait_jobs([job_id])
        assert len(result["result"]["data"]) == 16
        assert site.pool.config.max_line_length < 130_000 < site.pool.config.rig_max_line_length
