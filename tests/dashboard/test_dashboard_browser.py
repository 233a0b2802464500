"""The dashboard in a real browser: a `stratumkit serve` process, a miner, a `stratumkit agent` rig,
and Debian's headless chromium showing the page at ``/``.

The page loads with nothing on the console; it shows the miner's worker and its accepted shares,
and updates when another share is accepted, when the miner finds a block, and when a lease starts
(the rig's mode and the lease's row). From this host it needs no token; seen as another host (a
reverse proxy's ``X-Forwarded-For`` on every request) it asks for the token, and works once
given it. Screenshots of both are saved in the test's tmp dir (``dashboard.png`` and
``dashboard-with-token.png``, beside ``logs/``).
"""

from __future__ import annotations

import signal
import subprocess
from functools import partial
from pathlib import Path

import pytest
import trio
from selenium.webdriver.common.by import By

from stratumkit.client import PoolClient
from tests.support.browser import (
    console_problems,
    in_thread,
    open_chromium,
    shown_element,
    text,
    texts,
    wait_for_page,
    wait_text,
)
from tests.support.miners import Miner
from tests.support.processes import ServeProcess, child_env, cli_command

pytestmark = pytest.mark.slow

TOKEN = "dashboard-s3cret"
WORKER = "bc1qdash.miner"


def job_changed(miner: Miner, stale: str) -> bool:
    return miner.job is not None and miner.job.job_id != stale


async def accept_share(miner: Miner, *, block: bool = False) -> None:
    """A share of the newest job, accepted. The rig mines blocks too: a job that one of its blocks
    turned stale in between is built again on the next job (twice at most)."""
    for _ in range(3):
        share = miner.share(block=block)
        result = await miner.submit(share)
        if result.accepted:
            return
        assert result.code == 21, result  # stale, and nothing else
        await miner.wait_for(partial(job_changed, miner, share.job_id), what="the next job")
    raise AssertionError("three shares in a row went stale")


async def test_the_dashboard_shows_miners_blocks_and_leases_live(tmp_path: Path, nursery: trio.Nursery) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    config = tmp_path / "pool.toml"
    config.write_text(f'api_token = "{TOKEN}"\n')
    pool = await ServeProcess.start(
        nursery,
        *("--config", str(config), "--host", "127.0.0.1", "--port", "0", "--api-port", "0"),
        *("--data-dir", str(tmp_path / "pool"), "--log-format", "json"),
        *("--start-difficulty", "0.000001", "--embedded-difficulty", "0.001"),
        log_copy=logs / "pool.log",
    )
    url = f"http://127.0.0.1:{await pool.api_port()}"
    miner = await Miner.connect(nursery, pool.port, WORKER)
    await accept_share(miner)

    with (logs / "agent.log").open("wb") as out:
        agent = subprocess.Popen(
            cli_command(
                *("agent", "--pool", f"127.0.0.1:{pool.port}", "--worker", "rig1.gpu", "--rig-id", "rig-1"),
                *("--gpu", "RTX 4090:24576", "--duty", "0.02", "--log-format", "json"),
            ),
            env=child_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        with open_chromium(logs) as driver:
            await in_thread(lambda: driver.get(f"{url}/"))
            worker_row = f'#workers tr[data-worker="{WORKER}"]'
            await wait_text(driver, f"{worker_row} td.accepted", {"1"}, "the miner's worker with its first share")
            assert text(driver, "#status") is not None and "live" in str(text(driver, "#status"))
            assert text(driver, "#pool-height") not in (None, "-")

            # a share accepted now shows up on the page
            await accept_share(miner)
            await wait_text(driver, f"{worker_row} td.accepted", {"2"}, "the second accepted share")

            # a block found by the miner: in the blocks table, with its worker
            await accept_share(miner, block=True)
            await wait_for_page(
                driver,
                lambda d: WORKER in texts(d, "#blocks td.worker"),
                "the miner's block in the blocks table",
            )

            # the rig registers and mines; a lease diverts it
            await wait_text(driver, '#rigs tr[data-rig="rig-1"] td.mode', {"mining"}, "the rig, mining")
            async with PoolClient(url, token=TOKEN) as client:
                lease = await client.create_lease(count=1, queue="embed", duration_s=600, owner="ann")
            lease_row = f'#leases tr[data-lease="{lease["lease_id"]}"]'
            await wait_text(driver, f"{lease_row} td.owner", {"ann"}, "the new lease")
            await wait_text(driver, '#rigs tr[data-rig="rig-1"] td.mode', {"draining", "serving"}, "the rig leased")
            await wait_text(driver, f"{lease_row} td.state", {"serving"}, "the lease serving")
            await wait_for_page(
                driver, lambda d: d.find_elements(By.CSS_SELECTOR, '#event-list li[data-type="rig.serving"]'), "event"
            )
            await in_thread(lambda: driver.save_screenshot(str(tmp_path / "dashboard.png")))
            assert console_problems(driver) == []

            # seen as another host, the page asks for the token before it calls the API
            await in_thread(lambda: driver.execute_cdp_cmd("Network.enable", {}))
            await in_thread(
                lambda: driver.execute_cdp_cmd(
                    "Network.setExtraHTTPHeaders", {"headers": {"X-Forwarded-For": "198.51.100.7"}}
                )
            )
            await in_thread(driver.refresh)
            token_input = await wait_for_page(driver, lambda d: shown_element(d, "token-input"), "the token form")
            assert token_input is not None
            assert not driver.find_element(By.ID, "panels").is_displayed()
            await in_thread(lambda: token_input.send_keys(TOKEN + "\n"))
            await wait_text(driver, f"{worker_row} td.accepted", {"3"}, "the worker, with the token")
            await in_thread(lambda: driver.save_screenshot(str(tmp_path / "dashboard-with-token.png")))
            assert console_problems(driver) == []
    finally:
        agent.send_signal(signal.SIGTERM)
        try:
            agent.wait(10)
        except subprocess.TimeoutExpired:
            agent.kill()
            agent.wait()
    assert (tmp_path / "dashboard.png").stat().st_size > 10_000
