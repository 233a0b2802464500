"""kWh and dollars per unit and mode."""

from __future__ import annotations

import pytest

from stratumkit.power.curtail import Unit
from stratumkit.power.energy import EnergyMeter
from stratumkit.power.prices import PriceQuote

QUOTE = PriceQuote(0.10, 0.05, 0.40)  # USD/kWh, USD/TH/day, USD/GPU-hour
RIG = Unit("rig", "rig.w", True, 24e12, 1000.0, gpus=2)  # 24 TH/s: 0.05 USD/h mining


def with_mode(unit: Unit, mode: str) -> Unit:
    return Unit(unit.unit_id, unit.worker, unit.rig, unit.hashrate, unit.power_w, unit.gpus, unit.gpu_model, mode=mode)


def test_an_hour_in_each_mode() -> None:
    meter = EnergyMeter(co2_g_per_kwh=400.0)
    plain = Unit("plain", "plain", False, 24e12, 1000.0)
    meter.advance(0.0, 0.0, [RIG, plain], QUOTE)
    meter.advance(3600.0, 3600.0, [with_mode(RIG, "diverted"), with_mode(plain, "curtailed")], QUOTE)
    meter.advance(7200.0, 7200.0, [with_mode(RIG, "curtailed")], QUOTE)
    meter.advance(10800.0, 10800.0, [], None)
    view = meter.view()
    mining = view["units"]["rig"]["by_mode"]["mining"]
    assert mining["kwh"] == pytest.approx(1.0) and mining["power_cost_usd"] == pytest.approx(0.1)
    assert mining["revenue_usd"] == pytest.approx(0.05) and mining["co2_kg"] == pytest.approx(0.4)
    serving = view["units"]["rig"]["by_mode"]["diverted"]
    assert serving["revenue_usd"] == pytest.approx(0.8) and serving["mining_foregone_usd"] == pytest.approx(0.05)
    off = view["units"]["rig"]["by_mode"]["curtailed"]
    assert off["kwh"] == 0.0 and off["mining_foregone_usd"] == pytest.approx(0.05) and off["seconds"] == 3600
    # a plain miner cannot be switched off: it still draws, and earns nothing (its shares are refused)
    plain_off = view["units"]["plain"]["by_mode"]["curtailed"]
    assert plain_off["kwh"] == pytest.approx(1.0) and plain_off["revenue_usd"] == 0.0
    assert view["total"]["kwh"] == pytest.approx(4.0)
    assert view["total"]["net_usd"] == pytest.approx(0.05 + 0.8 + 0.05 - 0.4)


def test_time_without_prices_is_counted_not_priced() -> None:
    meter = EnergyMeter()
    meter.advance(0.0, 0.0, [RIG], None)
    meter.advance(10.0, 10.0, [RIG], QUOTE)
    assert meter.view()["unpriced_unit_seconds"] == 10.0 and meter.view()["units"] == {}


def test_negative_power_prices_earn() -> None:
    meter = EnergyMeter()
    meter.advance(0.0, 0.0, [RIG], PriceQuote(-0.02, 0.05, 0.4))
    meter.advance(3600.0, 3600.0, [RIG], None)
    assert meter.view()["total"]["power_cost_usd"] == pytest.approx(-0.02)


def test_days_are_cut_at_midnight_utc() -> None:
    meter = EnergyMeter()
    evening = 1_736_978_400.0  # 2025-01-15T22:00:00Z
    meter.advance(100.0, evening, [RIG], QUOTE)
    meter.advance(100.0 + 3 * 3600, evening + 3 * 3600, [RIG], None)
    days = meter.view()["days"]
    assert list(days) == ["2025-01-15", "2025-01-16"]
    assert days["2025-01-15"]["by_mode"]["mining"]["seconds"] == 7200
    assert days["2025-01-16"]["total"]["kwh"] == pytest.approx(1.0)
    assert meter.view()["total"]["kwh"] == pytest.approx(3.0)


def test_each_switch_is_booked_at_its_priced_cost_per_unit_and_day_and_counts_in_net() -> None:
    meter = EnergyMeter(switch_cost_usd=0.05)
    evening = 1_736_978_400.0  # 2025-01-15T22:00:00Z
    plain = Unit("plain", "plain", False, 24e12, 1000.0)
    meter.advance(0.0, evening, [RIG, plain], QUOTE)  # first seen: no switch
    meter.advance(3600.0, evening + 3600, [with_mode(RIG, "diverted"), plain], QUOTE)  # rig: 1st switch
    meter.advance(5400.0, evening + 5400, [with_mode(RIG, "diverted"), plain], QUOTE)  # no change
    # after midnight: the rig is curtailed (2nd), the plain miner too (its 1st)
    meter.advance(7800.0, evening + 7800, [with_mode(RIG, "curtailed"), with_mode(plain, "curtailed")], QUOTE)
    meter.advance(9000.0, evening + 9000, [RIG, with_mode(plain, "curtailed")], QUOTE)  # rig back: 3rd
    meter.advance(10800.0, evening + 10800, [], None)
    view = meter.view()
    rig = view["units"]["rig"]
    assert rig["total"]["switches"] == 3 and rig["total"]["switch_cost_usd"] == pytest.approx(0.15)
    assert {m: t["switches"] for m, t in rig["by_mode"].items()} == {"mining": 1, "diverted": 1, "curtailed": 1}
    assert view["units"]["plain"]["total"]["switches"] == 1
    # mining 1 h + 0.5 h at 0.05 USD/h and 0.10 USD/kWh x 1 kW; serving 7800 - 3600 s at 2 x 0.40 USD/h
    revenue = 1.5 * 0.05 + (4200 / 3600) * 0.8
    power = (1.5 + 4200 / 3600) * 0.1
    assert rig["total"]["revenue_usd"] == pytest.approx(revenue)
    assert rig["total"]["net_usd"] == pytest.approx(revenue - power - 0.15)
    days = view["days"]
    assert days["2025-01-15"]["total"]["switches"] == 1 and days["2025-01-15"]["by_mode"]["diverted"]["switches"] == 1
    assert days["2025-01-16"]["total"]["switches"] == 3
    assert days["2025-01-16"]["total"]["switch_cost_usd"] == pytest.approx(0.15)
    assert view["total"]["switch_cost_usd"] == pytest.approx(0.2)
    assert view["total"]["net_usd"] == pytest.approx(
        view["total"]["revenue_usd"] - view["total"]["power_cost_usd"] - 0.2
    )


def test_a_switch_without_prices_is_still_booked_at_the_policys_price() -> None:
    meter = EnergyMeter(switch_cost_usd=0.02)
    meter.advance(0.0, 0.0, [RIG], None)
    meter.advance(0.0, 0.0, [with_mode(RIG, "curtailed")], None)  # at the same moment: still a switch
    assert meter.view()["units"]["rig"]["by_mode"]["curtailed"]["switch_cost_usd"] == pytest.approx(0.02)
    assert meter.view()["unpriced_unit_seconds"] == 0.0
