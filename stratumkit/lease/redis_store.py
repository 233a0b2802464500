"""The lease store on Redis, for a pool whose queue is on Redis (``queue_url``).

Keys (under ``prefix``, default ``stratumkit:leases``; the pool adds its ``instance_id``, so pool
processes on one Redis keep separate lease state): ``head`` (the snapshot head), ``saved``
(the save's wall time), ``alive`` (the last ``touch``), hashes ``leases`` and ``rigs`` (key ->
msgpack ``[position, row]``), ``integrators`` (token digest -> name), ``jobs`` (job id -> msgpack
record) and one sorted set per lease, ``lease-jobs:<lease id>``, of its job ids by first claim.

Fencing (a lease plane shared by several front ends, :mod:`stratumkit.plane`): given
``fence=(epoch_key, epoch)``, every write (save, touch, job records, integrators) is one Lua script
that first compares the value at ``epoch_key`` with ``epoch`` and writes nothing if they differ: a
leader that lost the plane (a newer leader INCRed the epoch) cannot overwrite the newer leader's
state, however long it was paused. The refusal is :class:`Fenced`, a LeaseStoreError, and calls
``on_fenced`` first (the leader steps down).

Crash contract: each ``save`` is one Lua script, so Redis applies it whole or not at all; it is as
durable as the server's persistence (run Redis with ``appendonly yes`` and ``appendfsync always``
for the SQLite store's guarantee). Every failure is a LeaseStoreError. The store uses the Redis
queue engine's connections (``RedisQueueEngine.client``): it lives as long as that engine.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import coredis
import coredis.exceptions
import msgpack

from .store import JobRecord, LeaseStoreError, RowDiff, Rows, StoredLeases, pack_rows, unpack_snapshot

__all__ = ["Fenced", "RedisLeaseStore"]

# KEYS: head, saved, alive, leases, rigs. ARGV: head, wall, then per hash (leases, rigs):
# full (0/1), n upserts, n deletes, the upserts as key/value pairs, the deleted keys.
_SAVE = """
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SET', KEYS[2], ARGV[2])
redis.call('SET', KEYS[3], ARGV[2])
local i = 3
for h = 4, 5 do
    local full, nup, ndel = tonumber(ARGV[i]), tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
    i = i + 3
    if full == 1 then redis.call('DEL', KEYS[h]) end
    for _ = 1, nup do
        redis.call('HSET', KEYS[h], ARGV[i], ARGV[i + 1])
        i = i + 2
    end
    for _ = 1, ndel do
        redis.call('HDEL', KEYS[h], ARGV[i])
        i = i + 1
    end
end
return 1
"""

# KEYS: jobs, then one lease-jobs key per record. ARGV: per record: job id, first-claim score, row.
_SAVE_JOBS = """
for n = 1, #KEYS - 1 do
    local a = (n - 1) * 3
    redis.call('HSET', KEYS[1], ARGV[a + 1], ARGV[a + 3])
    redis.call('ZADD', KEYS[n + 1], 'NX', ARGV[a + 2], ARGV[a + 1])
end
return 1
"""


# Prepended to every write of a fenced store: KEYS[1] is the epoch key, ARGV[1] the writer's
# epoch; both are taken off, so the rest of the script sees its own KEYS and ARGV.
_FENCE = """
local epoch_key = table.remove(KEYS, 1)
local epoch = table.remove(ARGV, 1)
if redis.call('GET', epoch_key) ~= epoch then
    return redis.error_reply('FENCED the lease plane has a newer leader')
