"""An operator's curtailment: what it asks for, and which units it sheds.

Rules:
- The target is a power (``kw``), a fraction of the fleet's declared power (``fraction``),
  named units (``rigs``: unit ids or worker names) or everything (``all``); ``until`` (unix
  seconds) ends it on its own, else it holds until released.
- Only agent-managed rigs can be switched off: they are shed least efficient first (most J/TH;
  no hashrate counts as least efficient), until the shed power meets the target. Rigs under an
  integrator lease are kept (leases keep precedence) and listed as such, unless the request
  says ``override_leases``: then they are shed like the others and listed as overridden (the
  service ends their leases; a lease bills GPU-seconds only while served, so the integrator
  pays nothing from the curtailment on).
- Plain miners cannot be switched off by a pool: named ones (and every one with ``all``) are
  sent no work, and are listed as not curtailable with no power counted as shed.
- The answer says how many kW were shed against the target.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["BadCurtail", "CurtailRequest", "Shed", "Unit", "choose", "parse_curtail"]


class BadCurtail(ValueError):
    """A curtailment request that is refused; the message says why."""


@dataclass(frozen=True, slots=True)
class Unit:
    """One connection as the power layer sees it."""

    unit_id: str
    worker: str | None
    rig: bool  # an agent-managed rig (it stops hashing on curtail); else a plain miner
    hashrate: float  # H/s
    power_w: float
    gpus: int = 0
    gpu_model: str | None = None
    leased: bool = False  # bound to an integrator lease
    mode: str = "mining"  # what its connection does now: mining, diverted or curtailed

    @property
    def j_per_th(self) -> float:
        return math.inf if self.hashrate <= 0 else self.power_w / (self.hashrate / 1e12)


@dataclass(frozen=True, slots=True)
class CurtailRequest:
    kw: float | None = None
    fraction: float | None = None
    rigs: tuple[str, ...] = ()
    all: bool = False
    until: float | None = None
    override_leases: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"kw": self.kw, "fraction": self.fraction, "rigs": list(self.rigs), "all": self.all,
                "until": self.until, "override_leases": self.override_leases}  # fmt: skip


def parse_curtail(body: object, wall_now: float) -> CurtailRequest:
    if not isinstance(body, Mapping):
        raise BadCurtail("a curtailment must be a JSON object")
    unknown = sorted(set(body) - {"kw", "fraction", "rigs", "all", "until", "duration_s", "override_leases"})
    if unknown:
        raise BadCurtail(f"unknown field(s): {', '.join(map(str, unknown))}")
    given = [k for k in ("kw", "fraction", "rigs", "all") if body.get(k) not in (None, False)]
    if len(given) != 1:
        raise BadCurtail("give exactly one target: kw, fraction, rigs or all")
    kw = fraction = None
    rigs: tuple[str, ...] = ()
    everything = False
    if "kw" in given:
        kw = _positive("kw", body["kw"])
    elif "fraction" in given:
        fraction = _positive("fraction", body["fraction"])
        if fraction > 1:
            raise BadCurtail(f"fraction must be 0..1 of the fleet, got {fraction}")
    elif "rigs" in given:
        names = body["rigs"]
        if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
            raise BadCurtail("rigs must be a non-empty list of rig ids or worker names")
        rigs = tuple(names)
    elif body["all"] is not True:
        raise BadCurtail("all must be true")
    else:
        everything = True
    until = None
    if body.get("until") is not None and body.get("duration_s") is not None:
        raise BadCurtail("give until or duration_s, not both")
    if body.get("until") is not None:
        until = _positive("until", body["until"])
        if until <= wall_now:
            raise BadCurtail(f"until must be in the future (now is {wall_now:.0f})")
    elif body.get("duration_s") is not None:
        until = wall_now + _positive("duration_s", body["duration_s"])
    override = body.get("override_leases", False)
    if type(override) is not bool:
        raise BadCurtail(f"override_leases must be true or false, got {override!r}")
    return CurtailRequest(kw, fraction, rigs, everything, until, override)


def _positive(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise BadCurtail(f"{name} must be a positive number, got {value!r}")
    return float(value)


@dataclass(frozen=True, slots=True)
class Shed:
    curtailed: tuple[str, ...]  # rigs switched off, least efficient first
    withheld: tuple[str, ...]  # plain miners sent no work (not curtailable)
    kept_leased: tuple[str, ...]
    target_kw: float | None
    shed_kw: float
    unknown: tuple[str, ...] = ()
    overridden: tuple[str, ...] = ()  # leased rigs shed anyway (override_leases)

    def to_dict(self) -> dict[str, Any]:
        return {
            "curtailed": list(self.curtailed),
            "not_curtailable": list(self.withheld),
            "kept_leased": list(self.kept_leased),
            "unknown": list(self.unknown),
            "leases_overridden": list(self.overridden),
            "target_kw": self.target_kw,
            "shed_kw": round(self.shed_kw, 6),
        }


def choose(request: CurtailRequest, units: Sequence[Unit]) -> Shed:
    """Which units `request` sheds among `units`."""
    rigs = [u for u in units if u.rig]
    fleet_kw = sum(u.power_w for u in rigs) / 1000.0
    if request.rigs:
        named = set(request.rigs)
        picked = [u for u in units if u.unit_id in named or u.worker in named]
        seen = {u.unit_id for u in picked} | {u.worker for u in picked}
        unknown = tuple(n for n in request.rigs if n not in seen)
        target = None
    else:
        picked = list(units) if request.all else rigs
        unknown = ()
        target = request.kw if request.kw is not None else None
        if request.fraction is not None:
            target = request.fraction * fleet_kw
    override = request.override_leases
    kept = () if override else tuple(u.unit_id for u in picked if u.leased)
    free = sorted((u for u in picked if override or not u.leased), key=lambda u: (-u.j_per_th, u.unit_id))
    curtailed: list[str] = []
    withheld: list[str] = []
    shed = 0.0
    for unit in free:
        if not unit.rig:
            if request.all or request.rigs:
                withheld.append(unit.unit_id)
            continue
        if target is not None and shed >= target * 1000.0 - 1e-9:
            break
        curtailed.append(unit.unit_id)
        shed += unit.power_w
    if request.all:
        target = fleet_kw
    overridden = tuple(u.unit_id for u in units if u.leased and u.unit_id in curtailed)
    return Shed(tuple(curtailed), tuple(withheld), kept, target, shed / 1000.0, unknown, overridden)
