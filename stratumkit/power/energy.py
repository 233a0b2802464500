"""Energy and money per unit and mode, integrated over time from declared power and prices.

Pure: ``advance(now, wall, ...)`` books the interval since the last call at the modes and the
quote that held during it, then takes the new ones; totals are kept per unit and mode, and per
UTC day and mode (an interval across midnight is split at it, by ``wall``). Per mode:
- mining: the unit's power; revenue = hashrate x hashprice;
- serving (leased to AI): the unit's power; revenue = GPUs x GPU-hour price; mining foregone;
- curtailed: a rig draws nothing and earns nothing (mining foregone); a plain miner cannot be
  switched off, so its power is still counted, with no revenue (its shares are refused).
Power cost = kWh x power price (negative prices earn); CO2 = kWh x the grid factor.

Switches: a unit whose mode at an ``advance`` differs from the one it held since the last is
one switch, booked at that moment (its UTC day by ``wall``) to the mode it switched into, at
``switch_cost_usd``: the price the policy puts on a switch (drain, model warm-up, lost shares;
``power.switch_cost_usd``), whoever made it (the policy, an operator, a lease). A unit first
seen has made no switch. Net = revenue - power cost - switch cost.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from stratumkit.lease.policy import HASHES_PER_TH_DAY

from .curtail import Unit
from .prices import PriceQuote

__all__ = ["EnergyMeter", "ModeTotals"]


@dataclass(slots=True)
class ModeTotals:
    seconds: float = 0.0
    kwh: float = 0.0
    power_cost_usd: float = 0.0
    revenue_usd: float = 0.0
    mining_foregone_usd: float = 0.0
    switches: int = 0
    switch_cost_usd: float = 0.0

    def add(self, other: ModeTotals) -> None:
        self.seconds += other.seconds
        self.kwh += other.kwh
        self.power_cost_usd += other.power_cost_usd
        self.revenue_usd += other.revenue_usd
        self.mining_foregone_usd += other.mining_foregone_usd
        self.switches += other.switches
        self.switch_cost_usd += other.switch_cost_usd

    def to_dict(self, co2_g_per_kwh: float) -> dict[str, float]:
        return {
            "seconds": round(self.seconds, 3),
            "kwh": self.kwh,
            "power_cost_usd": self.power_cost_usd,
            "revenue_usd": self.revenue_usd,
            "switches": self.switches,
            "switch_cost_usd": self.switch_cost_usd,
            "net_usd": self.revenue_usd - self.power_cost_usd - self.switch_cost_usd,
            "mining_foregone_usd": self.mining_foregone_usd,
            "co2_kg": self.kwh * co2_g_per_kwh / 1000.0,
        }


def interval(unit: Unit, quote: PriceQuote, seconds: float) -> ModeTotals:
    """What one unit used and earned in `seconds` in its current mode at `quote`."""
    mining_usd = unit.hashrate * quote.hashprice_usd_per_th_day / HASHES_PER_TH_DAY * seconds
    drawing = unit.mode != "curtailed" or not unit.rig
    kwh = unit.power_w * seconds / 3.6e6 if drawing else 0.0
    totals = ModeTotals(seconds=seconds, kwh=kwh, power_cost_usd=kwh * quote.power_usd_per_kwh)
    if unit.mode == "mining":
        totals.revenue_usd = mining_usd
    elif unit.mode == "diverted":
        totals.revenue_usd = unit.gpus * quote.gpu_hour(unit.gpu_model) * seconds / 3600.0
        totals.mining_foregone_usd = mining_usd
    else:
        totals.mining_foregone_usd = mining_usd
    return totals


def _days(start: float, seconds: float) -> Iterator[tuple[str, float]]:
    """(UTC date, seconds of it) for the span of `seconds` from unix time `start`."""
    while seconds > 0:
        midnight = (math.floor(start / 86400.0) + 1) * 86400.0
        part = min(seconds, midnight - start)
        yield datetime.fromtimestamp(start, UTC).date().isoformat(), part
        start, seconds = start + part, seconds - part


@dataclass
class EnergyMeter:
    co2_g_per_kwh: float = 0.0
    switch_cost_usd: float = 0.0
    units: dict[str, dict[str, ModeTotals]] = field(default_factory=dict)
    days: dict[str, dict[str, ModeTotals]] = field(default_factory=dict)
    _held: list[Unit] = field(default_factory=list)
    _quote: PriceQuote | None = None
    _at: float | None = None
    _wall: float = 0.0
    unpriced_s: float = 0.0  # unit-seconds that passed with no quote to price them

    def advance(self, now: float, wall: float, units: Sequence[Unit], quote: PriceQuote | None) -> None:
        if self._at is not None and now > self._at:
            seconds = now - self._at
            for unit in self._held:
                if self._quote is None:
                    self.unpriced_s += seconds
                    continue
                modes = self.units.setdefault(unit.unit_id, {})
                for day, part in _days(self._wall, seconds):
                    used = interval(unit, self._quote, part)
                    modes.setdefault(unit.mode, ModeTotals()).add(used)
                    self.days.setdefault(day, {}).setdefault(unit.mode, ModeTotals()).add(used)
        held = {unit.unit_id: unit.mode for unit in self._held}
        for unit in units:
            before = held.get(unit.unit_id)
            if before is not None and before != unit.mode:
                self._switched(unit, wall)
        self._held, self._quote, self._at, self._wall = list(units), quote, now, wall

    def _switched(self, unit: Unit, wall: float) -> None:
        day = datetime.fromtimestamp(wall, UTC).date().isoformat()
        for book in (self.units.setdefault(unit.unit_id, {}), self.days.setdefault(day, {})):
            book.setdefault(unit.mode, ModeTotals()).add(ModeTotals(switches=1, switch_cost_usd=self.switch_cost_usd))

    def view(self) -> dict[str, Any]:
        total = ModeTotals()
        by_mode: dict[str, ModeTotals] = {}
        units = {}
        for unit_id, modes in sorted(self.units.items()):
            unit_total = ModeTotals()
            for mode, totals in modes.items():
                unit_total.add(totals)
                by_mode.setdefault(mode, ModeTotals()).add(totals)
            total.add(unit_total)
            units[unit_id] = {
                "total": unit_total.to_dict(self.co2_g_per_kwh),
                "by_mode": {m: t.to_dict(self.co2_g_per_kwh) for m, t in sorted(modes.items())},
            }
        days = {}
        for day, modes in sorted(self.days.items()):
            day_total = ModeTotals()
            for totals in modes.values():
                day_total.add(totals)
            days[day] = {
                "total": day_total.to_dict(self.co2_g_per_kwh),
                "by_mode": {m: t.to_dict(self.co2_g_per_kwh) for m, t in sorted(modes.items())},
            }
        return {
            "total": total.to_dict(self.co2_g_per_kwh),
            "by_mode": {m: t.to_dict(self.co2_g_per_kwh) for m, t in sorted(by_mode.items())},
            "days": days,
            "units": units,
            "unpriced_unit_seconds": round(self.unpriced_s, 3),
        }
