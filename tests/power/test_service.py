"""The power service in one process: a real pool, lease service, rig agents and a plain miner over
loopback TCP. Prices pushed through the service's API curtail and restore them; an operator's
curtailment overrides the policy; energy is booked per mode."""

from __future__ import annotations

import functools
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import trio

from stratumkit.session.ports import RigMode
from tests.lease_switch.conftest import EMBED, Site, open_site
from tests.support.miners import Miner, assert_served
from tests.support.waiting import wait_until

POWER = {
    "power_usd_per_kwh": 0.0,  # CPU-mining agents pay only at a price of zero or below
    "hashprice_usd_per_th_day": 0.05,
    "gpu_usd_per_hour": 0.3,
    "strike_usd_per_kwh": 0.2,
    "curtail_serving": True,
    "miner_j_per_th": 30.0,
}
SWITCH_COST = 1e-12


def conn_mode(site: Site, unit: str) -> RigMode:
    return next(c.mode for c in site.pool.sessions if c.rig_id == unit or c.worker == unit)


async def refused_as_curtailed(miner: Miner) -> None:
    result = await miner.submit(miner.share())
    assert not result.accepted and result.code == 21 and "curtailed" in (result.message or ""), result


async def test_prices_over_the_strike_curtail_rigs_and_miners_and_cheap_power_brings_them_back(
    tmp_path: Path,
) -> None:
    # a switch cost below every unit's margin of gain (the plain miner earns nanodollars an hour)
    async with open_site(tmp_path, power=POWER | {"switch_cost_usd": SWITCH_COST}) as site:
        rig = await site.add_rig("rig-a", power_w=400.0)
        plain = await Miner.connect(site.nursery, site.pool.port, "plain.1")
        agent = rig.agent
        await wait_until(lambda: agent.miner is not None and agent.miner.accepted > 0, what="rig mining")
        assert agent.miner is not None
        first = await site.power.call("POST", "/v1/prices", {"power_usd_per_kwh": 0.0})
        assert first["fresh"] and (await site.power.call("GET", "/v1/policy", None))["orders_total"] == 0

        async with site.leases.events() as events:
            view = await site.power.call("POST", "/v1/prices", {"power_usd_per_kwh": 0.5})
            with trio.fail_after(5):
                event = await events.receive()
        assert view["prices"]["power_usd_per_kwh"] == 0.5 and view["source"] == "api"
        assert (event["type"], event["mode"], event["reason"]) == ("power.order", "curtail", "strike")
        assert event["inputs"]["power_usd_per_kwh"] == 0.5 and event["inputs"]["strike"] is True
        await wait_until(lambda: agent.mode == "curtailed" and agent.miner is not None and agent.miner.paused)
        assert conn_mode(site, "rig-a") is RigMode.CURTAILED and conn_mode(site, "plain.1") is RigMode.CURTAILED
        await refused_as_curtailed(plain)
        policy = await site.power.call("GET", "/v1/policy", None)
        units = {u["unit"]: u for u in policy["units"]}
        assert units["rig-a"]["mode"] == "curtail" and units["rig-a"]["reason"] == "strike"
        assert units["rig-a"]["inputs"]["power_usd_per_kwh"] == 0.5 and units["rig-a"]["inputs"]["strike"] is True
        assert policy["orders_total"] == 2

        notifies = len(plain.notifies())
        accepted = agent.miner.accepted
        await site.power.call("POST", "/v1/prices", {"power_usd_per_kwh": -0.01})
        await plain.wait_for(lambda: len(plain.notifies()) > notifies, what="fresh work after the curtailment")
        assert plain.notifies()[-1].clean_jobs
        await assert_served(plain)
        await wait_until(lambda: agent.mode == "mining" and agent.miner is not None and agent.miner.accepted > accepted)

        energy: dict[str, Any] = await site.power.call("GET", "/v1/energy", None)
        rig_modes = energy["units"]["rig-a"]["by_mode"]
        assert rig_modes["curtailed"]["kwh"] == 0.0 and rig_modes["curtailed"]["seconds"] > 0
        assert rig_modes["mining"]["kwh"] > 0 and rig_modes["mining"]["revenue_usd"] > 0
        plain_unit = next(k for k in energy["units"] if k.startswith("plain.1@"))
        # a plain miner cannot be switched off: its power is still counted while curtailed
        assert energy["units"][plain_unit]["by_mode"]["curtailed"]["kwh"] > 0
        # two switches each (curtailed, then mining), at the policy's price, counted in net
        total = energy["units"]["rig-a"]["total"]
        assert (rig_modes["curtailed"]["switches"], rig_modes["mining"]["switches"]) == (1, 1)
        assert total["switch_cost_usd"] == 2 * SWITCH_COST
        assert total["net_usd"] == total["revenue_usd"] - total["power_cost_usd"] - 2 * SWITCH_COST
        assert energy["units"][plain_unit]["total"]["switches"] == 2


