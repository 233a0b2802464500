"""Dual-mode policy: should a rig mine, serve AI inference, or stay off (curtail)?

Pure: prices and the rig's profile in, a :class:`Decision` out; time is passed in. The only
state is the previous decision, which the caller keeps (:class:`PolicyState` does it for one
rig) and hands back.

Rules:

1. Value of each mode, in USD per hour of one rig (net of power):
   MINE = hashrate x hashprice - mining power x power price;
   SERVE_AI = GPUs x GPU-hour price - serving power x power price; CURTAIL = 0.
2. Strike. While the power price is above ``strike_usd_per_kwh`` the rig must not hash (and,
   with ``curtail_serving``, must not serve either). The strike stays in force until the
   price falls below ``strike - strike_hysteresis``. A mode the strike forbids is left at
   once, whatever the dwell.
3. Hysteresis. Otherwise the rig moves to the best mode only if it beats the current one by
   more than ``margin_usd_per_h``, so prices jittering around break-even do not flap it.
4. Dwell. And only after ``min_dwell_s`` in the current mode, since every switch costs a
   drain (loading a model, warming caches) that the margin alone does not price. When the
   strike lifts, a mode the strike imposed may be left without waiting for the dwell.
5. The first decision takes the best allowed mode. Ties go to MINE, then SERVE_AI, then CURTAIL
   (mining is the pool's default work).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass

from .errors import BadValue
from .model import RigCapabilities

__all__ = [
    "Decision",
    "Economics",
    "Mode",
    "PolicyConfig",
    "PolicyState",
    "Prices",
    "Reason",
    "RigProfile",
    "decide",
    "decide_fleet",
    "economics",
    "strike_in_force",
]

#: Hashes in one TH/s sustained for a day: converts USD/TH/day to USD per hash.
HASHES_PER_TH_DAY = 1e12 * 86_400


class Mode(enum.Enum):
    MINE = "mine"
    SERVE_AI = "serve_ai"
    CURTAIL = "curtail"


_TIE_ORDER = (Mode.MINE, Mode.SERVE_AI, Mode.CURTAIL)


class Reason(enum.Enum):
    """Why a decision came out as it did (for logs, metrics and tests)."""

    INITIAL = "initial"  # no previous decision
    BEST = "best"  # the current mode is still the best allowed one
    STRIKE = "strike"  # switched because the strike forbids the current mode
    PROFIT = "profit"  # switched: the new mode beats the old by more than the margin
    HOLD_MARGIN = "hold_margin"  # a better mode exists, but not by more than the margin
    HOLD_DWELL = "hold_dwell"  # a better mode exists, but the dwell has not elapsed


def _number(name: str, value: object, minimum: float | None = 0.0) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise BadValue(f"{name} must be a number, not {type(value).__name__}")
    number = float(value)
    if not math.isfinite(number):
        raise BadValue(f"{name} must be finite, got {number}")
    if minimum is not None and number < minimum:
        raise BadValue(f"{name} must be >= {minimum}, got {number}")
    return number


@dataclass(frozen=True, slots=True)
class Prices:
    """Market inputs. Power prices may be negative (it happens on spot markets)."""

    hashprice_usd_per_th_day: float
    gpu_hour_usd: float
    power_usd_per_kwh: float

    def __post_init__(self) -> None:
        _number("hashprice_usd_per_th_day", self.hashprice_usd_per_th_day)
        _number("gpu_hour_usd", self.gpu_hour_usd)
        _number("power_usd_per_kwh", self.power_usd_per_kwh, None)

    @classmethod
    def from_usd_per_hash(cls, usd_per_hash: float, gpu_hour_usd: float, power_usd_per_kwh: float) -> Prices:
        return cls(usd_per_hash * HASHES_PER_TH_DAY, gpu_hour_usd, power_usd_per_kwh)

    @property
    def usd_per_hash(self) -> float:
        return self.hashprice_usd_per_th_day / HASHES_PER_TH_DAY


@dataclass(frozen=True, slots=True)
class RigProfile:
    """What the policy needs to know of a rig. ``serve_power_w`` defaults to ``power_w``."""

    hashrate: float
    power_w: float
    gpus: int
    serve_power_w: float | None = None

    def __post_init__(self) -> None:
        _number("hashrate", self.hashrate)
        _number("power_w", self.power_w)
        if not isinstance(self.gpus, int) or isinstance(self.gpus, bool) or self.gpus < 0:
            raise BadValue(f"gpus must be an int >= 0, got {self.gpus!r}")
        if self.serve_power_w is not None:
            _number("serve_power_w", self.serve_power_w)

    @classmethod
    def from_capabilities(cls, caps: RigCapabilities, serve_power_w: float | None = None) -> RigProfile:
        return cls(caps.hashrate, caps.power_w, caps.gpu_count, serve_power_w)


@dataclass(frozen=True, slots=True)
class Economics:
    """Net value of each mode for one rig, USD per hour."""

    mine_usd_per_h: float
    serve_usd_per_h: float
    curtail_usd_per_h: float = 0.0

    def value(self, mode: Mode) -> float:
        if mode is Mode.MINE:
            return self.mine_usd_per_h
        if mode is Mode.SERVE_AI:
            return self.serve_usd_per_h
        return self.curtail_usd_per_h


def economics(prices: Prices, rig: RigProfile) -> Economics:
    serve_power_w = rig.power_w if rig.serve_power_w is None else rig.serve_power_w
    mine = rig.hashrate * prices.usd_per_hash * 3600.0 - rig.power_w / 1000.0 * prices.power_usd_per_kwh
    serve = rig.gpus * prices.gpu_hour_usd - serve_power_w / 1000.0 * prices.power_usd_per_kwh
    return Economics(mine_usd_per_h=mine, serve_usd_per_h=serve)


@dataclass(frozen=True, slots=True)
class PolicyConfig:
    margin_usd_per_h: float = 0.0
    min_dwell_s: float = 0.0
    strike_usd_per_kwh: float | None = None
    strike_hysteresis_usd_per_kwh: float = 0.0
    curtail_serving: bool = False

    def __post_init__(self) -> None:
        _number("margin_usd_per_h", self.margin_usd_per_h)
        _number("min_dwell_s", self.min_dwell_s)
        if self.strike_usd_per_kwh is not None:
            _number("strike_usd_per_kwh", self.strike_usd_per_kwh, None)
        _number("strike_hysteresis_usd_per_kwh", self.strike_hysteresis_usd_per_kwh)
        if not isinstance(self.curtail_serving, bool):
            raise BadValue("curtail_serving must be a bool")


@dataclass(frozen=True, slots=True)
class Decision:
    """A decision, and the memory the next decision needs.

    ``since`` is when the rig entered ``mode`` (the dwell counts from it); ``decided_at`` is
    when this decision was made. ``strike`` says whether the strike was in force, and
    ``forced`` whether ``mode`` was entered because of it.
    """

    mode: Mode
    reason: Reason
    since: float
    decided_at: float
    strike: bool
    forced: bool
    economics: Economics

    @property
    def switched(self) -> bool:
        return self.reason in (Reason.STRIKE, Reason.PROFIT)


def strike_in_force(power_usd_per_kwh: float, config: PolicyConfig, was_in_force: bool) -> bool:
    """Rule 2: enter above the strike, leave only below strike minus hysteresis."""
    strike = config.strike_usd_per_kwh
    if strike is None:
        return False
    if was_in_force:
        return power_usd_per_kwh >= strike - config.strike_hysteresis_usd_per_kwh
    return power_usd_per_kwh > strike


def decide(
    prices: Prices,
    rig: RigProfile,
    config: PolicyConfig,
    now: float,
    last: Decision | None = None,
) -> Decision:
    """Apply rules 1-5 to one rig; ``last`` is the previous decision for it, if any."""
    now = _number("now", now, None)
    econ = economics(prices, rig)
    strike = strike_in_force(prices.power_usd_per_kwh, config, last is not None and last.strike)
    allowed = [
        mode
        for mode in _TIE_ORDER
        if not (strike and (mode is Mode.MINE or (mode is Mode.SERVE_AI and config.curtail_serving)))
    ]
    best = max(allowed, key=lambda m: (econ.value(m), -_TIE_ORDER.index(m)))

    def made(mode: Mode, reason: Reason, since: float, forced: bool) -> Decision:
        return Decision(mode, reason, since, now, strike, forced, econ)

    if last is None:
        return made(best, Reason.INITIAL, now, strike and best is not Mode.MINE)
    current = last.mode
    if current not in allowed:
        return made(best, Reason.STRIKE, now, True)
    if best is current or econ.value(best) <= econ.value(current):
        return made(current, Reason.BEST, last.since, last.forced and strike)
    if econ.value(best) - econ.value(current) <= config.margin_usd_per_h:
        return made(current, Reason.HOLD_MARGIN, last.since, last.forced and strike)
    dwell_exempt = last.forced and not strike
    if not dwell_exempt and now - last.since < config.min_dwell_s:
        return made(current, Reason.HOLD_DWELL, last.since, last.forced)
    return made(best, Reason.PROFIT, now, False)


class PolicyState:
    """The policy for one rig: remembers its last decision and feeds it back."""

    def __init__(self, config: PolicyConfig, last: Decision | None = None) -> None:
        self.config = config
        self.last = last

    @property
    def mode(self) -> Mode | None:
        return None if self.last is None else self.last.mode

    def update(self, prices: Prices, rig: RigProfile, now: float) -> Decision:
        decision = decide(prices, rig, self.config, now, self.last)
        self.last = decision
        return decision


def decide_fleet(
    prices: Prices,
    rigs: Mapping[str, RigProfile],
    config: PolicyConfig,
    now: float,
    last: Mapping[str, Decision] | None = None,
) -> dict[str, Decision]:
    """:func:`decide` for every rig; rigs differ in efficiency, so each decides alone."""
    previous = {} if last is None else last
    return {rig_id: decide(prices, profile, config, now, previous.get(rig_id)) for rig_id, profile in rigs.items()}
