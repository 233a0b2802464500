"""`stratumkit mine` as anyone would run it: a real process mining for a real `stratumkit serve`."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import trio

from tests.agent.conftest import start_pool, wait_new_event
from tests.support.processes import ServeProcess, child_env, cli_command

pytestmark = pytest.mark.slow


async def start_mine(nursery: trio.Nursery, *flags: str) -> ServeProcess:
    return await ServeProcess.spawn(nursery, cli_command("mine", *flags, "--log-format", "json"))


async def test_mine_finds_accepted_shares_on_two_threads_and_comes_back_after_a_restart(
    tmp_path: Path, nursery: trio.Nursery
) -> None:
    pool = await start_pool(nursery, tmp_path / "pool")
    url = f"stratum+tcp://127.0.0.1:{pool.port}"
    miner = await start_mine(nursery, "-o", url, "-u", "someone.cpu", "-p", "x", "-t", "2", "--report", "1")
    for seen in range(3):
        await wait_new_event(miner, "share accepted", seen, 60)
    assert not (rejected := miner.find_events("share rejected")), rejected
    await miner.wait_event("hashrate", where=lambda e: e["hashes_per_s"] > 0 and e["accepted"] >= 1)
    assert await pool.stop() == 0
    told = await miner.wait_event("pool asked us to reconnect")
    assert told["port"] == pool.port
    await start_pool(nursery, tmp_path / "pool", pool.port)
    accepted = len(miner.find_events("share accepted"))
    await wait_new_event(miner, "pool connected", 1, 60)
    await wait_new_event(miner, "share accepted", accepted, 60)
    assert await miner.stop() == 0


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["-o", "http://127.0.0.1:1", "-u", "w"], "scheme must be one of"),
        (["-o", "127.0.0.1:1", "-u", "w", "-t", "0"], "-t/--threads must be 1..256"),
        (["-o", "127.0.0.1:1", "-u", "w", "--log-level", "verbose"], "--log-level must be"),
    ],
)
def test_bad_flags_are_one_line_and_exit_2(flags: list[str], message: str) -> None:
    done = subprocess.run(cli_command("mine", *flags), env=child_env(), capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert message in done.stderr and done.stderr.count("\n") == 1, done.stderr