async def test_an_operator_curtailment_overrides_the_policy_until_released(tmp_path: Path) -> None:
    async with open_site(tmp_path, power=POWER) as site:
        old = await site.add_rig("old", power_w=900.0)
        new = await site.add_rig("new", power_w=300.0)
        plain = await Miner.connect(site.nursery, site.pool.port, "plain.1")
        await wait_until(lambda: all(r.agent.miner is not None and r.agent.miner.accepted > 0 for r in (old, new)))
        answer = await site.power.call("POST", "/v1/curtail", {"kw": 0.5})
        assert answer["curtailed"] == ["old"] and answer["shed_kw"] == 0.9 and answer["target_kw"] == 0.5
        await wait_until(lambda: old.agent.mode == "curtailed")
        assert new.agent.mode == "mining" and conn_mode(site, "plain.1") is RigMode.MINING
        await site.power.call("POST", "/v1/prices", {"power_usd_per_kwh": 0.0})  # the policy says mine
        assert old.agent.mode == "curtailed" and conn_mode(site, "old") is RigMode.CURTAILED

        answer = await site.power.call("POST", "/v1/curtail", {"all": True})
        assert sorted(answer["curtailed"]) == ["new", "old"] and len(answer["not_curtailable"]) == 1
        await refused_as_curtailed(plain)
        released = await site.power.call("POST", "/v1/curtail/release", {})
        assert released["released"][0] == "new"  # the most efficient comes back first
        await wait_until(lambda: old.agent.mode == "mining" and new.agent.mode == "mining")
        await plain.wait_for(lambda: plain.notifies()[-1].clean_jobs, what="a clean job")
        await assert_served(plain)
        with trio.fail_after(5):
            assert (await site.power.call("GET", "/v1/curtail", None)) == {}


async def test_prices_are_polled_from_an_operators_url_and_bad_answers_are_refused(tmp_path: Path) -> None:
    answers = [b'{"power_usd_per_kwh": 45}', b"not json", b'{"power_usd_per_kwh": 0.5}']
    served: list[bytes] = []

    async def http(stream: trio.SocketStream) -> None:
        request = b""
        while b"\r\n\r\n" not in request:
            request += await stream.receive_some(4096)
        body = answers[min(len(served), len(answers) - 1)]
        served.append(body)
        head = f"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
        await stream.send_all(head.encode() + b"connection: close\r\n\r\n" + body)
        await stream.aclose()

    async with trio.open_nursery() as servers:
        [listener] = await servers.start(functools.partial(trio.serve_tcp, http, 0, host="127.0.0.1"))
        url = f"http://127.0.0.1:{listener.socket.getsockname()[1]}/prices"
        power = POWER | {"price_url": url, "price_poll_interval_s": 0.05}
        async with open_site(tmp_path, power=power) as site:
            await wait_until(lambda: len(served) >= 3, what="three polls")
            await wait_until(lambda: site.power.book.source == "poll")
            view = await site.power.call("GET", "/v1/prices", None)
            assert view["prices"]["power_usd_per_kwh"] == 0.5  # the refused 45 (USD/MWh?) never applied
            assert site.power.health()["source"] == "poll"
        servers.cancel_scope.cancel()


async def test_a_rig_under_an_integrator_lease_is_not_curtailed_by_the_policy(tmp_path: Path) -> None:
    async with open_site(tmp_path, power=POWER) as site:
        leased = await site.add_rig("leased", power_w=400.0)
        free = await site.add_rig("free", power_w=400.0)
        await wait_until(lambda: all(r.agent.miner is not None and r.agent.miner.accepted > 0 for r in (leased, free)))
        lease = await site.leases.create_lease({"count": 1, "queue": "q", "duration_s": 60})
        rig_id = lease["rigs"][0]["rig_id"]
        other = free if rig_id == "leased" else leased
        held = leased if other is free else free
        await wait_until(lambda: held.agent.mode == "serving")
        await site.power.call("POST", "/v1/prices", {"power_usd_per_kwh": 0.5})
        await wait_until(lambda: other.agent.mode == "curtailed")
        units = {u["unit"]: u for u in (await site.power.call("GET", "/v1/policy", None))["units"]}
        assert units[rig_id]["reason"].startswith("integrator lease") and held.agent.mode == "serving"
        answer = await site.power.call("POST", "/v1/curtail", {"all": True})
        assert answer["kept_leased"] == [rig_id]


