"""The page's panels for /v1/blocks, /v1/history and /v1/policy, in a real browser.

Those routes are an API of their own; here the page is served by the real `ApiApp` (over the
in-memory fakes of tests/api) answering them in the shapes they are specified with, so that what
the page does with them is checked before and after they exist: blocks with reward and effort and
the 7- and 30-day summaries, the chart drawn from the history (pool and a worker), every field of
the policy's answer, and a rig's mode as the API names it (here "curtailed"). The screenshot is
``dashboard-panels.png`` in the test's tmp dir.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import pytest
import trio

from stratumkit.api.app import ApiApp
from stratumkit.asgi import Reply, Request, Send, listen
from tests.api.test_routes_fake import FakeLeases, FakePool
from tests.support.browser import console_problems, in_thread, open_chromium, text, texts, wait_text

pytestmark = pytest.mark.slow

NOW = time.time()
BLOCK_HASH = "00" * 30 + "beef"
BLOCKS: dict[str, Any] = {
    "blocks": [
        {"height": 812, "hash": BLOCK_HASH, "worker": "bc1qops.rig7", "time": NOW - 120,
         "status": "confirmed", "reward_sats": 312_500_000, "network_difficulty": 1.5e12, "effort": 0.85},
    ],
    "next": None,
    "summary": {"7d": {"blocks": 1, "average_effort": 0.85}, "30d": {"blocks": 4, "average_effort": 1.1}},
}  # fmt: skip
HISTORY = {
    "bucket": "minute",
    "series": {
        "pool": [
            {"t": NOW - 180 + 60 * i, "hashrate": 2.0e12 + 1e11 * i, "accepted": 30, "rejected": 1} for i in range(3)
        ],
        "bc1qops.rig7": [
            {"t": NOW - 180 + 60 * i, "hashrate": 1.0e12, "accepted": 15, "rejected": 0} for i in range(3)
        ],
    },
}
POLICY = {
    "decision": {"mode": "serve_ai", "reason": "gpu price above hashprice"},
    "prices": {"power_usd_per_kwh": 0.071},
}


class PanelRoutesApi(ApiApp):
    """The real app, with the three routes answered in their specified shapes."""

    answers = {"/v1/blocks": BLOCKS, "/v1/history": HISTORY, "/v1/policy": POLICY}

    async def respond(self, request: Request, send: Send) -> Reply | None:
        if request.path in self.answers:
            return Reply(200, self.answers[request.path])
        if request.path == "/dashboard/session":
            return Reply(200, {"routes": ["blocks", "history", "policy"], "token_needed": False, "refused": None})
        return await super().respond(request, send)


def fake_pool() -> FakePool:
    pool = FakePool()
    worker: dict[str, Any] = {
        "accepted": 15,
        "rejected": {"stale": 2},
        "blocks": 1,
        "hashrate": 1.0e12,
        "last_share": NOW,
    }
    pool.numbers.update(workers={"bc1qops.rig7": worker}, blocks_found=[], network_difficulty=1.5e12, source="node")
    return pool


async def test_the_panels_of_blocks_history_and_policy(tmp_path: Path, nursery: trio.Nursery) -> None:
    leases = FakeLeases()
    leases.rigs_value = [{"rig_id": "rig-7", "worker": "bc1qops.rig7", "mode": "curtailed", "connected": True}]
    app = PanelRoutesApi(fake_pool(), leases)
    bound = await listen(nursery, app, "127.0.0.1", 0, errorlog=logging.getLogger("tests.dashboard"))
    with open_chromium(tmp_path) as driver:
        await in_thread(lambda: driver.get(f"{bound}/"))
        block = f'#blocks tr[data-hash="{BLOCK_HASH}"]'
        await wait_text(driver, f"{block} td.effort", {"85.0 %"}, "the block's effort")
        assert text(driver, f"{block} td.reward") == "3.12500000 BTC"
        assert text(driver, f"{block} td.status") == "confirmed"
        summary = str(text(driver, "#blocks-summary"))
        assert "7d" in summary and "85.0 %" in summary and "30d" in summary and "110.0 %" in summary

        await wait_text(driver, "#hashrate-source", {"from /v1/history, then sampled live"}, "the history")
        legend = texts(driver, "#hashrate-chart .u-legend .u-label")
        assert "pool" in legend and "bc1qops.rig7" in legend

        await wait_text(driver, '#policy-fields dd[data-field="decision.mode"]', {'"serve_ai"'}, "the policy")
        assert text(driver, '#policy-fields dd[data-field="prices.power_usd_per_kwh"]') == "0.071"
        assert text(driver, '#rigs tr[data-rig="rig-7"] td.mode') == "curtailed"
        assert text(driver, '#workers tr[data-worker="bc1qops.rig7"] td.rejects') == "stale 2"
        await in_thread(lambda: driver.save_screenshot(str(tmp_path / "dashboard-panels.png")))
        assert console_problems(driver) == []