end
"""

_TOUCH = """
redis.call('SET', KEYS[1], ARGV[1])
return 1
"""

_ADD_INTEGRATOR = """
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
"""


class Fenced(LeaseStoreError):
    """A write refused because the writer's epoch is no longer the lease plane's."""


class RedisLeaseStore:
    def __init__(
        self,
        client: coredis.Redis[bytes],
        *,
        prefix: str = "stratumkit:leases",
        fence: tuple[str, int] | None = None,
        on_fenced: Callable[[], None] | None = None,
    ) -> None:
        self._client = client
        self._prefix = prefix
        self._fence = fence
        self._on_fenced = on_fenced
        self._diffs = {"leases": RowDiff(), "rigs": RowDiff()}
        prelude = "" if fence is None else _FENCE
        self._save = client.register_script(prelude + _SAVE)
        self._save_jobs = client.register_script(prelude + _SAVE_JOBS)
        self._touch = client.register_script(prelude + _TOUCH)
        self._add_integrator = client.register_script(prelude + _ADD_INTEGRATOR)

    def _fenced(
        self, keys: list[str], args: list[str | bytes | int | float]
    ) -> tuple[list[str], list[str | bytes | int | float]]:
        """The keys and arguments of a write script, with the fence in front when there is one."""
        if self._fence is None:
            return keys, args
        epoch_key, epoch = self._fence
        return [epoch_key, *keys], [str(epoch), *args]

    async def _write(self, script: Any, keys: list[str], args: list[str | bytes | int | float]) -> None:
        keys, args = self._fenced(keys, args)
        try:
            await script(keys=keys, args=args)
        except coredis.exceptions.RedisError as exc:
            if "FENCED" in str(exc):
                if self._on_fenced is not None:
                    self._on_fenced()
                raise Fenced(f"lease store on redis: {exc}") from exc
            raise LeaseStoreError(f"lease store on redis: {exc}") from exc

    def _key(self, *parts: str) -> str:
        return ":".join((self._prefix, *parts))

    async def _do(self, request: Any) -> Any:
        try:
            return await request
        except coredis.exceptions.RedisError as exc:
            raise LeaseStoreError(f"lease store on redis: {exc}") from exc

    async def load(self) -> StoredLeases | None:
        head = await self._do(self._client.get(self._key("head")))
        if head is None:
            return None
        saved = float(await self._do(self._client.get(self._key("saved"))))
        alive_raw = await self._do(self._client.get(self._key("alive")))
        rows: dict[str, list[bytes]] = {}
        for table in ("leases", "rigs"):
            stored = await self._do(self._client.hgetall(self._key(table)))
            try:
                entries = sorted(msgpack.unpackb(value) for value in stored.values())
            except (ValueError, TypeError, msgpack.UnpackException) as exc:
                raise LeaseStoreError(f"stored lease state is corrupt: {exc}") from exc
            rows[table] = [data for _, data in entries]
        alive = max(saved, float(alive_raw)) if alive_raw is not None else saved
        return StoredLeases(unpack_snapshot(head, rows["leases"], rows["rigs"]), saved, alive)

    async def save(self, snapshot: Mapping[str, Any], wall: float) -> None:
        head, leases, rigs = pack_rows(snapshot)
        tables: dict[str, Rows] = {"leases": leases, "rigs": rigs}
        args: list[str | bytes | int | float] = [head, repr(wall)]
        for table, rows in tables.items():
            full, upsert, gone = self._diffs[table].changes(rows)
            args += [1 if full else 0, len(upsert), len(gone)]
            for key, (pos, data) in upsert.items():
                args += [key, msgpack.packb([pos, data])]
            args += gone
        keys = [self._key("head"), self._key("saved"), self._key("alive"), self._key("leases"), self._key("rigs")]
        await self._write(self._save, keys, args)
        for table, rows in tables.items():
            self._diffs[table].committed(rows)

    async def touch(self, wall: float) -> None:
        if self._fence is None:
            await self._do(self._client.set(self._key("alive"), repr(wall)))
            return
        await self._write(self._touch, [self._key("alive")], [repr(wall)])

    async def add_integrator(self, token_digest: str, name: str) -> None:
        if self._fence is None:
            await self._do(self._client.hset(self._key("integrators"), {token_digest: name}))
            return
        await self._write(self._add_integrator, [self._key("integrators")], [token_digest, name])

    async def integrators(self) -> dict[str, str]:
        stored = await self._do(self._client.hgetall(self._key("integrators")))
        return {_text(k): _text(v) for k, v in stored.items()}

    async def save_jobs(self, records: Sequence[JobRecord]) -> None:
        if not records:
            return
        keys = [self._key("jobs")] + [self._key("lease-jobs", r.lease_id) for r in records]
        args: list[str | bytes | int | float] = []
        for r in records:
            args += [r.job_id, repr(r.claimed_at), msgpack.packb([r.lease_id, r.rig_id, r.claimed_at, r.finished_at])]
        await self._write(self._save_jobs, keys, args)

    async def lease_jobs(self, lease_id: str, limit: int) -> list[JobRecord]:
        ids = await self._do(self._client.zrange(self._key("lease-jobs", lease_id), 0, limit - 1))
        if not ids:
            return []
        rows = await self._do(self._client.hmget(self._key("jobs"), list(ids)))
        out = []
        for job_id, row in zip(ids, rows, strict=True):
            if row is not None:
                lease, rig, claimed_at, finished_at = msgpack.unpackb(row)
                out.append(JobRecord(_text(job_id), lease, rig, claimed_at, finished_at))
        return out


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