async def test_rigs_worth_more_serving_ai_are_lent_to_the_auto_lease_queue_while_it_has_jobs(tmp_path: Path) -> None:
    async with open_site(tmp_path, power=POWER | {"auto_lease_queue": "auto", "gpu_usd_per_hour": 0.5}) as site:
        a = await site.add_rig("a", power_w=400.0)
        b = await site.add_rig("b", power_w=400.0)
        await wait_until(lambda: all(r.agent.miner is not None and r.agent.miner.accepted > 0 for r in (a, b)))
        await site.power.call("POST", "/v1/curtail", {"rigs": ["b"]})
        await wait_until(lambda: b.agent.mode == "curtailed")
        jobs = [await site.leases.enqueue("auto", {**EMBED, "input": [f"job {i}"]}) for i in range(20)]
        await site.power.call("POST", "/v1/prices", {"gpu_usd_per_hour": 0.6})
        units = {u["unit"]: u for u in (await site.power.call("GET", "/v1/policy", None))["units"]}
        # the lease names a: the curtailed b, as idle an RTX 4090 as a, is not drafted instead
        assert units["a"]["mode"] == "serve_ai" and units["b"]["mode"] == "curtail"
        await wait_until(lambda: a.agent.mode == "serving")
        (first,) = site.leases.list_leases()
        assert first["selector"]["rigs"] == ["a"] and [r["rig_id"] for r in first["rigs"]] == ["a"]
        assert b.agent.mode == "curtailed"

        await site.power.call("POST", "/v1/curtail/release", {})  # b is to be lent too now
        await wait_until(lambda: a.agent.mode == "serving" and b.agent.mode == "serving")
        leases = site.leases.list_leases()
        assert len(leases) == 2 and {lease["owner"] for lease in leases} == {"stratumkit.power"}
        assert sorted((tuple(x["selector"]["rigs"]), x["rigs"][0]["rig_id"]) for x in leases) == [
            (("a",), "a"),
            (("b",), "b"),
        ]
        units = {u["unit"]: u for u in (await site.power.call("GET", "/v1/policy", None))["units"]}
        assert not any(u["reason"].startswith("integrator lease") for u in units.values())
        done = await site.wait_jobs(jobs, timeout=60)
        assert {r["rig"] for r in done} <= {"a", "b"}

        assert a.agent.miner is not None
        accepted = a.agent.miner.accepted
        await site.power.call("GET", "/v1/policy", None)
        await site.power.step()  # the queue is empty: lending no longer pays, the rigs come back
        await wait_until(lambda: a.agent.mode == "mining" and b.agent.mode == "mining")
        await wait_until(lambda: a.agent.miner is not None and a.agent.miner.accepted > accepted)
        assert {lease["state"] for lease in site.leases.list_leases()} == {"cancelled"}


async def test_an_operator_may_override_an_integrator_lease_which_then_ends(tmp_path: Path) -> None:
    async with open_site(tmp_path, power=POWER) as site:
        rig = await site.add_rig("r", power_w=400.0)
        await wait_until(lambda: rig.agent.miner is not None and rig.agent.miner.accepted > 0)
        lease = await site.leases.create_lease(
            {"count": 1, "queue": "q", "duration_s": 600, "owner": "ann", "availability": 0.99}
        )
        await wait_until(lambda: rig.agent.mode == "serving")
        kept = await site.power.call("POST", "/v1/curtail", {"all": True})
        assert (kept["kept_leased"], kept["curtailed"], kept["shed_kw"]) == (["r"], [], 0.0)
        assert rig.agent.mode == "serving"
        shed = await site.power.call("POST", "/v1/curtail", {"all": True, "override_leases": True})
        assert (shed["leases_overridden"], shed["curtailed"], shed["shed_kw"]) == (["r"], ["r"], 0.4)
        await wait_until(lambda: rig.agent.mode == "curtailed")
        view = site.leases.lease_view(lease["lease_id"])
        assert view["state"] == "cancelled"
        served = view["usage"]["gpu_seconds"]
        await site.power.call("GET", "/v1/policy", None)
        assert site.leases.lease_view(lease["lease_id"])["usage"]["gpu_seconds"] == served  # billed no further
        # credited: what it served short of 99% of its window up to the curtailment, and one restart
        sla = view["sla"]
        assert (sla["target"], sla["restarts"], sla["restart_credit_s"]) == (0.99, 1, 1.0)
        assert view["note"] == "curtailed by the operator"
        assert sla["credited_rig_s"] == max(0.0, 0.99 * sla["owed_rig_s"] - sla["served_rig_s"]) + 1.0
        assert sla["credit_usd"] == sla["credited_gpu_s"] * POWER["gpu_usd_per_hour"] / 3600
        (record,) = (await site.power.call("GET", "/v1/energy", None))["leases"]
        assert record["sla_credit_usd"] == sla["credit_usd"] > 0
        assert record["billed_usd"] == record["revenue_usd"] - sla["credit_usd"]


async def test_a_price_file_on_the_wall_clock_applies_past_rows_at_once_and_future_ones_on_time(
    tmp_path: Path,
) -> None:
    now = time.time()

    def stamp(t: float) -> str:
        return datetime.fromtimestamp(t, UTC).isoformat()

    prices = tmp_path / "prices.csv"
    prices.write_text(
        "timestamp,power_usd_per_kwh,gpu_usd_per_hour\n"
        f"{stamp(now - 7200)},0.01,0.45\n{stamp(now - 60)},0.02,\n{stamp(now + 1)},0.03,\n"
    )
    power = POWER | {"price_file": str(prices), "price_file_clock": "wall"}
    async with open_site(tmp_path, power=power) as site:
        await wait_until(lambda: site.power.book.updates >= 2)
        quote = site.power.book.quote
        assert quote is not None and quote.power_usd_per_kwh in (0.02, 0.03) and quote.gpu_usd_per_hour == 0.45
        await wait_until(lambda: site.power.book.updates == 3, what="the row one second ahead")
        assert site.power.book.quote is not None and site.power.book.quote.power_usd_per_kwh == 0.03
