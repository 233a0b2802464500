"""End to end with real processes: `stratumkit serve` replaying a price file curtails and restores a
real `stratumkit agent` and a plain miner on its own; an operator curtails by hand with
`stratumkit curtail` over the real HTTP API and releases; /health, /v1/policy and /metrics say so."""

from __future__ import annotations

import re
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import trio

from stratumkit.bench.ports import stop
from stratumkit.client import PoolClient
from tests.support.miners import Miner, assert_served
from tests.support.processes import ServeProcess, child_env, cli_command
from tests.support.waiting import wait_until_async

pytestmark = pytest.mark.slow

AGENT = ["agent", "--worker", "rig-1.w", "--rig-id", "rig-1", "--gpu", "RTX 4090:24576", "--power-w", "300"]


def price_file(path: Path) -> Path:
    t0 = datetime(2025, 1, 15, 12, tzinfo=UTC)
    rows = [(0, 0.0), (6, 0.9), (14, -0.01)]  # seconds from the start: cheap, over the strike, negative
    lines = ["timestamp,power_usd_per_kwh"] + [
        f"{(t0 + timedelta(seconds=s)).isoformat().replace('+00:00', 'Z')},{p}" for s, p in rows
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def config(tmp_path: Path) -> Path:
    path = tmp_path / "pool.toml"
    path.write_text(
        f"""
host = "127.0.0.1"
port = 0
api_port = 0
data_dir = "{tmp_path / "pool"}"
start_difficulty = 0.0005
embedded_difficulty = 1.0
share_interval = 2.0
log_format = "json"

[power]
power_usd_per_kwh = 0.0
hashprice_usd_per_th_day = 0.05
gpu_usd_per_hour = 0.3
price_file = "{price_file(tmp_path / "prices.csv")}"
strike_usd_per_kwh = 0.2
curtail_serving = true
policy_interval_s = 1.0
"""
    )
    return path


async def cli(*args: str) -> str:
    done = await trio.run_process(cli_command(*args), env=child_env(), capture_stdout=True, capture_stderr=True)
    return bytes(done.stdout).decode()


async def cli_error(*args: str) -> str:
    done = await trio.run_process(cli_command(*args), env=child_env(), capture_stderr=True, check=False)
    assert done.returncode == 1
    return bytes(done.stderr).decode()


async def test_a_price_file_and_an_operator_curtail_and_restore_real_rigs(
    tmp_path: Path, nursery: trio.Nursery
) -> None:
    pool = await ServeProcess.start(nursery, "--config", str(config(tmp_path)), log_copy=tmp_path / "pool.log")
    api = f"http://127.0.0.1:{await pool.api_port()}"
    agent = subprocess.Popen(
        cli_command(
            "agent",
            "--pool",
            f"127.0.0.1:{pool.port}",
            "--worker",
            "rig-1.w",
            "--rig-id",
            "rig-1",
            "--gpu",
            "RTX 4090:24576",
            "--power-w",
            "300",
            "--duty",
            "0.1",
        ),
        env=child_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        plain = await Miner.connect(nursery, pool.port, "plain.1")
        await pool.wait_event("rig registered")
        curtailed = await pool.wait_event(
            "power order", where=lambda e: e["unit"] == "rig-1" and e["mode"] == "curtail"
        )
        assert curtailed["reason"] == "strike"
        await pool.wait_event(
            "power order", where=lambda e: e["unit"].startswith("plain.1@") and e["mode"] == "curtail"
        )
        await pool.wait_event("power order", where=lambda e: e["unit"] == "rig-1" and e["mode"] == "mine")
        async with PoolClient(api) as client:
            before = next(r for r in await client.rigs() if r["rig_id"] == "rig-1")["accepted_shares"]

            async def mining_again() -> bool:
                return bool(next(r for r in await client.rigs() if r["rig_id"] == "rig-1")["accepted_shares"] > before)

            await wait_until_async(mining_again, what="the restored rig's shares")
            await pool.wait_event(
                "power order", where=lambda e: e["unit"].startswith("plain.1@") and e["mode"] == "mine"
            )
            await assert_served(plain)

            out = await cli("curtail", "--all", "--api", api)
            assert "shed 0.3 kW of 0.3 kW: rig-1" in out and "not curtailable (plain miners" in out
            result = await plain.submit(plain.share())
            assert not result.accepted and result.code == 21
            async with httpx.AsyncClient() as http:
                shed = (await http.get(f"{api}/metrics")).text
            (curtailed_kw,) = re.findall(r"^stratumkit_power_curtailed_kw (\S+)$", shed, re.M)
            assert float(curtailed_kw) >= 0.3  # rig-1's declared 300 W (and the plain miner's estimate)
            policy = await client.policy()
            assert {u["reason"] for u in policy["units"]} == {"operator curtailment"}
            assert "operator curtailment" in await cli("policy", "--api", api)
            notifies = len(plain.notifies())
            assert "released: rig-1" in await cli("curtail", "--release", "--api", api)
            await plain.wait_for(lambda: len(plain.notifies()) > notifies, what="fresh work after the release")
            await assert_served(plain)

            pushed = await cli("prices", "--power", "-0.02", "--api", api)
            assert "power_usd_per_kwh         -0.02" in pushed and "source api, fresh" in pushed
            assert "must be -10..10" in await cli_error("prices", "--power", "45", "--api", api)

            health = await client.health()
            assert health["power"]["fresh"] is True and health["power"]["source"] == "api"
            async with httpx.AsyncClient() as http:
                metrics = (await http.get(f"{api}/metrics")).text
            assert "stratumkit_power_orders_total" in metrics and 'stratumkit_power_kwh_total{mode="mining"}' in metrics
            energy = await client.energy()
            assert energy["units"]["rig-1"]["by_mode"]["curtailed"]["kwh"] == 0.0
            assert energy["units"]["rig-1"]["by_mode"]["mining"]["kwh"] > 0
    finally:
        stop(agent)


async def test_a_bad_price_file_is_one_line_at_start(tmp_path: Path) -> None:
    bad = tmp_path / "pool.toml"
    prices = tmp_path / "prices.csv"
    prices.write_text("timestamp,power_usd_per_kwh\n2025-01-15T00:00:00Z,45\n")
    bad.write_text(f'data_dir = "{tmp_path}"\nlog_format = "json"\n[power]\nprice_file = "{prices}"\n')
    done = await trio.run_process(
        cli_command("serve", "--config", str(bad), "--port", "0", "--api-port", "0"),
        env=child_env(),
        capture_stderr=True,
        check=False,
    )
    err = bytes(done.stderr).decode().strip().splitlines()
    assert done.returncode != 0 and len(err) == 1, err
    assert "power.price_file" in err[0] and "line 2: power_usd_per_kwh must be -10..10" in err[0]
