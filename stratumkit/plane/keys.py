"""The Redis keys of a lease plane named P, and how its messages are packed.

    stratumkit:plane:P:leader        the leader lock: "<front end> <epoch>", PX ttl
    stratumkit:plane:P:epoch         the fencing counter (INCR per new leader)
    stratumkit:plane:P:control       stream: each new leader's {epoch, leader}
    stratumkit:plane:P:inbox         stream: front ends -> leader (rig requests, shares, ends, hellos)
    stratumkit:plane:P:fe:F          stream: leader -> front end F (commands for its connections)
    stratumkit:plane:P:fe:F:alive    front end F is alive (PX ttl, renewed)
    stratumkit:plane:P:api           stream: API calls forwarded to the leader
    stratumkit:plane:P:reply:ID      list: the answer to one API call (BLPOP, expires)
    stratumkit:plane:P:events        stream: every lease and job event (capped, MAXLEN ~)
    stratumkit:plane:P:power:curtailment  the operator curtailment in force (msgpack), for the next leader
    stratumkit:leases:plane:P        prefix of the shared lease store

Every stream entry has one field, ``m``: a msgpack map.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgpack

__all__ = ["PlaneKeys", "pack", "unpack"]

#: Streams are capped near this many entries (MAXLEN ~).
STREAM_MAXLEN = 10_000


@dataclass(frozen=True)
class PlaneKeys:
    plane: str

    @property
    def base(self) -> str:
        return f"stratumkit:plane:{self.plane}"

    @property
    def leader(self) -> str:
        return f"{self.base}:leader"

    @property
    def epoch(self) -> str:
        return f"{self.base}:epoch"

    @property
    def control(self) -> str:
        return f"{self.base}:control"

    @property
    def inbox(self) -> str:
        return f"{self.base}:inbox"

    def front_end(self, fe: str) -> str:
        return f"{self.base}:fe:{fe}"

    def alive(self, fe: str) -> str:
        return f"{self.base}:fe:{fe}:alive"

    @property
    def api(self) -> str:
        return f"{self.base}:api"

    def reply(self, call_id: str) -> str:
        return f"{self.base}:reply:{call_id}"

    @property
    def events(self) -> str:
        return f"{self.base}:events"

    @property
    def power_curtailment(self) -> str:
        return f"{self.base}:power:curtailment"

    @property
    def store_prefix(self) -> str:
        return f"stratumkit:leases:plane:{self.plane}"


def pack(message: dict[str, Any]) -> dict[str, bytes]:
    return {"m": msgpack.packb(message)}


def unpack(fields: Any) -> dict[str, Any]:
    raw = fields.get(b"m") if b"m" in fields else fields.get("m")
    message = msgpack.unpackb(raw)
    if not isinstance(message, dict):
        raise ValueError("a plane message must be a map")
    return message
