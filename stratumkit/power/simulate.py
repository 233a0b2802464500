"""A replay: the policy and naive strategies over a price series and a fleet, money and switches.

``stratumkit simulate --prices FILE.csv --fleet FLEET.toml [--policy POLICY.toml] [--json] [--plot PNG]``
runs the same :func:`stratumkit.lease.policy.decide` the pool runs, once per row of the series
(a row's prices hold until the next row), and books each step with the same accounting as the
pool (:func:`stratumkit.power.energy.interval`). Strategies:

- ``policy``: the policy, lending GPU rigs to AI when that pays (every rig starts mining);
- ``always_mine``: every rig mines;
- ``always_ai``: rigs with GPUs serve AI, the others mine;
- ``strike_only``: a rig mines unless the power price is above the strike (the policy's
  ``strike_usd_per_kwh``, else the rig's own break-even price), then it is off; no delay;
- ``perfect_foresight``: each step's best mode for each rig with no switch cost (an upper bound).

Every switch costs ``switch_cost_usd`` (from the policy file) in every strategy but the bound.
The fleet file holds ``[[rig]]`` tables: name, count (1), hashrate_th, power_w, gpus (0),
gpu_model, serve_power_w. The policy file is a ``[power]`` table of the pool configuration
(constants there fill columns the series lacks). ``--plot`` draws the power price, the policy's
rigs by mode and every strategy's cumulative net over time (`stratumkit.power.plot`, which needs
the optional ``plot`` extra: matplotlib).
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stratumkit.lease.policy import Mode, PolicyState, Prices, RigProfile, economics
from stratumkit.server.config import ConfigError

from .curtail import Unit
from .energy import ModeTotals, interval
from .prices import BadPrice, PriceQuote, parse_update
from .series import PriceSeries, load_price_csv
from .settings import PowerSettings, power_settings

__all__ = ["FleetRig", "StrategyResult", "load_fleet", "run", "simulate"]

STRATEGIES = ("policy", "always_mine", "always_ai", "strike_only", "perfect_foresight")
_MODES = {Mode.MINE: "mining", Mode.SERVE_AI: "diverted", Mode.CURTAIL: "curtailed"}


@dataclass(frozen=True, slots=True)
class FleetRig:
    name: str
    hashrate_th: float
    power_w: float
    gpus: int = 0
    gpu_model: str | None = None
    serve_power_w: float | None = None

    @property
    def profile(self) -> RigProfile:
        return RigProfile(self.hashrate_th * 1e12, self.power_w, self.gpus, self.serve_power_w)

    def unit(self, mode: Mode) -> Unit:
        power = self.power_w if mode is not Mode.SERVE_AI or self.serve_power_w is None else self.serve_power_w
        return Unit(self.name, None, True, self.hashrate_th * 1e12, power, self.gpus, self.gpu_model, mode=_MODES[mode])


_RIG_KEYS = {"name", "count", "hashrate_th", "power_w", "gpus", "gpu_model", "serve_power_w"}


def load_fleet(path: str | Path) -> list[FleetRig]:
    try:
        data = tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read fleet {path}: {exc}") from None
    tables = data.get("rig")
    if not isinstance(tables, list) or not tables:
        raise ConfigError(f"{path}: a fleet needs [[rig]] tables (name, hashrate_th, power_w, gpus, ...)")
    fleet: list[FleetRig] = []
    for i, table in enumerate(tables):
        unknown = sorted(set(table) - _RIG_KEYS)
        if unknown:
            raise ConfigError(f"{path}: rig {i + 1}: unknown key(s) {', '.join(unknown)}")
        try:
            count = table.get("count", 1)
            if type(count) is not int or count < 1:
                raise ConfigError(f"{path}: rig {i + 1}: count must be an int >= 1")
            name = str(table.get("name", f"rig{i + 1}"))
            for n in range(count):
                rig = FleetRig(
                    f"{name}-{n + 1}" if count > 1 else name,
                    float(table["hashrate_th"]),
                    float(table["power_w"]),
                    int(table.get("gpus", 0)),
                    table.get("gpu_model"),
                    None if table.get("serve_power_w") is None else float(table["serve_power_w"]),
                )
                rig.profile  # noqa: B018  (the profile's own checks)
                fleet.append(rig)
        except KeyError as exc:
            raise ConfigError(f"{path}: rig {i + 1}: missing {exc.args[0]}") from None
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{path}: rig {i + 1}: {exc}") from None
    return fleet


@dataclass
class StrategyResult:
    name: str
    switches: int = 0
    most_switches_per_rig: int = 0
    rig_seconds: float = 0.0
    off_seconds: float = 0.0
    switch_cost_usd: float = 0.0
    totals: ModeTotals | None = None
    #: Per step (the series' rows): the fleet's net so far, and how many rigs are in each mode.
    cumulative_net_usd: list[float] = field(default_factory=list)
    modes: list[dict[str, int]] = field(default_factory=list)

    @property
    def net_usd(self) -> float:
        assert self.totals is not None
        return self.totals.revenue_usd - self.totals.power_cost_usd - self.switch_cost_usd

    def to_dict(self) -> dict[str, Any]:
        assert self.totals is not None
        return {
            "strategy": self.name,
            "uptime": round(1.0 - self.off_seconds / self.rig_seconds, 4) if self.rig_seconds else None,
            "switches": self.switches,
            "most_switches_per_rig": self.most_switches_per_rig,
            "kwh": round(self.totals.kwh, 3),
            "power_cost_usd": round(self.totals.power_cost_usd, 2),
            "revenue_usd": round(self.totals.revenue_usd, 2),
            "switch_cost_usd": round(self.switch_cost_usd, 2),
            "net_usd": round(self.net_usd, 2),
        }


Chooser = Callable[[FleetRig, Prices, float, Mode], Mode]


def _steps(series: PriceSeries, base: PriceQuote | None) -> list[tuple[float, float, PriceQuote]]:
    """(start, seconds, quote) per row; the last row lasts the median step."""
    times = [row.at for row in series.rows]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    last = statistics.median(gaps) if gaps else 3600.0
    quote = base
    out = []
    for i, row in enumerate(series.rows):
        quote = parse_update(row.update, quote)
        out.append((row.at, gaps[i] if i < len(gaps) else last, quote))
    return out


def simulate(series: PriceSeries, fleet: Sequence[FleetRig], settings: PowerSettings) -> list[StrategyResult]:
    steps = _steps(series, settings.constants)
    policy = settings.policy
    states = {rig.name: PolicyState(policy) for rig in fleet}

    def by_policy(rig: FleetRig, prices: Prices, now: float, current: Mode) -> Mode:
        return states[rig.name].update(prices, rig.profile, now).mode

    def strike_only(rig: FleetRig, prices: Prices, now: float, current: Mode) -> Mode:
        strike = policy.strike_usd_per_kwh
        if strike is None:  # the rig's break-even power price
            strike = rig.hashrate_th * prices.hashprice_usd_per_th_day / 24.0 / (rig.power_w / 1000.0)
        return Mode.CURTAIL if prices.power_usd_per_kwh > strike else Mode.MINE

    def foresight(rig: FleetRig, prices: Prices, now: float, current: Mode) -> Mode:
        econ = economics(prices, rig.profile)
        modes = [Mode.MINE, Mode.CURTAIL] + ([Mode.SERVE_AI] if rig.gpus else [])
        return max(modes, key=econ.value)

    choosers: dict[str, Chooser] = {
        "policy": by_policy,
        "always_mine": lambda rig, p, t, c: Mode.MINE,
        "always_ai": lambda rig, p, t, c: Mode.SERVE_AI if rig.gpus else Mode.MINE,
        "strike_only": strike_only,
        "perfect_foresight": foresight,
    }
    results = []
    for name in STRATEGIES:
        choose = choosers[name]
        result = StrategyResult(name, totals=ModeTotals())
        assert result.totals is not None
        cost = 0.0 if name == "perfect_foresight" else policy.switch_cost_usd
        step_net = [0.0] * len(steps)
        result.modes = [dict.fromkeys((m.value for m in Mode), 0) for _ in steps]
        for rig in fleet:
            mode = Mode.MINE
            switches = 0
            for i, (start, seconds, quote) in enumerate(steps):
                new = choose(rig, quote.prices(rig.gpu_model), start, mode)
                if new is not mode:
                    switches += 1
                    result.switch_cost_usd += cost
                    step_net[i] -= cost
                mode = new
                booked = interval(rig.unit(mode), quote, seconds)
                result.totals.add(booked)
                step_net[i] += booked.revenue_usd - booked.power_cost_usd
                result.modes[i][mode.value] += 1
                result.rig_seconds += seconds
                result.off_seconds += seconds if mode is Mode.CURTAIL else 0.0
            result.switches += switches
            result.most_switches_per_rig = max(result.most_switches_per_rig, switches)
        result.cumulative_net_usd = list(itertools.accumulate(step_net))
        results.append(result)
    return results


def render_table(results: Sequence[StrategyResult]) -> str:
    from stratumkit.api.cli import table

    head = ["strategy", "uptime", "switches", "kwh", "power_cost_usd", "revenue_usd", "switch_cost_usd", "net_usd"]
    return table(head, [[row[h] for h in head] for row in (r.to_dict() for r in results)])


def run(args: argparse.Namespace) -> int:
    try:
        series = load_price_csv(args.prices)
        fleet = load_fleet(args.fleet)
        table: dict[str, Any] = {}
        if args.policy:
            try:
                data = tomllib.loads(Path(args.policy).read_text())
            except (OSError, tomllib.TOMLDecodeError) as exc:
                raise ConfigError(f"cannot read policy {args.policy}: {exc}") from None
            table = data.get("power", data)
        settings = power_settings(table)
        results = simulate(series, fleet, settings)
        if args.plot:
            from .plot import PlotError, plot_replay

            try:
                plot_replay(args.plot, _steps(series, settings.constants), results)
            except PlotError as exc:
                raise ConfigError(str(exc)) from None
    except (BadPrice, ConfigError) as exc:
        print(f"stratumkit simulate: {exc}")
        return 2
    if args.json:
        print(json.dumps({"prices": str(args.prices), "rows": len(series), "rigs": len(fleet),
                          "results": [r.to_dict() for r in results]}, indent=2))  # fmt: skip
    else:
        hours = (series.end - series.start) / 3600.0
        print(f"{args.prices}: {len(series)} rows over {hours:.1f} h; {len(fleet)} rigs")
        print(render_table(results))
    return 0
