"""One front end of a shared lease plane: its relay, its standby loop, and its Redis pumps.

Every front end runs :meth:`PlaneNode.run`:

- the relay's pumps: its messages to the inbox stream (one task, so in order), the leader's
  commands from its own stream, new epochs from the control stream, and its alive key (PX
  ``ttl_s``, renewed every ``ttl_s / 3``; its value is the relay's boot nonce, so the leader
  also tells a restarted front end from the one whose connections it knew);
- the events tail: the events stream to this front end's subscribers (``subscribe``); one that
  falls ``buffer`` events behind is dropped, as on a lone pool;
- the standby loop: try the leader lock every ``ttl_s / 3``; holding it, :meth:`_lead`.

The leader's own rigs skip Redis: while a front end leads, its relay's messages of the leader's
epoch go to the host directly, and the host's commands for this front end to the relay directly
(the same messages, the same epoch checks; only the transport differs).

Leading (``_lead``), in this order: a lease service on the shared store fenced by the new epoch,
restored from it (``LeaseService.run``); the inbox, API and command pumps, from the streams' ends
as they were before the restore; with ``make_power``, the power service on the new lease service
(``power``: it runs while this front end leads, and stops with the leadership); then the new epoch
on the control stream, so every relay says hello. The lock is renewed every ``ttl_s / 3``; a
renewal refused, no renewal for ``ttl_s``, a fenced write refused, or an epoch that is not ours
any more when the service is about to act on a deadline (``LeaseService.still_leading``) ends the
leadership at once (everything it started is cancelled), and the front end goes back to standby.
``freeze`` (shutdown) saves the leases, suspends this front end's rigs and releases the lock, so
another front end takes the plane without waiting for the ttl.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import coredis
import coredis.exceptions
import msgpack
import structlog
import trio

from stratumkit.lease.fan_out import FanOut
from stratumkit.lease.integrators import Integrators
from stratumkit.lease.redis_store import RedisLeaseStore
from stratumkit.lease.service import LeaseService
from stratumkit.lease.store import LeaseStore

if TYPE_CHECKING:
    from stratumkit.power.service import PowerService

from .host import PlaneHost, error_reply, serve_call
from .keys import STREAM_MAXLEN, PlaneKeys, pack, unpack
from .lock import PlaneLock
from .relay import Relay

__all__ = ["PlaneNode"]

log = structlog.get_logger("stratumkit.plane")

#: XREAD BLOCK this long at most, so a cancelled pump gives its connection back soon.
BLOCK_MS = 1000
#: A forwarded API call with no answer in this long is refused (503).
CALL_TIMEOUT_S = 5.0
#: A reply nobody took is deleted after this long.
REPLY_TTL_MS = 30_000

MakeService = Callable[[LeaseStore], LeaseService]
MakePower = Callable[[LeaseService], "PowerService"]


class PlaneNode:
    def __init__(
        self,
        client: coredis.Redis[bytes],
        plane: str,
        front_end: str,
        make_service: MakeService,
        *,
        ttl_s: float = 3.0,
        call_timeout_s: float = CALL_TIMEOUT_S,
        make_power: MakePower | None = None,
    ) -> None:
        self.client = client
        self.keys = PlaneKeys(plane)
        self.front_end = front_end
        self.ttl_s = ttl_s
        self.call_timeout_s = call_timeout_s
        self._make_service = make_service
        self._make_power = make_power
        self.lock = PlaneLock(client, self.keys, front_end, ttl_s)
        self._to_leader, self._outbox = trio.open_memory_channel[dict[str, Any]](math.inf)
        self.relay = Relay(front_end, self._from_relay)
        self._host: PlaneHost | None = None  # while this front end leads
        self.service: LeaseService | None = None  # while this front end leads
        self.epoch: int | None = None  # while this front end leads
        self.power: PowerService | None = None  # while this front end leads (with make_power)
        self._commands_out, self._commands_in = trio.open_memory_channel[tuple[str, dict[str, Any]]](math.inf)
        self._events_out, self._events_in = trio.open_memory_channel[dict[str, Any]](math.inf)
        self._events = FanOut()
        self._leading: trio.CancelScope | None = None
        self._frozen = False
        self.epoch_known = False

    def describe(self) -> dict[str, Any]:
        return {"front_end": self.front_end, "leader": self.service is not None, "epoch": self.relay.epoch}

    # ------------------------------------------------------------------ running

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        control_from = await self._last_id(self.keys.control)
        last = await self.client.xrevrange(self.keys.control, count=1)
        if last:
            self.relay.new_epoch(int(unpack(last[0].field_values)["epoch"]))
            self.epoch_known = True
        commands_from = await self._last_id(self.keys.front_end(self.front_end))
        events_from = await self._last_id(self.keys.events)
        await self._alive()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._send_to_leader)
            nursery.start_soon(self._tail, self.keys.front_end(self.front_end), commands_from, self.relay.apply)
            nursery.start_soon(self._tail, self.keys.control, control_from, self._on_control)
            nursery.start_soon(self._tail, self.keys.events, events_from, self._events.send)
            nursery.start_soon(self._keep_alive)
            nursery.start_soon(self._standby)
            task_status.started()

    async def _standby(self) -> None:
        while True:
            if not self._frozen:
                try:
                    epoch = await self.lock.acquire()
                except coredis.exceptions.RedisError as exc:
                    log.error("lease plane lock unavailable", error=str(exc))
                    epoch = None
                if epoch is not None:
                    try:
                        await self._lead(epoch)
                    except Exception as exc:  # Redis failing under the leader: stand by again
                        log.error("lease plane leadership failed", epoch=epoch, error=repr(exc))
            await trio.sleep(self.ttl_s / 3)

    async def _lead(self, epoch: int) -> None:
        keys = self.keys
        store = RedisLeaseStore(
            self.client, prefix=keys.store_prefix, fence=(keys.epoch, epoch), on_fenced=self._fenced
        )
        service = self._make_service(store)
        service.suspend_moved_rigs = True
        service.defer_restored_requeue = True
        service.still_leading = lambda: self._still_leading(epoch)
        service.event_sink = self._events_out.send_nowait
        log.info("lease plane taken", front_end=self.front_end, epoch=epoch)
        with trio.CancelScope() as scope:
            self._leading = scope
            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._renew, epoch, scope)
                    inbox_from = await self._last_id(keys.inbox)
                    api_from = await self._last_id(keys.api)
                    await nursery.start(service.run)  # restores the shared store
                    host = PlaneHost(service, epoch, self._to_front_end)
                    await nursery.start(host.run)
                    nursery.start_soon(self._tail, keys.inbox, inbox_from, host.dispatch)
                    nursery.start_soon(self._send_commands)
                    nursery.start_soon(self._send_events)
                    nursery.start_soon(self._tail, keys.api, api_from, lambda call: self._answer(nursery, call))
                    nursery.start_soon(self._watch_front_ends, host)
                    power = None
                    if self._make_power is not None:
                        power = self._make_power(service)
                        power.keeper = KeptCurtailment(self.client, keys.power_curtailment, service)
                        await nursery.start(power.run)  # with the kept curtailment in force
                    self.service, self.epoch, self._host, self.power = service, epoch, host, power
                    await self.client.xadd(keys.control, pack({"epoch": epoch, "leader": self.front_end}))
            finally:
                self.service = self.epoch = self._host = self.power = None
                self._leading = None
        if self._frozen:
            log.info("lease plane given up at shutdown", front_end=self.front_end, epoch=epoch)
        else:
            log.warning("lease plane left", front_end=self.front_end, epoch=epoch)

    async def _still_leading(self, epoch: int) -> bool:
        """Whether the plane's epoch is still ours (no newer leader took the lock meanwhile)."""
        try:
            current = await self.lock.current_epoch()
        except coredis.exceptions.RedisError as exc:
            log.error("lease plane epoch unreadable", error=str(exc))
            return False
        if current != epoch:
            self._fenced()
            return False
        return True

    def _fenced(self) -> None:
        log.error("a newer leader has the lease plane: stepping down", front_end=self.front_end)
        if self._leading is not None:
            self._leading.cancel()

    async def _renew(self, epoch: int, scope: trio.CancelScope) -> None:
        renewed_at = trio.current_time()
        while True:
            await trio.sleep(self.ttl_s / 3)
            try:
                if not await self.lock.renew(epoch):
                    log.error("lease plane lock lost", front_end=self.front_end, epoch=epoch)
                    scope.cancel()
                    return
                renewed_at = trio.current_time()
            except coredis.exceptions.RedisError as exc:
                log.error("lease plane lock not renewed", error=str(exc))
                if trio.current_time() - renewed_at >= self.ttl_s:
                    scope.cancel()
                    return

    async def freeze(self) -> None:
        """Shutdown: save the leases, suspend this front end's rigs, give the plane up."""
        self._frozen = True
        self.relay.freeze()
        with trio.move_on_after(2.0):
            while self._outbox.statistics().current_buffer_used:  # the suspensions leave first
                await trio.sleep(0.01)
        service, epoch = self.service, self.epoch
        if service is not None and epoch is not None:
            await service.freeze()
            with trio.move_on_after(2.0):
                try:
                    await self.lock.release(epoch)
                except coredis.exceptions.RedisError:
                    pass
            if self._leading is not None:
                self._leading.cancel()

    # ------------------------------------------------------------------ the relay's side

    def _on_control(self, message: dict[str, Any]) -> None:
        self.epoch_known = True
        self.relay.new_epoch(int(message["epoch"]))

    def _from_relay(self, message: dict[str, Any]) -> None:
        """A message of this front end's relay: straight to the host when this front end leads
        under the message's epoch, else onto the inbox stream."""
        host = self._host
        if host is not None and message.get("e") == host.epoch:
            host.dispatch(message)
        else:
            self._to_leader.send_nowait(message)

    def _to_front_end(self, front_end: str, command: dict[str, Any]) -> None:
        """A command of the host: straight to this front end's relay, else onto its stream."""
        if front_end == self.front_end:
            self.relay.apply(command)
        else:
            self._commands_out.send_nowait((front_end, command))

    async def _send_to_leader(self) -> None:
        async for message in self._outbox:
            await self._xadd(self.keys.inbox, message)

    async def _alive(self) -> None:
        await self.client.set(self.keys.alive(self.front_end), self.relay.boot, px=int(self.ttl_s * 1000))

    async def _keep_alive(self) -> None:
        while True:
            await trio.sleep(self.ttl_s / 3)
            if self._frozen:
                continue
            try:
                await self._alive()
            except coredis.exceptions.RedisError as exc:
                log.error("lease plane alive key not renewed", error=str(exc))

    # ------------------------------------------------------------------ the leader's side

    async def _send_commands(self) -> None:
        async for front_end, command in self._commands_in:
            await self._xadd(self.keys.front_end(front_end), command)

    async def _send_events(self) -> None:
        async for event in self._events_in:
            await self._xadd(self.keys.events, event)

    def _answer(self, nursery: trio.Nursery, call: dict[str, Any]) -> None:
        nursery.start_soon(self._answer_call, call)

    async def _answer_call(self, call: dict[str, Any]) -> None:
        service = self.service
        if service is None or call.get("e") != self.epoch:
            return  # a call for another leader (a paused old one must not answer for the new)
        try:
            method, args = str(call["method"]), list(call["args"])
            reply: dict[str, Any] = {"ok": await serve_call(service, method, args, power=self.power)}
        except Exception as exc:  # told to the caller, whatever it is
            reply = error_reply(exc)
        key = self.keys.reply(str(call["reply"]))
        try:
            await self.client.lpush(key, [msgpack.packb(reply)])
            await self.client.pexpire(key, REPLY_TTL_MS)
        except coredis.exceptions.RedisError as exc:
            log.error("lease plane reply not sent", error=str(exc))

    async def _watch_front_ends(self, host: PlaneHost) -> None:
        while True:
            await trio.sleep(self.ttl_s / 3)
            for front_end in host.front_ends():
                try:
                    boot = await self.client.get(self.keys.alive(front_end))
                except coredis.exceptions.RedisError as exc:
                    log.error("front ends not checked", error=str(exc))
                    break
                running = None if boot is None else _text(boot)
                if host.suspend(front_end, keep=running):
                    log.warning("front end gone or restarted: its rigs are suspended", front_end=front_end)

    # ------------------------------------------------------------------ the API's side

    async def forward(self, method: str, args: list[Any], *, timeout_s: float | None = None) -> dict[str, Any]:
        """A call on the leader: its reply ({"ok": ...} or {"error": ..., "message": ...}) within
        ``timeout_s`` (default ``call_timeout_s``)."""
        from stratumkit.lease.errors import Unavailable

        timeout = self.call_timeout_s if timeout_s is None else timeout_s
        call_id = secrets.token_hex(8)
        try:
            call = {"method": method, "args": args, "reply": call_id, "e": self.relay.epoch}
            await self._xadd(self.keys.api, call)
            got = await self.client.blpop([self.keys.reply(call_id)], timeout=timeout)
        except coredis.exceptions.RedisError as exc:
            raise Unavailable(f"the lease plane is unavailable: {exc}") from None
        if not got:
            raise Unavailable(f"the lease plane's leader did not answer within {timeout:g} s")
        reply = msgpack.unpackb(got[1])
        if not isinstance(reply, dict):
            raise Unavailable("the lease plane's leader sent a reply that is not a map")
        return reply

    async def load_integrators(self, integrators: Integrators) -> None:
        """Admit the tokens issued through any front end (kept in the shared store)."""
        store = RedisLeaseStore(self.client, prefix=self.keys.store_prefix)
        try:
            integrators.add_issued(await store.integrators())
        except OSError as exc:
            log.error("integrator tokens not read", error=str(exc))

    async def keep_integrators(self, integrators: Integrators, every_s: float = 1.0) -> None:
        while True:
            await self.load_integrators(integrators)
            await trio.sleep(every_s)

    @asynccontextmanager
    async def subscribe(self, buffer: int = 1000) -> AsyncIterator[trio.MemoryReceiveChannel[dict[str, Any]]]:
        async with self._events.subscribe(buffer) as receive:
            yield receive

    # ------------------------------------------------------------------ streams

    async def _xadd(self, key: str, message: dict[str, Any]) -> None:
        from coredis.tokens import PureToken

        try:
            await self.client.xadd(
                key,
                pack(message),
                trim_strategy=PureToken.MAXLEN,
                threshold=STREAM_MAXLEN,
                trim_operator=PureToken.APPROXIMATELY,
            )
        except coredis.exceptions.RedisError as exc:
            log.error("lease plane message not sent", stream=key, error=str(exc))

    async def _last_id(self, key: str) -> str:
        last = await self.client.xrevrange(key, count=1)
        return _text(last[0].identifier) if last else "0-0"

    async def _tail(self, key: str, start: str, handle: Callable[[dict[str, Any]], None]) -> None:
        """Every entry of the stream after `start`, in order, to `handle`."""
        position = start
        while True:
            try:
                got = await self.client.xread({key: position}, count=500, block=BLOCK_MS)
            except coredis.exceptions.RedisError as exc:
                log.error("lease plane stream unreadable", stream=key, error=str(exc))
                await trio.sleep(0.5)
                continue
            for entries in (got or {}).values():
                for entry in entries:
                    position = _text(entry.identifier)
                    try:
                        message = unpack(entry.field_values)
                    except (ValueError, TypeError, msgpack.UnpackException) as exc:
                        log.warning("bad lease plane message", stream=key, error=str(exc))
                        continue
                    handle(message)


class KeptCurtailment:
    """The plane's operator curtailment in Redis (a ``CurtailmentKeeper``): written by the leader
    when it is made or released (not once the epoch is another's), read by the next leader. A
    Redis error is logged: the curtailment holds on this leader, only not on the next."""

    def __init__(self, client: coredis.Redis[bytes], key: str, service: LeaseService) -> None:
        self.client = client
        self.key = key
        self.service = service

    async def save(self, record: dict[str, Any] | None) -> None:
        still_leading = self.service.still_leading
        try:
            if still_leading is not None and not await still_leading():
                return
            if record is None:
                await self.client.delete([self.key])
            else:
                await self.client.set(self.key, msgpack.packb(record))
        except coredis.exceptions.RedisError as exc:
            log.error("curtailment not kept for the next leader", error=str(exc))

    async def load(self) -> dict[str, Any] | None:
        try:
            raw = await self.client.get(self.key)
        except coredis.exceptions.RedisError as exc:
            log.error("kept curtailment unreadable", error=str(exc))
            return None
        record = None if raw is None else msgpack.unpackb(raw)
        return record if isinstance(record, dict) else None


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
