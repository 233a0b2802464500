"""The power controller's precedence (lease, operator, safe mode, policy) and its orders."""

from __future__ import annotations

from stratumkit.lease.policy import Mode, PolicyConfig
from stratumkit.power.controller import PowerController
from stratumkit.power.curtail import CurtailRequest, Unit
from stratumkit.power.prices import PriceBook, PriceQuote, PriceStatus

ASIC = Unit("asic", "asic.w", True, 100e12, 2000.0)  # break-even 0.104 USD/kWh at 0.05 hashprice
GPU = Unit("gpu", "gpu.w", True, 1e9, 400.0, gpus=1, gpu_model="RTX 4090")
LEASED = Unit("leased", "leased.w", True, 100e12, 2000.0, leased=True, mode="diverted")
PLAIN = Unit("plain@1", "plain", False, 1e12, 10.0)  # 10 J/TH: break-even 0.208


def status(power: float) -> PriceStatus:
    return PriceBook(PriceQuote(power, 0.05, 0.35), max_age_s=60, safe_mode="mine").status(0.0)


def orders(controller: PowerController, units: list[Unit], power: float, now: float, **kw: bool) -> dict[str, Mode]:
    return {
        o.unit_id: o.mode
        for o in controller.step(units, status(power), now, 1000.0 + now, can_lend=kw.get("lend", False))
    }


def test_the_policy_orders_only_what_differs_from_what_the_connection_does() -> None:
    c = PowerController(PolicyConfig())
    assert orders(c, [ASIC, PLAIN], 0.05, 0.0) == {}  # both mine already
    assert orders(c, [ASIC, PLAIN], 0.2, 1.0) == {"asic": Mode.CURTAIL}  # the 10 J/TH plain miner still pays
    assert c.latest["asic"]["reason"] == "profit" and c.latest["asic"]["inputs"]["power_usd_per_kwh"] == 0.2
    curtailed = Unit("asic", "asic.w", True, 100e12, 2000.0, mode="curtailed")
    assert orders(c, [curtailed, PLAIN], 0.2, 2.0) == {}
    assert c.switches == 1 and [r["unit"] for r in c.history] == ["asic"]


def test_serving_ai_is_offered_only_when_lending_is_possible() -> None:
    c = PowerController(PolicyConfig())
    assert orders(c, [GPU], 0.05, 0.0) == {"gpu": Mode.CURTAIL}  # 1 GH/s does not pay for 400 W
    c = PowerController(PolicyConfig())
    assert orders(c, [GPU], 0.05, 0.0, lend=True) == {"gpu": Mode.SERVE_AI}


def test_integrator_leases_keep_precedence() -> None:
    c = PowerController(PolicyConfig(strike_usd_per_kwh=0.1))
    assert orders(c, [LEASED], 0.5, 0.0) == {}
    assert c.latest["leased"]["reason"].startswith("integrator lease")
    shed = c.curtail(CurtailRequest(all=True), [LEASED, ASIC])
    assert shed.kept_leased == ("leased",) and shed.curtailed == ("asic",)


def test_an_operator_curtailment_holds_until_its_end_then_the_policy_starts_over() -> None:
    c = PowerController(PolicyConfig(min_dwell_s=3600.0))
    orders(c, [ASIC], 0.05, 0.0)
    c.curtail(CurtailRequest(rigs=("asic",), until=1010.0), [ASIC])
    assert orders(c, [ASIC], 0.05, 5.0) == {"asic": Mode.CURTAIL}
    assert c.latest["asic"]["reason"] == "operator curtailment"
    curtailed = Unit("asic", "asic.w", True, 100e12, 2000.0, mode="curtailed")
    # past `until` (wall 1000 + now): the policy decides afresh, the dwell does not hold it off
    assert orders(c, [curtailed], 0.05, 11.0) == {"asic": Mode.MINE} and c.curtailment is None


def test_no_fresh_prices_means_the_safe_mode() -> None:
    c = PowerController(PolicyConfig())
    book = PriceBook(None, max_age_s=60, safe_mode="curtail")
    got = {o.unit_id: o.mode for o in c.step([ASIC, PLAIN], book.status(0.0), 0.0, 0.0, can_lend=False)}
    assert got == {"asic": Mode.CURTAIL, "plain@1": Mode.CURTAIL}
    assert c.latest["asic"]["reason"] == "safe mode curtail: no prices yet"


def test_units_that_leave_are_forgotten() -> None:
    c = PowerController(PolicyConfig())
    orders(c, [ASIC, PLAIN], 0.05, 0.0)
    orders(c, [PLAIN], 0.05, 1.0)
    assert set(c.latest) == {"plain@1"} and set(c.states) == {"plain@1"}
