"""The lease plane's leader lock and its fencing counter (standard Redis patterns).

- ``acquire``: one Lua script: SET leader "<holder> <epoch>" NX PX ttl, and when that took the
  lock, INCR the epoch counter and write the new epoch into the lock's value. Returns the epoch
  (the fencing token), or None when someone else holds the lock.
- ``renew``: PEXPIRE the lock only while its value is still ours (compare, then expire, in Lua).
- ``release``: DEL the lock only while its value is still ours (a clean shutdown: the next
  front end takes the plane at once instead of after the ttl).

A holder that cannot renew within its ttl must stop acting: the lock may already be another's,
and the fence on the lease store (the epoch) refuses its writes from then on anyway.
"""

from __future__ import annotations

from typing import Any

import coredis

from .keys import PlaneKeys

__all__ = ["PlaneLock"]

_ACQUIRE = """
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
    return 0
end
local epoch = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. ' ' .. epoch, 'PX', ARGV[2])
return epoch
"""

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""


class PlaneLock:
    def __init__(self, client: coredis.Redis[bytes], keys: PlaneKeys, holder: str, ttl_s: float) -> None:
        self.keys = keys
        self.holder = holder
        self.ttl_ms = max(1, int(ttl_s * 1000))
        self._acquire = client.register_script(_ACQUIRE)
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)
        self._client = client

    def value(self, epoch: int) -> str:
        return f"{self.holder} {epoch}"

    async def acquire(self) -> int | None:
        epoch: Any = await self._acquire(keys=[self.keys.leader, self.keys.epoch], args=[self.holder, self.ttl_ms])
        return int(epoch) or None

    async def renew(self, epoch: int) -> bool:
        done: Any = await self._renew(keys=[self.keys.leader], args=[self.value(epoch), self.ttl_ms])
        return bool(done)

    async def release(self, epoch: int) -> bool:
        done: Any = await self._release(keys=[self.keys.leader], args=[self.value(epoch)])
        return bool(done)

    async def current_epoch(self) -> int:
        raw = await self._client.get(self.keys.epoch)
        return int(raw) if raw is not None else 0
