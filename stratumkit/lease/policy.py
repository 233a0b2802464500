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
   price falls below ``strike - strike_hysteresis``.
3. Hysteresis and switch cost. Otherwise the rig moves to the best mode only if it beats the
   current one by more than ``margin_usd_per_h`` plus the switch's cost spread over
   ``payback_s`` (``switch_cost_usd``: drain, model warm-up, lost shares), so prices jittering
   around break-even do not flap it. A mode the strike forbids is left for the best allowed
   one whatever the margin.
4. Entry delay. A switch is made only once the same new mode has been wanted for
   ``entry_delay_s`` without a break (the condition held), strike or not.
5. Dwell. And only after ``min_dwell_s`` in the current mode (``min_off_s`` too, when the
   current mode is CURTAIL). Every switch waits for it, into the strike and out of it: a price
   swinging around the strike moves a rig at most once per dwell. Demand response that must act
   at once is an operator curtailment (:mod:`stratumkit.power`), which overrides this policy.
6. The first decision takes the best allowed mode. Ties go to MINE, then SERVE_AI, then CURTAIL
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
    HOLD_ENTRY = "hold_entry"  # a better mode exists, but has not been wanted for the entry delay


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
    entry_delay_s: float = 0.0
    min_off_s: float = 0.0
    switch_cost_usd: float = 0.0
    payback_s: float = 3600.0

    def __post_init__(self) -> None:
        _number("margin_usd_per_h", self.margin_usd_per_h)
        _number("min_dwell_s", self.min_dwell_s)
        _number("entry_delay_s", self.entry_delay_s)
        _number("min_off_s", self.min_off_s)
        _number("switch_cost_usd", self.switch_cost_usd)
        if _number("payback_s", self.payback_s) <= 0:
            raise BadValue(f"payback_s must be > 0, got {self.payback_s}")
        if self.strike_usd_per_kwh is not None:
            _number("strike_usd_per_kwh", self.strike_usd_per_kwh, None)
        _number("strike_hysteresis_usd_per_kwh", self.strike_hysteresis_usd_per_kwh)
        if not isinstance(self.curtail_serving, bool):
            raise BadValue("curtail_serving must be a bool")

    @property
    def hurdle_usd_per_h(self) -> float:
        """How much more per hour a new mode must earn to be worth a switch (rule 3)."""
        return self.margin_usd_per_h + self.switch_cost_usd * 3600.0 / self.payback_s

    def dwell_s(self, mode: Mode) -> float:
        """The least time in `mode` before the next switch (rule 5)."""
        return max(self.min_dwell_s, self.min_off_s) if mode is Mode.CURTAIL else self.min_dwell_s


@dataclass(frozen=True, slots=True)
class Decision:
    """A decision, and the memory the next decision needs.

    ``since`` is when the rig entered ``mode`` (the dwell counts from it); ``decided_at`` is
    when this decision was made. ``strike`` says whether the strike was in force, and
    ``forced`` whether ``mode`` was entered because of it. ``wants`` is the mode a held
    decision would switch to, wanted without a break since ``wants_since`` (the entry delay
    counts from it).
    """

    mode: Mode
    reason: Reason
    since: float
    decided_at: float
    strike: bool
    forced: bool
    economics: Economics
    wants: Mode | None = None
    wants_since: float | None = None

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
    """Apply rules 1-6 to one rig; ``last`` is the previous decision for it, if any."""
    now = _number("now", now, None)
    econ = economics(prices, rig)
    strike = strike_in_force(prices.power_usd_per_kwh, config, last is not None and last.strike)
    allowed = [
        mode
        for mode in _TIE_ORDER
        if not (strike and (mode is Mode.MINE or (mode is Mode.SERVE_AI and config.curtail_serving)))
    ]
    best = max(allowed, key=lambda m: (econ.value(m), -_TIE_ORDER.index(m)))

    if last is None:
        return Decision(best, Reason.INITIAL, now, now, strike, strike and best is not Mode.MINE, econ)
    current = last.mode

    def stay(reason: Reason, wants: Mode | None = None) -> Decision:
        wants_since = None
        if wants is not None:
            wants_since = last.wants_since if last.wants is wants and last.wants_since is not None else now
        return Decision(current, reason, last.since, now, strike, last.forced and strike, econ, wants, wants_since)

    forced = current not in allowed
    if not forced:
        if best is current or econ.value(best) <= econ.value(current):
            return stay(Reason.BEST)
        if econ.value(best) - econ.value(current) <= config.hurdle_usd_per_h:
            return stay(Reason.HOLD_MARGIN)
    held = stay(Reason.HOLD_ENTRY, best)
    assert held.wants_since is not None
    if now - held.wants_since < config.entry_delay_s:
        return held
    if now - last.since < config.dwell_s(current):
        return stay(Reason.HOLD_DWELL, best)
    return Decision(best, Reason.STRIKE if forced else Reason.PROFIT, now, now, strike, forced, econ)


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
