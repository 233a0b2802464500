"""The ``[power]`` table of the pool configuration: prices, the policy, curtailment, accounting.

Every key is checked at start; a mistake is one ``ConfigError`` line naming ``power.<key>`` and
what to do. Unknown keys are refused, like the rest of the configuration.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from stratumkit.lease.errors import BadValue
from stratumkit.lease.policy import PolicyConfig
from stratumkit.server.config import ConfigError

from .prices import BadPrice, PriceQuote, parse_update

__all__ = ["SAFE_MODES", "PowerSettings", "power_settings"]

SAFE_MODES = ("mine", "curtail")

_POLICY_KEYS = {
    "margin_usd_per_h": "margin_usd_per_h",
    "min_dwell_s": "min_dwell_s",
    "entry_delay_s": "entry_delay_s",
    "min_off_s": "min_off_s",
    "switch_cost_usd": "switch_cost_usd",
    "payback_s": "payback_s",
    "strike_usd_per_kwh": "strike_usd_per_kwh",
    "strike_hysteresis_usd_per_kwh": "strike_hysteresis_usd_per_kwh",
    "curtail_serving": "curtail_serving",
}
_PRICE_KEYS = ("power_usd_per_kwh", "hashprice_usd_per_th_day", "gpu_usd_per_hour", "gpu_usd_per_hour_by_model")
_OTHER_KEYS = {
    "price_file": (str, None),
    "price_file_speed": (float, 1.0),
    "price_file_clock": (str, "start"),
    "price_url": (str, None),
    "price_poll_interval_s": (float, 60.0),
    "price_max_age_s": (float, 900.0),
    "safe_mode": (str, "mine"),
    "policy_interval_s": (float, 60.0),
    "auto_lease_queue": (str, None),
    "auto_lease_duration_s": (float, 3600.0),
    "miner_j_per_th": (float, 30.0),
    "co2_g_per_kwh": (float, 0.0),
    "sla_restart_credit_s": (float, 1.0),
}


@dataclass(frozen=True, slots=True)
class PowerSettings:
    constants: PriceQuote | None = None
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    price_file: str | None = None
    price_file_speed: float = 1.0  # series seconds per wall second (the file is replayed from start)
    price_file_clock: str = "start"  # start: replayed from the pool's start; wall: each row at its own time
    price_url: str | None = None
    price_poll_interval_s: float = 60.0
    price_max_age_s: float = 900.0
    safe_mode: str = "mine"
    policy_interval_s: float = 60.0
    auto_lease_queue: str | None = None  # rigs worth more serving AI are lent to it while it has jobs
    auto_lease_duration_s: float = 3600.0
    miner_j_per_th: float = 30.0  # plain miners' power, from their estimated hashrate
    co2_g_per_kwh: float = 0.0
    sla_restart_credit_s: float = 1.0  # rig-seconds a lease with an SLA is credited per forced restart


def _typed(key: str, value: Any, kind: type) -> Any:
    if kind is float and type(value) in (int, float):
        return float(value)
    if type(value) is kind:
        return value
    raise ConfigError(f"power.{key} must be {kind.__name__}, got {type(value).__name__} {value!r}")


def power_settings(table: Mapping[str, Any]) -> PowerSettings:
    known = set(_POLICY_KEYS) | set(_PRICE_KEYS) | set(_OTHER_KEYS)
    unknown = sorted(set(table) - known)
    if unknown:
        raise ConfigError(f"unknown key(s) in [power]: {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    prices = {k: table[k] for k in _PRICE_KEYS if k in table}
    constants = None
    if prices:
        try:
            constants = parse_update(prices, None)
        except BadPrice as exc:
            raise ConfigError(
                f"power: {exc} (set all of power_usd_per_kwh, hashprice_usd_per_th_day, gpu_usd_per_hour)"
            ) from None
    policy_args = {field: table[key] for key, field in _POLICY_KEYS.items() if key in table}
    try:
        policy = PolicyConfig(**policy_args)
    except BadValue as exc:
        raise ConfigError(f"power.{exc}") from None
    other: dict[str, Any] = {}
    for key, (kind, default) in _OTHER_KEYS.items():
        other[key] = default if key not in table else _typed(key, table[key], kind)
    if other["price_file_clock"] not in ("start", "wall"):
        raise ConfigError(f"power.price_file_clock must be start or wall, got {other['price_file_clock']!r}")
    if other["safe_mode"] not in SAFE_MODES:
        raise ConfigError(f"power.safe_mode must be one of {', '.join(SAFE_MODES)}, got {other['safe_mode']!r}")
    for key in ("price_file_speed", "price_poll_interval_s", "price_max_age_s", "policy_interval_s",
                "auto_lease_duration_s"):  # fmt: skip
        if not other[key] > 0:
            raise ConfigError(f"power.{key} must be > 0, got {other[key]!r}")
    for key in ("miner_j_per_th", "co2_g_per_kwh", "sla_restart_credit_s"):
        if other[key] < 0:
            raise ConfigError(f"power.{key} must be >= 0, got {other[key]!r}")
    url = other["price_url"]
    if url is not None and not url.startswith(("http://", "https://")):
        raise ConfigError(f"power.price_url must be an http:// or https:// URL, got {url!r}")
    return PowerSettings(constants=constants, policy=policy, **other)
