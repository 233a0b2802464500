"""A front end's extension port on a shared lease plane: its rigs' requests go to the leader.

The pool calls the relay as it would call the lease service (:class:`~stratumkit.session.ports.
ExtensionPort`); the relay decides nothing. Rules:

- Each connection gets an id (``<boot nonce>-<n>``, unique across restarts of the front end).
  ``handle`` sends the request to the leader (``send``: the node puts it on the inbox stream) and
  keeps it as pending until the leader answers it; ``on_accepted`` sends a share, ``on_closed`` the
  connection's end. Every message carries the front end, the connection id and the epoch the
  relay believes current, with what the leader needs to know of the connection (peer, worker,
  mode, accepted shares).
- ``apply`` carries out one command of the leader on its connection (register_rig, set_mode,
  respond, respond_error, notify, drop) only if the command's epoch is the relay's: a leader that
  lost the plane cannot touch a connection.
- ``new_epoch``: a new leader. For every registered connection the relay sends a hello (the
  rig's registration again, quoting the token of the latest divert or return sent to it, so a
  rig bound to a lease resumes its stint, with the jobs it holds, so it keeps them; the leader's
  answer to it is not passed on to the rig), then every pending request again, in order (the
  old leader may never have seen them).
- ``freeze`` (the front end is stopping): every registered rig is sent as suspended (it keeps
  its stint, to resume on another front end) and nothing more is sent.
"""

from __future__ import annotations

import dataclasses
import itertools
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
import trio

from stratumkit.protocol import rig as wire
from stratumkit.protocol.events import ExtensionRequest
from stratumkit.protocol.jsonrpc import RequestId
from stratumkit.session.ports import RigConnection, RigMode

__all__ = ["Relay"]

log = structlog.get_logger("stratumkit.plane")

_NOTIFY_WITH_TOKEN = frozenset({wire.LeaseDivert.METHOD, wire.LeaseReturn.METHOD})


@dataclass
class _Local:
    cid: str
    conn: RigConnection
    register_params: Any = None  # the params of its latest registration request
    token: int | None = None  # of the latest divert or return the leader sent it
    pending: dict[RequestId, dict[str, Any]] = field(default_factory=dict)
    hellos: set[str] = field(default_factory=set)
    claims: list[Any] = field(default_factory=list)  # the jobs it holds, as the leader last said


class Relay:
    def __init__(self, front_end: str, send: Callable[[dict[str, Any]], None]) -> None:
        self.front_end = front_end
        self.epoch = 0
        self._send = send
        self._boot = secrets.token_hex(4)
        #: Names this run of the front end: every connection id starts with it.
        self.boot = self._boot
        self._numbers = itertools.count(1)
        self._by_conn: dict[int, _Local] = {}
        self._by_id: dict[str, _Local] = {}
        self._frozen = False

    # ------------------------------------------------------------------ the extension port

    @property
    def methods(self) -> frozenset[str]:
        return frozenset(wire.REQUESTS)

    async def handle(self, conn: RigConnection, event: ExtensionRequest) -> None:
        local = self._local(conn)
        if event.method == wire.RigRegister.METHOD:
            local.register_params = event.params
        message = {"k": "req", "c": local.cid, "i": event.id, "m": event.method, "p": event.params}
        local.pending[event.id] = message
        self._emit(local, message)

    def on_accepted(self, conn: RigConnection, now: float) -> None:
        local = self._by_conn.get(id(conn))
        if local is not None:
            self._emit(local, {"k": "share", "c": local.cid})

    async def on_closed(self, conn: RigConnection) -> None:
        local = self._by_conn.get(id(conn))
        if local is None:
            return
        self._forget(local)
        self._emit(local, {"k": "closed", "c": local.cid})

    def _forget(self, local: _Local) -> None:
        self._by_conn.pop(id(local.conn), None)
        self._by_id.pop(local.cid, None)

    # ------------------------------------------------------------------ from the leader

    def apply(self, command: dict[str, Any]) -> None:
        """One command of the leader (see the module docstring)."""
        if command.get("e") != self.epoch:
            return
        local = self._by_id.get(command.get("c", ""))
        if local is None:
            return  # the connection ended meanwhile
        conn, kind = local.conn, command.get("k")
        if kind in ("respond", "error"):
            request_id = command["i"]
            local.pending.pop(request_id, None)
            if isinstance(command.get("claims"), list):
                local.claims = command["claims"]
            if isinstance(request_id, str) and request_id in local.hellos:
                local.hellos.discard(request_id)
                if kind == "error":
                    log.warning("rig not taken over by the new leader", rig=conn.rig_id, error=command["v"])
                return
            if kind == "respond":
                conn.respond(request_id, command["v"])
            else:
                conn.respond_error(request_id, command["v"])
            if conn.rig_id is None and not local.pending:  # not a rig (refused): nothing to keep
                self._forget(local)
        elif kind == "register":
            if conn.rig_id != command["r"]:
                conn.register_rig(command["r"])
        elif kind == "mode":
            conn.set_mode(RigMode(command["mode"]), trio.current_time(), difficulty=command.get("d"))
        elif kind == "notify":
            params = command["p"]
            if command["m"] in _NOTIFY_WITH_TOKEN and params and isinstance(params[0], dict):
                token = params[0].get("token")
                local.token = token if isinstance(token, int) else local.token
            conn.notify(command["m"], params)
        elif kind == "drop":
            conn.drop(command["v"])

    def new_epoch(self, epoch: int) -> None:
        """A new leader took the plane: say hello for every rig, then send what is unanswered."""
        if epoch == self.epoch:
            return  # the latest announcement wins, even a lower one (a Redis that lost its data)
        self.epoch = epoch
        for local in list(self._by_id.values()):
            hello = self._hello(local)
            if hello is not None:
                self._emit(local, hello)
            for message in list(local.pending.values()):
                self._emit(local, message)

    def freeze(self) -> None:
        """The front end is stopping: its rigs are suspended, to resume elsewhere."""
        for local in self._by_id.values():
            if local.conn.rig_id is not None:
                self._emit(local, {"k": "suspend", "c": local.cid})
        self._frozen = True

    @property
    def connections(self) -> int:
        return len(self._by_id)

    # ------------------------------------------------------------------ internals

    def _local(self, conn: RigConnection) -> _Local:
        local = self._by_conn.get(id(conn))
        if local is None:
            local = _Local(f"{self._boot}-{next(self._numbers)}", conn)
            self._by_conn[id(conn)] = local
            self._by_id[local.cid] = local
        return local

    def _hello(self, local: _Local) -> dict[str, Any] | None:
        if local.conn.rig_id is None or local.register_params is None:
            return None
        try:
            msg = wire.RigRegister.from_params(local.register_params)
        except wire.RigMessageError:
            return None
        msg = dataclasses.replace(msg, rig_id=msg.rig_id or local.conn.rig_id, resume_token=local.token)
        hello_id = f"plane-hello-{next(self._numbers)}"
        local.hellos.add(hello_id)
        return {"k": "req", "c": local.cid, "i": hello_id, "m": msg.METHOD, "p": msg.to_params(),
                "r": msg.rig_id, "claims": local.claims}  # fmt: skip

    def _emit(self, local: _Local, message: dict[str, Any]) -> None:
        if self._frozen:
            return
        conn = local.conn
        message = {**message, "e": self.epoch, "f": self.front_end, "peer": conn.peer, "w": conn.worker,
                   "mode": conn.mode.value, "n": conn.accepted}  # fmt: skip
        self._send(message)
