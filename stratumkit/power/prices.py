"""Market prices: a checked quote, and the book that says which quote holds and whether it is fresh.

Rules:
- A quote has the power price (USD/kWh, negative allowed: spot markets go below zero), the
  hashprice (USD per TH/s per day) and GPU-hour prices (a default, and per GPU model).
- An update may carry only some fields: the rest are those of the quote it updates. The first
  quote must have them all (from the configured constants or the update itself).
- Values outside sane bounds are refused with the reason, so a unit slip (USD/MWh sent as
  USD/kWh) is caught rather than acted on.
- A quote from a live feed (file, push, poll) is stale once older than ``max_age_s``; constants
  never go stale. With no quote, or a stale one, the book reports the configured safe mode.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from stratumkit.lease.policy import Prices

__all__ = ["BadPrice", "PriceBook", "PriceQuote", "PriceStatus", "check_price", "parse_update"]

#: Bounds a sane value lies in: (low, high, hint when out of them).
BOUNDS: dict[str, tuple[float, float, str]] = {
    "power_usd_per_kwh": (-10.0, 10.0, "USD per kWh (a price in USD/MWh is 1000 times larger)"),
    "hashprice_usd_per_th_day": (0.0, 10.0, "USD per TH/s per day"),
    "gpu_usd_per_hour": (0.0, 100.0, "USD per GPU-hour"),
}
FIELDS = frozenset(BOUNDS) | {"gpu_usd_per_hour_by_model"}


class BadPrice(ValueError):
    """A price update that is refused; the message says which field and why."""


def check_price(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadPrice(f"{name} must be a number, got {value!r}")
    number = float(value)
    low, high, unit = BOUNDS[name]
    if not math.isfinite(number) or not low <= number <= high:
        raise BadPrice(f"{name} must be {low:g}..{high:g} {unit}, got {value!r}")
    return number


@dataclass(frozen=True, slots=True)
class PriceQuote:
    power_usd_per_kwh: float
    hashprice_usd_per_th_day: float
    gpu_usd_per_hour: float
    gpu_usd_per_hour_by_model: Mapping[str, float] = field(default_factory=dict)

    def gpu_hour(self, model: str | None) -> float:
        """The GPU-hour price for `model` (case-insensitive), else the default."""
        if model is not None:
            for name, price in self.gpu_usd_per_hour_by_model.items():
                if name.casefold() == model.casefold():
                    return price
        return self.gpu_usd_per_hour

    def prices(self, gpu_model: str | None = None) -> Prices:
        """The policy's view for a rig with this GPU model."""
        return Prices(self.hashprice_usd_per_th_day, self.gpu_hour(gpu_model), self.power_usd_per_kwh)

    def to_dict(self) -> dict[str, Any]:
        return {
            "power_usd_per_kwh": self.power_usd_per_kwh,
            "hashprice_usd_per_th_day": self.hashprice_usd_per_th_day,
            "gpu_usd_per_hour": self.gpu_usd_per_hour,
            "gpu_usd_per_hour_by_model": dict(self.gpu_usd_per_hour_by_model),
        }


def parse_update(data: object, base: PriceQuote | None) -> PriceQuote:
    """A quote from a JSON object (a push, a poll, a CSV row) over `base`; BadPrice says why not."""
    if not isinstance(data, Mapping):
        raise BadPrice(f"prices must be a JSON object, got {type(data).__name__}")
    unknown = sorted(set(data) - FIELDS)
    if unknown:
        raise BadPrice(f"unknown price field(s): {', '.join(map(str, unknown))}; known: {', '.join(sorted(FIELDS))}")
    values: dict[str, Any] = {name: check_price(name, data[name]) for name in BOUNDS if data.get(name) is not None}
    by_model = data.get("gpu_usd_per_hour_by_model")
    if by_model is not None:
        if not isinstance(by_model, Mapping) or not all(isinstance(k, str) and k for k in by_model):
            raise BadPrice("gpu_usd_per_hour_by_model must be an object of GPU model -> USD per GPU-hour")
        values["gpu_usd_per_hour_by_model"] = {k: check_price("gpu_usd_per_hour", v) for k, v in by_model.items()}
    if base is not None:
        return replace(base, **values)
    missing = sorted(set(BOUNDS) - set(values))
    if missing:
        raise BadPrice(f"the first prices need {', '.join(missing)} (no configured constant to fall back on)")
    return PriceQuote(**values)


@dataclass(frozen=True, slots=True)
class PriceStatus:
    """What the book holds at one moment: the quote to act on (None: act on the safe mode)."""

    quote: PriceQuote | None
    source: str | None
    age_s: float | None
    fresh: bool
    safe_mode: str
    reason: str | None  # why the safe mode applies, when it does

    def to_dict(self) -> dict[str, Any]:
        return {
            "prices": None if self.quote is None else self.quote.to_dict(),
            "source": self.source,
            "age_s": self.age_s,
            "fresh": self.fresh,
            "safe_mode": self.safe_mode,
            "safe_mode_reason": self.reason,
        }


class PriceBook:
    """The latest quote, where it came from, and when (``now`` is monotonic seconds)."""

    def __init__(self, constants: PriceQuote | None, *, max_age_s: float, safe_mode: str) -> None:
        self.quote = constants
        self.source: str | None = None if constants is None else "config"
        self.updated_at: float | None = None  # None: constants, which never go stale
        self.max_age_s = max_age_s
        self.safe_mode = safe_mode
        self.updates = 0

    def update(self, data: object, source: str, now: float) -> PriceQuote:
        """Apply a partial update from `source`; BadPrice (and nothing changes) if it is refused."""
        quote = parse_update(data, self.quote)
        self.quote, self.source, self.updated_at = quote, source, now
        self.updates += 1
        return quote

    def status(self, now: float) -> PriceStatus:
        if self.quote is None:
            return PriceStatus(None, None, None, False, self.safe_mode, "no prices yet")
        age = None if self.updated_at is None else now - self.updated_at
        if age is not None and age > self.max_age_s:
            reason = f"prices from {self.source} are {age:.0f} s old (max {self.max_age_s:g} s)"
            return PriceStatus(None, self.source, age, False, self.safe_mode, reason)
        return PriceStatus(self.quote, self.source, age, True, self.safe_mode, None)
