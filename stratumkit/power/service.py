"""The power service: prices in, the power controller run on trio's clock, its orders carried out.

It reads the pool's connections and the lease service's rigs as :class:`~.curtail.Unit` values
(a plain miner's hashrate is estimated from its difficulty and the share interval, its power
from ``miner_j_per_th``), runs :class:`~.controller.PowerController` on every price change, every
operator call and every ``policy_interval_s``, and carries out its orders on the connections:

- curtail: ``set_mode(CURTAILED)`` (no more work; shares refused) and, to a registered rig,
  ``stratumkit.rig.curtail [true]`` so the agent stops hashing;
- mine: ``stratumkit.rig.curtail [false]`` to a rig, then ``set_mode(MINING)``: fresh
  difficulty (a rig's first share expected within ``FIRST_SHARE_AFTER_RESTORE_S``) and a clean job;
- serve AI (only with ``auto_lease_queue`` set, and only while that queue holds jobs): a
  one-rig lease naming the rig (``rigs: [rig_id]`` in its selector) on that queue, owned by
  ``POLICY_OWNER``, through the lease service, so exactly the rigs the policy picked are lent,
  whatever other idle rigs there are. A rig the policy lent is taken back by cancelling its
  lease. Leases of any other owner are integrators' and the policy leaves their rigs alone.

Steps run one at a time (a lock): a step awaits the queue's counts and the lease service.
Every order is published on the lease service's event stream (``power.order``) and logged.
Energy and money are booked at every step (:class:`~.energy.EnergyMeter`); leases are reported
with their wall-clock start and end (the controller's times, translated to unix time).

On a shared lease plane (``on_plane``) the service runs on the leader only, over the leader's
lease service: every registered rig of the plane is a unit (its connection is the lease service's
link, a :class:`~stratumkit.plane.host.RemoteRigConnection` for a rig of any front end, the
leader's own included), and the orders go to it through that front end's relay. Plain miners
are units only on the leader's own stratum port: those of other front ends are not reached
(not counted, not curtailed, sent work as usual), and a curtailment's answer says so
(``not_reached``). An operator curtailment is kept in the plane's Redis (``keeper``: saved when
it is made or released, loaded by the next leader's service at its start, which holds the same
units); the rest of its state (prices posted through the API, the energy meters, the policy's
dwell, the orders' history) is in memory and starts over on a leader change. On a plane the
policy also runs ``FIRST_STEP_ON_PLANE_S`` after the service starts and then every
``policy_interval_s`` even with no prices, so a new leader brings back to the safe mode a rig an
old one left curtailed.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Protocol

import structlog
import trio

from stratumkit.api.metrics import _family as metric_family
from stratumkit.lease.accounting import sla
from stratumkit.lease.errors import LeaseError, RequestError
from stratumkit.lease.policy import Mode
from stratumkit.protocol.rig import RigCurtail
from stratumkit.queue.engine import QueueError
from stratumkit.session.ports import RigConnection, RigMode

from .controller import PowerController
from .curtail import CurtailRequest, Shed, Unit, parse_curtail
from .energy import EnergyMeter
from .feeds import follow_series, poll_url, replay_series
from .prices import PriceBook
from .series import PriceSeries, load_price_csv
from .settings import PowerSettings

if TYPE_CHECKING:
    from stratumkit.lease.service import LeaseService
    from stratumkit.server.pool import Pool

__all__ = ["FIRST_SHARE_AFTER_RESTORE_S", "NOT_REACHED", "POLICY_OWNER", "PowerService"]

log = structlog.get_logger("stratumkit.power")

#: A restored rig's first share difficulty is set so that a share is expected this soon.
FIRST_SHARE_AFTER_RESTORE_S = 0.1
#: On a shared plane, a new leader's first step comes this long after it took the plane (or sooner
#: on a price or an operator call), once the front ends have said hello for their rigs.
FIRST_STEP_ON_PLANE_S = 1.0
#: The owner of the leases the policy makes (the auto-lease queue's).
POLICY_OWNER = "stratumkit.power"
#: On a shared plane, what a curtailment does not reach (its answer's ``not_reached``).
NOT_REACHED = "plain (non-agent) miners on front ends other than the leader: not counted, not curtailed, still mining"


class CurtailmentKeeper(Protocol):
    """Where an operator curtailment outlives the service (a shared plane's Redis)."""

    async def save(self, record: dict[str, Any] | None) -> None:
        """Keep `record` (None: there is none now)."""
        ...

    async def load(self) -> dict[str, Any] | None: ...


class PowerService:
    def __init__(
        self,
        settings: PowerSettings,
        pool: Pool,
        leases: LeaseService,
        *,
        on_plane: bool = False,
        series: PriceSeries | None = None,
    ) -> None:
        """`series`: the price file already read (else it is read here, BadPrice if it does not)."""
        self.settings = settings
        self.on_plane = on_plane
        self.pool = pool
        self.leases = leases
        self.book = PriceBook(settings.constants, max_age_s=settings.price_max_age_s, safe_mode=settings.safe_mode)
        self.controller = PowerController(settings.policy)
        self.meter = EnergyMeter(settings.co2_g_per_kwh, settings.policy.switch_cost_usd)
        if series is None and settings.price_file is not None:
            series = load_price_csv(settings.price_file)
        self.series = series
        self._wake = trio.Event()
        self._conns: dict[str, RigConnection] = {}
        self._lock = trio.Lock()
        self.keeper: CurtailmentKeeper | None = None
        leases.sla_restart_s = settings.sla_restart_credit_s
        leases.gpu_hour_price = self.gpu_hour_price

    # ------------------------------------------------------------------ running

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        cfg = self.settings
        async with trio.open_nursery() as nursery:
            if self.series is not None and cfg.price_file_clock == "wall":
                nursery.start_soon(follow_series, self.series, self._feed)
            elif self.series is not None:
                nursery.start_soon(replay_series, self.series, cfg.price_file_speed, self._feed)
            if cfg.price_url is not None:
                nursery.start_soon(poll_url, cfg.price_url, cfg.price_poll_interval_s, self._feed)
            await self._restore()
            task_status.started()
            if self.on_plane:  # a new leader: once the front ends said hello for their rigs
                with trio.move_on_after(FIRST_STEP_ON_PLANE_S):
                    await self._wake.wait()
                self._wake = trio.Event()
                await self.step()
            while True:
                # with no prices and no curtailment there is nothing to decide on a timer (a
                # pool without a [power] table never walks its connections for it); on a plane
                # there may be rigs an earlier leader left curtailed
                idle = (
                    self.book.quote is None
                    and not self.controller.operator
                    and cfg.safe_mode == "mine"
                    and not self.on_plane
                )
                with trio.move_on_after(math.inf if idle else cfg.policy_interval_s):
                    await self._wake.wait()
                self._wake = trio.Event()
                await self.step()

    async def _restore(self) -> None:
        """The curtailment the keeper holds (an earlier leader's), in force again."""
        if self.keeper is None:
            return
        try:
            record = await self.keeper.load()
            if record is None:
                return
            request = CurtailRequest(**{**record["request"], "rigs": tuple(record["request"]["rigs"])})
            kept = record["shed"]
            shed = Shed(
                tuple(kept["curtailed"]),
                tuple(kept["withheld"]),
                tuple(kept["kept_leased"]),
                None if kept["target_kw"] is None else float(kept["target_kw"]),
                float(kept["shed_kw"]),
                tuple(kept["unknown"]),
                tuple(kept["overridden"]),
            )
            operator = {str(unit): until for unit, until in record["operator"].items()}
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            log.error("kept curtailment not restored", error=repr(exc))
            return
        self.controller.curtailment = (request, shed)
        self.controller.operator = operator
        log.info("operator curtailment restored", units=sorted(operator))

    async def _keep(self) -> None:
        if self.keeper is None:
            return
        curtailment = self.controller.curtailment
        record = None
        if curtailment is not None:
            request, shed = curtailment
            record = {"request": request.to_dict(), "shed": dataclasses.asdict(shed),
                      "operator": dict(self.controller.operator)}  # fmt: skip
        await self.keeper.save(record)

    def _feed(self, data: object, source: str) -> None:
        self.book.update(data, source, trio.current_time())
        self.poke()

    def units(self) -> list[Unit]:
        """The pool's authorized connections as units (and their connections, by unit id)."""
        units: list[Unit] = []
        conns: dict[str, RigConnection] = {}
        links = self.leases.links
        interval = self.pool.config.share_interval
        for conn in list(self.pool.sessions):
            session = conn.session
            if conn.closed or session.worker is None:
                continue
            rig_id = session.rig_id
            link = links.get(rig_id or "")
            if self.on_plane and rig_id is not None and link is not None:
                continue  # the plane's rig: its unit is its link's (below)
            if rig_id is not None and link is not None and link.conn is conn:
                unit = self._rig_unit(rig_id, session.worker, conn)
            else:
                hashrate = session.difficulty * 2**32 / interval
                power = hashrate / 1e12 * self.settings.miner_j_per_th
                unit = Unit(f"{session.worker}@{conn.peer}", session.worker, False, hashrate, power,
                            mode=conn.mode.value)  # fmt: skip
            units.append(unit)
            conns[unit.unit_id] = conn
        if self.on_plane:  # every rig of the plane, on whichever front end it is connected
            for rig_id, link in list(links.items()):
                if rig_id not in conns:
                    units.append(self._rig_unit(rig_id, link.conn.worker, link.conn))
                    conns[rig_id] = link.conn
        self._conns = conns
        return units

    def _rig_unit(self, rig_id: str, worker: str | None, conn: RigConnection) -> Unit:
        rig = self.leases.controller.rig(rig_id)
        caps = rig.caps
        model = caps.gpus[0].model if caps.gpus else None
        leased = rig.lease_id is not None and self.leases.controller.get(rig.lease_id).spec.owner != POLICY_OWNER
        return Unit(rig_id, worker, True, caps.hashrate, caps.power_w, caps.gpu_count, model,
                    leased=leased, mode=conn.mode.value)  # fmt: skip

    def hashprice(self) -> float | None:
        """The hashprice in force, USD per TH/s per day (None with no quote): prices FPPS in USD."""
        quote = self.book.status(trio.current_time()).quote
        return None if quote is None else quote.hashprice_usd_per_th_day

    def gpu_hour_price(self, model: str | None) -> float | None:
        """The GPU-hour price in force for `model` (None with no quote): prices SLA credits."""
        quote = self.book.status(trio.current_time()).quote
        return None if quote is None else quote.gpu_hour(model)

    async def can_lend(self) -> bool:
        """An auto-lease queue is set and holds jobs (waiting or being served)."""
        queue = self.settings.auto_lease_queue
        if queue is None:
            return False
        try:
            stats = await self.leases.queue.stats(queue)
        except QueueError as exc:
            log.warning("auto-lease queue unreadable", queue=queue, error=str(exc))
            return False
        return stats.ready + stats.in_flight > 0

    async def step(self) -> None:
        async with self._lock:
            lend = await self.can_lend()
            now, wall = trio.current_time(), time.time()
            units = self.units()
            status = self.book.status(now)
            self.meter.advance(now, wall, units, status.quote)
            orders = self.controller.step(units, status, now, wall, can_lend=lend)
            for order in orders:
                if order.mode is Mode.SERVE_AI:
                    await self._lend(order.unit_id)
                else:
                    await self._carry_out(order.unit_id, order.mode, order.reason)
            if orders:
                self.meter.advance(trio.current_time(), time.time(), self.units(), status.quote)

    async def _carry_out(self, unit_id: str, mode: Mode, reason: str) -> None:
        conn = self._conns.get(unit_id)
        if conn is None:
            return
        now = trio.current_time()
        rig = conn.rig_id is not None and unit_id == conn.rig_id
        if rig and conn.mode is RigMode.DIVERTED:
            lease_id = self.leases.controller.rig(unit_id).lease_id
            if lease_id is None:
                return  # on its way back already
            await self.leases.cancel_lease(lease_id)  # the lease service sends it back to mining
        elif mode is Mode.CURTAIL:
            conn.set_mode(RigMode.CURTAILED, now)
            if rig:
                conn.notify(RigCurtail.METHOD, [True])
        elif mode is Mode.MINE:
            quick = None
            if rig:
                conn.notify(RigCurtail.METHOD, [False])
                hashrate = self.leases.controller.rig(unit_id).caps.hashrate
                quick = hashrate * FIRST_SHARE_AFTER_RESTORE_S / 2**32 if hashrate > 0 else None
            conn.set_mode(RigMode.MINING, now, difficulty=quick)
        else:
            return
        self._ordered(unit_id, mode, reason)

    def _ordered(self, unit_id: str, mode: Mode, reason: str) -> None:
        log.info("power order", unit=unit_id, mode=mode.value, reason=reason)
        record = self.controller.latest.get(unit_id, {})
        self.leases.publish({**record, "type": "power.order", "unit": unit_id, "mode": mode.value, "reason": reason})

    async def _lend(self, unit_id: str) -> None:
        """A one-rig lease naming this rig on the auto-lease queue (a curtailed rig included)."""
        queue = self.settings.auto_lease_queue
        assert queue is not None
        conn = self._conns.get(unit_id)
        if conn is None:
            return
        if conn.mode is RigMode.CURTAILED:
            conn.notify(RigCurtail.METHOD, [False])  # it hashes again once its lease ends
        body = {"count": 1, "rigs": [unit_id], "queue": queue, "duration_s": self.settings.auto_lease_duration_s,
                "owner": POLICY_OWNER}  # fmt: skip
        try:
            lease = await self.leases.create_lease(body)
        except RequestError as exc:
            log.warning("auto-lease refused", rig=unit_id, error=str(exc))
            self.controller.latest[unit_id]["reason"] += f"; not lent: {exc}"
            return
        reason = f"{self.controller.latest[unit_id]['reason']}; lent in {lease['lease_id']}"
        self._ordered(unit_id, Mode.SERVE_AI, reason)

    def poke(self) -> None:
        self._wake.set()

    async def call(self, method: str, path: str, body: object) -> dict[str, Any]:
        """One /v1 power route (the API routes only these methods here); BadPrice and BadCurtail
        are the client's fault."""
        if path == "/v1/prices":
            return await self.post_prices(body) if method == "POST" else self.prices_view()
        if path == "/v1/curtail":
            return await self.curtail(body) if method == "POST" else self.policy_view()["curtailment"] or {}
        if path == "/v1/curtail/release":
            return await self.release()
        if path == "/v1/energy":
            return self.energy_view()
        return self.policy_view()

    # ------------------------------------------------------------------ the API

    async def post_prices(self, body: object) -> dict[str, Any]:
        self.book.update(body, "api", trio.current_time())
        await self.step()
        return self.prices_view()

    def prices_view(self) -> dict[str, Any]:
        view = self.book.status(trio.current_time()).to_dict()
        view["updates"] = self.book.updates
        return view

    def policy_view(self) -> dict[str, Any]:
        view = self.controller.view()
        view["prices"] = self.prices_view()
        return view

    async def curtail(self, body: object) -> dict[str, Any]:
        request = parse_curtail(body, time.time())
        shed = self.controller.curtail(request, self.units())
        await self._keep()
        if shed.overridden:
            await self._end_leases(shed.overridden)
        await self.step()
        answer = shed.to_dict()
        if self.on_plane:
            answer["not_reached"] = NOT_REACHED
        log.info("operator curtailment", **answer)
        self.leases.publish({"type": "power.curtailed", **answer})
        return answer

    async def _end_leases(self, rig_ids: tuple[str, ...]) -> None:
        """Cancel the leases of these rigs and wait (within the return timeout) until they mine."""
        waiting = set(rig_ids)
        lease_ids = {self._lease_of(r) for r in rig_ids} - {None}
        async with self.leases.events() as events:
            for lease_id in sorted(lid for lid in lease_ids if lid is not None):
                try:
                    await self.leases.cancel_lease(lease_id, curtailed=True)
                except RequestError as exc:
                    log.warning("lease not cancelled for a curtailment", lease=lease_id, error=str(exc))
            with trio.move_on_after(self.leases.controller.return_timeout_s + 1.0):
                while waiting:
                    waiting = {r for r in waiting if self._lease_of(r) is not None}
                    if waiting:
                        await events.receive()

    def _lease_of(self, rig_id: str) -> str | None:
        try:
            return self.leases.controller.rig(rig_id).lease_id
        except LeaseError:  # gone
            return None

    async def release(self) -> dict[str, Any]:
        released = self.controller.release()
        await self._keep()
        await self.step()
        self.leases.publish({"type": "power.released", "units": released})
        return {"released": released}

    def energy_view(self) -> dict[str, Any]:
        now = trio.current_time()
        self.meter.advance(now, time.time(), self.units(), self.book.status(now).quote)
        view = self.meter.view()
        view["leases"] = self.lease_records()
        return view

    def lease_records(self) -> list[dict[str, Any]]:
        """Every lease with wall-clock start and end, GPU-hours and their worth at today's price,
        the SLA credit it is owed at that price (None without an availability target) and what is
        billed: the worth less the credit."""
        now, wall = trio.current_time(), time.time()
        quote = self.book.status(now).quote
        out = []
        for lease in self.leases.controller.leases():
            usage = self.leases.controller.usage(lease.lease_id, now)
            model = lease.spec.selector.gpu_model
            owed = sla(lease, now, self.leases.sla_restart_s)
            revenue = None if quote is None else usage.gpu_hours * quote.gpu_hour(model)
            credit = None if quote is None or owed is None else owed.credit_usd(quote.gpu_hour(model))
            out.append(
                {
                    "lease_id": lease.lease_id,
                    "state": lease.state.value,
                    "owner": lease.spec.owner,
                    "started_at": wall - (now - lease.created_at),
                    "serving_since": None if lease.serving_since is None else wall - (now - lease.serving_since),
                    "ended_at": None if lease.ended_at is None else wall - (now - lease.ended_at),
                    "gpu_hours": usage.gpu_hours,
                    "revenue_usd": revenue,
                    "sla_credit_usd": credit,
                    # what the integrator owes: the GPU-hours' worth less the SLA credit
                    "billed_usd": None if revenue is None else revenue - (credit or 0.0),
                }
            )
        return out

    def health(self) -> dict[str, Any]:
        status = self.book.status(trio.current_time())
        return {"fresh": status.fresh, "source": status.source, "safe_mode": status.safe_mode,
                "safe_mode_reason": status.reason}  # fmt: skip

    def metrics(self) -> str:
        out: list[str] = []
        status = self.book.status(trio.current_time())
        quote = status.quote
        metric_family(out, "stratumkit_power_prices_fresh", "gauge", "1 while fresh prices drive the policy.",
                      [({}, 1.0 if status.fresh else 0.0)])  # fmt: skip
        if quote is not None:
            metric_family(out, "stratumkit_power_price_usd_per_kwh", "gauge", "The power price in force.",
                          [({}, quote.power_usd_per_kwh)])  # fmt: skip
        modes: dict[str, int] = {}
        for record in self.controller.latest.values():
            modes[record["mode"]] = modes.get(record["mode"], 0) + 1
        metric_family(out, "stratumkit_power_units", "gauge", "Units by the mode the power layer wants.",
                      _labelled("mode", modes.items()))  # fmt: skip
        curtailed_kw = sum(u.power_w for u in self.units() if u.mode == "curtailed") / 1000
        metric_family(out, "stratumkit_power_curtailed_kw", "gauge", "Declared power of the curtailed connections.",
                      [({}, curtailed_kw)])  # fmt: skip
        metric_family(out, "stratumkit_power_orders_total", "counter", "Mode changes ordered by the power layer.",
                      [({}, self.controller.switches)])  # fmt: skip
        energy = self.meter.view()["by_mode"]
        metric_family(out, "stratumkit_power_kwh_total", "counter", "Energy used, by mode.",
                      _labelled("mode", ((m, t["kwh"]) for m, t in energy.items())))  # fmt: skip
        metric_family(out, "stratumkit_power_switch_cost_usd_total", "counter", "Priced cost of switches, by mode.",
                      _labelled("mode", ((m, t["switch_cost_usd"]) for m, t in energy.items())))  # fmt: skip
        metric_family(out, "stratumkit_power_net_usd_total", "counter",
                      "Revenue minus power and switch cost, by mode.",
                      _labelled("mode", ((m, t["net_usd"]) for m, t in energy.items())))  # fmt: skip
        return "\n".join(out) + "\n"


def _labelled(label: str, items: Iterable[tuple[str, float]]) -> list[tuple[dict[str, str], float]]:
    return [({label: key}, value) for key, value in sorted(items)]
