"""The power controller: the policy applied to every unit, and operator curtailments over it.

Pure: units, the price book's status, ``now`` (monotonic) and ``wall`` (unix) in; the mode each
unit should be in out, as :class:`Order` values the service carries out. Rules, in precedence:

1. A unit an operator curtailment holds is curtailed until the curtailment is released or its
   ``until`` passes; then the policy decides it afresh (its dwell starts over). A curtailment
   holds a leased unit only if it overrode the lease.
2. A unit bound to an integrator lease is left alone (leases keep precedence over the policy).
3. With no fresh prices, every unit goes to the safe mode (and its policy starts over after).
4. Otherwise :func:`stratumkit.lease.policy.decide` decides, per unit, with its own GPU-hour
   price. SERVE_AI is only offered when the caller can lend (``can_lend``: the pool's service
   has an auto-lease queue holding jobs).
An order is given only where the wanted mode differs from what the unit's connection does now,
so a unit moved by someone else (a lease that ended) is brought back to the wanted mode.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from stratumkit.lease.policy import Decision, Mode, PolicyConfig, PolicyState, RigProfile

from .curtail import CurtailRequest, Shed, Unit, choose
from .prices import PriceStatus

__all__ = ["CONNECTION_MODES", "Order", "PowerController"]

#: A connection's mode (RigMode values) as a policy mode.
CONNECTION_MODES = {"mining": Mode.MINE, "diverted": Mode.SERVE_AI, "curtailed": Mode.CURTAIL}


@dataclass(frozen=True, slots=True)
class Order:
    unit_id: str
    mode: Mode
    reason: str


class PowerController:
    def __init__(self, policy: PolicyConfig, *, history: int = 1000) -> None:
        self.policy = policy
        self.states: dict[str, PolicyState] = {}
        self.latest: dict[str, dict[str, Any]] = {}  # unit id -> its latest decision, as JSON
        self.history: deque[dict[str, Any]] = deque(maxlen=history)  # orders given, newest last
        self.operator: dict[str, float | None] = {}  # unit id -> until (unix), held by an operator
        self.curtailment: tuple[CurtailRequest, Shed] | None = None
        self.switches = 0

    # ------------------------------------------------------------------ operator

    def curtail(self, request: CurtailRequest, units: Sequence[Unit]) -> Shed:
        """Hold the units `request` sheds (replacing any earlier curtailment)."""
        shed = choose(request, units)
        self.operator = {unit_id: request.until for unit_id in shed.curtailed + shed.withheld}
        self.curtailment = (request, shed)
        return shed

    def release(self) -> list[str]:
        """End the operator's curtailment; the units it held, most efficient first."""
        if self.curtailment is None:
            return []
        shed = self.curtailment[1]
        released = [*reversed(shed.curtailed), *shed.withheld]
        self._end_operator()
        return released

    def _end_operator(self) -> None:
        for unit_id in self.operator:
            self.states.pop(unit_id, None)
        self.operator = {}
        self.curtailment = None

    # ------------------------------------------------------------------ the policy

    def step(
        self, units: Sequence[Unit], status: PriceStatus, now: float, wall: float, *, can_lend: bool
    ) -> list[Order]:
        if self.operator and all(u is not None and u <= wall for u in self.operator.values()):
            self._end_operator()
        present = {u.unit_id for u in units}
        for gone in set(self.states) - present:
            del self.states[gone]
        for gone in set(self.latest) - present:
            del self.latest[gone]
        orders: list[Order] = []
        quote = status.quote
        for unit in units:
            actual = CONNECTION_MODES.get(unit.mode, Mode.MINE)
            decision: Decision | None = None
            inputs: dict[str, Any] = {"power_w": unit.power_w, "hashrate": unit.hashrate, "gpus": unit.gpus}
            if unit.unit_id in self.operator:
                want, reason = Mode.CURTAIL, "operator curtailment"
            elif unit.leased:
                want, reason = actual, "integrator lease (leases keep precedence)"
            elif quote is None:
                want = Mode.CURTAIL if status.safe_mode == "curtail" else Mode.MINE
                reason = f"safe mode {status.safe_mode}: {status.reason}"
                self.states.pop(unit.unit_id, None)
            else:
                prices = quote.prices(unit.gpu_model)
                lendable = can_lend and unit.rig and unit.gpus > 0
                profile = RigProfile(unit.hashrate, unit.power_w, unit.gpus if lendable else 0)
                state = self.states.setdefault(unit.unit_id, PolicyState(self.policy))
                decision = state.update(prices, profile, now)
                want, reason = decision.mode, decision.reason.value
                inputs.update(
                    power_usd_per_kwh=prices.power_usd_per_kwh,
                    hashprice_usd_per_th_day=prices.hashprice_usd_per_th_day,
                    gpu_usd_per_hour=prices.gpu_hour_usd,
                    mine_usd_per_h=decision.economics.mine_usd_per_h,
                    serve_usd_per_h=decision.economics.serve_usd_per_h if lendable else None,
                    strike=decision.strike,
                )
            record = {
                "unit": unit.unit_id,
                "rig": unit.rig,
                "mode": want.value,
                "actual": actual.value,
                "reason": reason,
                "since": None if decision is None else decision.since,
                "wants": None if decision is None or decision.wants is None else decision.wants.value,
                "inputs": inputs,
                "decided_at": wall,
            }
            self.latest[unit.unit_id] = record
            if want is not actual and (not unit.leased or unit.unit_id in self.operator):
                orders.append(Order(unit.unit_id, want, reason))
                self.history.append(record)
                self.switches += 1
        return orders

    def view(self) -> dict[str, Any]:
        request = None if self.curtailment is None else self.curtailment[0].to_dict()
        shed = None if self.curtailment is None else self.curtailment[1].to_dict()
        return {
            "units": sorted(self.latest.values(), key=lambda r: r["unit"]),
            "recent_orders": list(self.history)[-50:],
            "orders_total": self.switches,
            "curtailment": None if request is None else {"request": request, "result": shed},
        }
