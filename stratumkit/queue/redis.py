"""The distributed queue engine: Redis Streams through coredis (anyio, so it runs on trio).

Layout (every key under `prefix`):
- `{prefix}:q:{queue}:stream` one stream per queue, read by the consumer group `workers`; an entry
  holds the job id (j), its msgpack payload (p) and its max deliveries (m).
- `{prefix}:q:{queue}:dead`   the queue's dead letters (a stream: j, p, m, deliveries n, reason r).
- `{prefix}:q:{queue}:deadjobs` hash job id -> its entry id in the dead stream.
- `{prefix}:q:{queue}:counts` hash: waiting (never delivered), done, dead.
- `{prefix}:jobs`             hash job id -> queue: makes enqueue idempotent and ids global.
- `{prefix}:queues`           set of queue names, for `requeue_consumer`.
- `{prefix}:result:{job_id}`  hash: the one recorded result and the token of the delivery.
- `{prefix}:enqueued`, `{prefix}:claimed` hashes job id -> when it was enqueued, last claimed
  (server time, seconds): one HSET per batch, not per job.
- `{prefix}:causes`           hash job id -> the last cause a consumer gave with `nack`.
- `{prefix}:done`             list of "<result time> <job id>" in result order, for `expire_results`
  (which deletes the result and the job's entries in the hashes above): one RPUSH per ack batch.

Rules:
- Batch arguments travel as one msgpack argument (cmsgpack in the script): one argument to
  encode and parse instead of several per job. The scripts build the queue and result key names
  they touch from the prefix, so the engine needs one Redis server (not a Cluster).
- Every operation is one Lua script, so each check-and-change is atomic on the server; a batch
  (`enqueue_many`, `ack_many`, a claim of `max_jobs`) is one script too: one round trip, all of
  it or none (its checks come before its first write), and one AOF write to fsync.
- Ownership and delivery counts live in the group's pending entries list (PEL). A claim's token is
  the entry id plus the delivery count; it is current while the PEL shows the entry owned by the
  claim's consumer with that count. Every new delivery (XREADGROUP, XCLAIM without JUSTID) bumps
  the count; heartbeats and releases use XCLAIM ... JUSTID, which does not.
- Deadlines are idle times. With `H = MAX_VISIBILITY_TIMEOUT`, a claim with timeout `vt` has its
  idle time set to `H - vt` (XCLAIM ... IDLE), so it reaches `H` exactly at its deadline, and
  `XPENDING ... IDLE H` finds precisely the claims whose own timeout ran out, whatever timeout
  each claimer chose (a claim takes them over with `XCLAIM ... min-idle H`). A heartbeat sets it
  to `H - vt` again. A released job (nack, dead rig) is handed to the reserved consumer
  `~released` with idle `H`: claimable at once, and no longer current for the rig that had it.
  The server's clock is the only clock.
- A result is written only when its hash has no token yet (the only-once guard), in the same
  script as the XACK and XDEL of the entry.
- A job that would be delivered again after `max_deliveries` deliveries is moved to the dead
  stream instead (at claim time, on release, or when `stats` looks).

Durability: Redis' own. Run it with `appendonly yes` and `appendfsync always` and every script
that returned survives a kill -9 of redis-server (its writes were fsynced to the AOF before the
reply was sent). With the default `appendfsync everysec` a crash may lose the last second.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import coredis
import coredis.exceptions
import msgpack
import trio

from . import resp
from .engine import (
    DEFAULT_MAX_DELIVERIES,
    MAX_VISIBILITY_TIMEOUT,
    REASON_MAX_DELIVERIES,
    ClaimedJob,
    DeadLetter,
    InvalidArgument,
    Job,
    JobInfo,
    JobResult,
    NewJob,
    QueueClosed,
    QueueError,
    QueueStats,
    StaleClaim,
    UnknownJob,
    check_batch,
    check_cause,
    check_count,
    check_name,
    check_new_job,
    check_visibility_timeout,
    pack_payload,
    unpack_payload,
)

GROUP = "workers"
#: Jobs one script of `expire_results` forgets.
EXPIRE_CHUNK = 1000
#: Oldest Redis with XPENDING ... IDLE and exclusive ranges.
MIN_REDIS_VERSION = (6, 2)
_HORIZON_MS = int(MAX_VISIBILITY_TIMEOUT * 1000)

_PRELUDE = f"""
local GROUP = '{GROUP}'
local RELEASED = '~released'
-- ids per call of a many-id command (Lua's unpack stops at a few thousand values)
local CHUNK = 1000
-- redis.call(head..., ids..., tail...) in calls of at most CHUNK ids; array replies concatenated
local function chunked(head, ids, tail)
  local replies = {{}}
  for i = 1, #ids, CHUNK do
    local args = {{unpack(head)}}
    for j = i, math.min(i + CHUNK - 1, #ids) do args[#args + 1] = ids[j] end
    for _, v in ipairs(tail or {{}}) do args[#args + 1] = v end
    local r = redis.call(unpack(args))
    if type(r) == 'table' then
      for _, v in ipairs(r) do replies[#replies + 1] = v end
    end
  end
  return replies
end
-- the queue of each row's job (its first field) from the jobs hash, false where there is none
local function queues_of(jobs_key, rows)
  local ids = {{}}
  for i, row in ipairs(rows) do ids[i] = row[1] end
  return chunked({{'HMGET', jobs_key}}, ids)
end
local function tomap(flat)
  local m = {{}}
  for i = 1, #flat, 2 do m[flat[i]] = flat[i + 1] end
  return m
end
local function entry(stream, id)
  local e = redis.call('XRANGE', stream, id, id)
  if #e == 0 then return nil end
  return tomap(e[1][2])
end
local function dead_letter(stream, dead, counts, id, deliveries, reason)
  local f = entry(stream, id)
  if f then
    local letter = redis.call('XADD', dead, '*', 'j', f.j, 'p', f.p, 'm', f.m, 'n', deliveries, 'r', reason)
    redis.call('HSET', dead .. 'jobs', f.j, letter)
    redis.call('HINCRBY', counts, 'dead', 1)
  end
  redis.call('XACK', stream, GROUP, id)
  redis.call('XDEL', stream, id)
end
-- 1 if the entry is pending, owned by consumer, with this delivery count
local function current(stream, id, consumer, deliveries)
  if redis.call('EXISTS', stream) == 0 then return false end
  local p = redis.call('XPENDING', stream, GROUP, id, id, 1)
  return #p == 1 and p[1][2] == consumer and p[1][4] == tonumber(deliveries)
end
-- release a pending entry: dead letter if out of deliveries, else claimable at once
local function release(stream, dead, counts, id, deliveries, horizon, reason)
  local f = entry(stream, id)
  if f == nil or deliveries >= tonumber(f.m) then
    dead_letter(stream, dead, counts, id, deliveries, reason)
  else
    redis.call('XCLAIM', stream, GROUP, RELEASED, 0, id, 'IDLE', horizon, 'JUSTID')
  end
end
"""

# KEYS: jobs, queues, stream, counts, enqueued   ARGV: queue, msgpack [[job_id, payload, max_deliveries], ...]
# -> {0}, or {position (1-based) of a job whose id is used on another queue, that queue}
_ENQUEUE_MANY = """
local queue, jobs = ARGV[1], cmsgpack.unpack(ARGV[2])
local owners = queues_of(KEYS[1], jobs)
for i = 1, #jobs do
  if owners[i] and owners[i] ~= queue then return {i, owners[i]} end
end
if redis.call('EXISTS', KEYS[3]) == 0 then
  redis.call('XGROUP', 'CREATE', KEYS[3], GROUP, '0', 'MKSTREAM')
end
local t = redis.call('TIME')
local at = t[1] .. '.' .. string.format('%06d', tonumber(t[2]))
local added, seen, ids, times = 0, {}, {}, {}
for i, job in ipairs(jobs) do
  if not owners[i] and not seen[job[1]] then  -- new, and not earlier in this batch
    seen[job[1]] = true
    redis.call('XADD', KEYS[3], '*', 'j', job[1], 'p', job[2], 'm', job[3])
    ids[#ids + 1] = job[1]
    ids[#ids + 1] = queue
    times[#times + 1] = job[1]
    times[#times + 1] = at
    added = added + 1
  end
end
-- the entries before the ids (one HSET for the batch), as one job alone always did: a write
-- refused half way leaves a job that may run twice, never an id that never runs
chunked({'HSET', KEYS[1]}, ids)
chunked({'HSET', KEYS[5]}, times)
redis.call('SADD', KEYS[2], queue)
if added > 0 then redis.call('HINCRBY', KEYS[4], 'waiting', added) end
return {0}
"""

# KEYS: stream, dead, counts, claimed   ARGV: consumer, horizon_ms, timeout_ms, max_jobs, reason
# -> msgpack {server time, {{entry id, job id, payload, max deliveries, deliveries}, ...}}
_CLAIM_FN = """
local function claim_jobs(stream, dead, counts, claimed, consumer, horizon, timeout, want, reason)
local out = {}
local now = redis.call('TIME')
if redis.call('EXISTS', stream) == 0 then return {now, out} end
local taken = {}
local function take(id, f, deliveries)
  taken[#taken + 1] = id
  out[#out + 1] = {id, f.j, f.p, f.m, deliveries}
end
-- expired claims, oldest entry first: one XPENDING IDLE scan of the PEL (in C) per round, not a
-- walk through the whole PEL a few entries per call, which cost every claim O(jobs in flight)
local start = '-'
repeat
  local asked = want - #out
  local expired = redis.call('XPENDING', stream, GROUP, 'IDLE', horizon, start, '+', asked)
  for _, p in ipairs(expired) do
    local id = p[1]
    start = '(' .. id
    local e = redis.call('XCLAIM', stream, GROUP, consumer, horizon, id)[1]
    if e then  -- a new delivery: XCLAIM counted it
      local f = tomap(e[2])
      local n = p[4] + 1
      if n > tonumber(f.m) then
        dead_letter(stream, dead, counts, id, n - 1, reason)
      else
        take(id, f, n)
      end
    else  -- its entry is gone from the stream
      redis.call('XACK', stream, GROUP, id)
    end
  end
until #expired < asked or #out >= want
if #out < want then
  local r = redis.call('XREADGROUP', 'GROUP', GROUP, consumer, 'COUNT', want - #out,
                       'STREAMS', stream, '>')
  if r then
    for _, e in ipairs(r[1][2]) do take(e[1], tomap(e[2]), 1) end
    if #r[1][2] > 0 then redis.call('HINCRBY', counts, 'waiting', -#r[1][2]) end
  end
end
-- every taken entry gets this claim's deadline (as an idle time)
chunked({'XCLAIM', stream, GROUP, consumer, 0}, taken, {'IDLE', horizon - timeout, 'JUSTID'})
if #out > 0 then
  local at, times = now[1] .. '.' .. string.format('%06d', tonumber(now[2])), {}
  for _, o in ipairs(out) do
    times[#times + 1] = o[2]
    times[#times + 1] = at
  end
  chunked({'HSET', claimed}, times)
end
return {now, out}
end
"""
_CLAIM = (
    _CLAIM_FN
    + """
return cmsgpack.pack(claim_jobs(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]),
                                tonumber(ARGV[4]), ARGV[5]))
"""
)

# KEYS: stream, jobs   ARGV: job_id, entry id, consumer, deliveries, idle_ms
_HEARTBEAT = """
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 0 then return -1 end
if not current(KEYS[1], ARGV[2], ARGV[3], ARGV[4]) then return 0 end
redis.call('XCLAIM', KEYS[1], GROUP, ARGV[3], 0, ARGV[2], 'IDLE', ARGV[5], 'JUSTID')
return redis.call('TIME')
"""

# KEYS: jobs   ARGV: prefix, msgpack [[job_id, entry id, consumer, deliveries, token, result, queue], ...]
# -> msgpack {0, 1|0 per ack}, or {-1, position (1-based) of an ack whose job was never enqueued}
# The streams, counts, result hashes and the done set it touches are named from the prefix.
# Few calls per job (each redis.call costs a microsecond or two): the consumers' pending entries
# come from one XPENDING per (queue, consumer) of the batch, a result's token is read only for an
# ack that is not current (a current delivery has no result yet: recording one removes its entry).
_ACK_FN = """
local function ack_jobs(prefix, jobs_key, acks)
local known = queues_of(jobs_key, acks)
for i = 1, #acks do
  if not known[i] then return {-1, i} end
end
local t = redis.call('TIME')
local at = t[1] .. '.' .. string.format('%06d', tonumber(t[2]))
local wanted = {}  -- queue -> consumer -> acks naming it
for _, a in ipairs(acks) do
  local by = wanted[a[7]] or {}
  wanted[a[7]] = by
  by[a[3]] = (by[a[3]] or 0) + 1
end
local pel = {}  -- queue -> consumer -> {entry id -> deliveries}, or false: look each entry up
for queue, by in pairs(wanted) do
  local stream = prefix .. ':q:' .. queue .. ':stream'
  local exists = redis.call('EXISTS', stream) == 1
  pel[queue] = {}
  for consumer, n in pairs(by) do
    local entries = {}
    if exists then
      local limit = n + 64
      local p = redis.call('XPENDING', stream, GROUP, '-', '+', limit, consumer)
      if #p >= limit then entries = false else
        for _, e in ipairs(p) do entries[e[1]] = e[4] end
      end
    end
    pel[queue][consumer] = entries
  end
end
local out = {0}
local acked, order = {}, {}  -- queue -> entry ids recorded; queues in first-seen order
local here = {}  -- job id -> token recorded by this batch
local finished = {}  -- '<result time> <job id>' for the done list
for _, a in ipairs(acks) do
  local job_id, entry_id, consumer, deliveries, token, queue = a[1], a[2], a[3], a[4], a[5], a[7]
  local answer = 0
  local entries = pel[queue][consumer]
  local is_current
  if here[job_id] then
    is_current = false
  elseif entries then
    is_current = entries[entry_id] == tonumber(deliveries)
  else
    is_current = current(prefix .. ':q:' .. queue .. ':stream', entry_id, consumer, deliveries)
  end
  if is_current then
    redis.call('HSET', prefix .. ':result:' .. job_id, 'token', token, 'queue', queue, 'payload', a[6],
               'consumer', consumer, 'deliveries', deliveries, 'at', at)
    here[job_id] = token
    finished[#finished + 1] = at .. ' ' .. job_id
    if not acked[queue] then
      acked[queue] = {}
      order[#order + 1] = queue
    end
    acked[queue][#acked[queue] + 1] = entry_id
    answer = 1
  else
    local recorded = here[job_id] or redis.call('HGET', prefix .. ':result:' .. job_id, 'token')
    if recorded == token then answer = 1 end
  end
  out[#out + 1] = answer
end
-- the recorded entries leave the PEL and the stream, a few calls per queue
for _, queue in ipairs(order) do
  local stream, entries = prefix .. ':q:' .. queue .. ':stream', acked[queue]
  chunked({'XACK', stream, GROUP}, entries)
  chunked({'XDEL', stream}, entries)
  redis.call('HINCRBY', prefix .. ':q:' .. queue .. ':counts', 'done', #entries)
end
chunked({'RPUSH', prefix .. ':done'}, finished)
return out
end
"""
_ACK_MANY = (
    _ACK_FN
    + """
return cmsgpack.pack(ack_jobs(ARGV[1], KEYS[1], cmsgpack.unpack(ARGV[2])))
"""
)

# KEYS: jobs, then claim's   ARGV: prefix, acks (as ack_many), then claim's
# -> msgpack {ack_many's answer, claim's answer}; {ack_many's answer} alone if an ack's job is unknown
_ACK_AND_CLAIM = (
    _ACK_FN
    + _CLAIM_FN
    + """
local acked = ack_jobs(ARGV[1], KEYS[1], cmsgpack.unpack(ARGV[2]))
if acked[1] ~= 0 then return cmsgpack.pack({acked}) end
return cmsgpack.pack({acked, claim_jobs(KEYS[2], KEYS[3], KEYS[4], KEYS[5], ARGV[3], tonumber(ARGV[4]),
                                        tonumber(ARGV[5]), tonumber(ARGV[6]), ARGV[7])})
"""
)

# KEYS: stream, jobs, dead, counts, causes
# ARGV: job_id, entry id, consumer, deliveries, horizon, reason, has cause (1|0), cause
_NACK = """
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 0 then return -1 end
if not current(KEYS[1], ARGV[2], ARGV[3], ARGV[4]) then return 0 end
if ARGV[7] == '1' then redis.call('HSET', KEYS[5], ARGV[1], ARGV[8]) end
release(KEYS[1], KEYS[3], KEYS[4], ARGV[2], tonumber(ARGV[4]), ARGV[5], ARGV[6])
return 1
"""

# KEYS: jobs, enqueued, claimed, causes   ARGV: prefix, job_id
# -> {queue or false, enqueued at, claimed at, cause, result time, dead letter id}
_INFO = """
local prefix, job_id = ARGV[1], ARGV[2]
local queue = redis.call('HGET', KEYS[1], job_id)
if not queue then return {false} end
return {queue, redis.call('HGET', KEYS[2], job_id), redis.call('HGET', KEYS[3], job_id),
        redis.call('HGET', KEYS[4], job_id), redis.call('HGET', prefix .. ':result:' .. job_id, 'at'),
        redis.call('HGET', prefix .. ':q:' .. queue .. ':deadjobs', job_id)}
"""

# KEYS: done, jobs, enqueued, claimed, causes   ARGV: prefix, before (seconds), limit   -> jobs forgotten
# (and taken off their queue's done count). The done list is in result order (scripts run one at a
# time, stamped with the server's clock), so the expired ones are its head.
_EXPIRE = """
local prefix, before = ARGV[1], tonumber(ARGV[2])
local head = redis.call('LRANGE', KEYS[1], 0, tonumber(ARGV[3]) - 1)
local ids, results, rows, done = {}, {}, {}, {}
for _, item in ipairs(head) do
  local at, id = string.match(item, '^(%S+) (.+)$')
  if tonumber(at) >= before then break end
  ids[#ids + 1] = id
  results[#ids] = prefix .. ':result:' .. id
  rows[#ids] = {id}
end
if #ids == 0 then return 0 end
for _, queue in ipairs(queues_of(KEYS[2], rows)) do
  if queue then done[queue] = (done[queue] or 0) + 1 end
end
for queue, n in pairs(done) do redis.call('HINCRBY', prefix .. ':q:' .. queue .. ':counts', 'done', -n) end
chunked({'DEL'}, results)
for k = 2, 5 do chunked({'HDEL', KEYS[k]}, ids) end
redis.call('LTRIM', KEYS[1], #ids, -1)
return #ids
"""

# KEYS: stream, dead, counts   ARGV: consumer, horizon, reason   -> jobs released
_REQUEUE_CONSUMER = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local released = 0
while true do
  local p = redis.call('XPENDING', KEYS[1], GROUP, '-', '+', 1000, ARGV[1])
  if #p == 0 then break end
  for _, e in ipairs(p) do
    release(KEYS[1], KEYS[2], KEYS[3], e[1], e[4], ARGV[2], ARGV[3])
    released = released + 1
  end
end
redis.call('XGROUP', 'DELCONSUMER', KEYS[1], GROUP, ARGV[1])
return released
"""

# KEYS: stream, dead, counts   ARGV: horizon, reason   -> {ready, in flight, done, dead}
_STATS = """
local expired = 0
local pending = 0
if redis.call('EXISTS', KEYS[1]) == 1 then
  for _, e in ipairs(redis.call('XPENDING', KEYS[1], GROUP, 'IDLE', ARGV[1], '-', '+', 1000000)) do
    local f = entry(KEYS[1], e[1])
    if f == nil or e[4] >= tonumber(f.m) then
      dead_letter(KEYS[1], KEYS[2], KEYS[3], e[1], e[4], ARGV[2])
    else
      expired = expired + 1
    end
  end
  pending = redis.call('XPENDING', KEYS[1], GROUP)[1]
end
local c = redis.call('HMGET', KEYS[3], 'waiting', 'done', 'dead')
local waiting = tonumber(c[1]) or 0
return {waiting + expired, pending - expired, tonumber(c[2]) or 0, tonumber(c[3]) or 0}
"""


def _lua_pack(rows: list[Any]) -> bytes:
    """msgpack for a script's cmsgpack.unpack: the old raw type for bytes, which it reads (it
    refuses the bin types)."""
    return msgpack.packb(rows, use_bin_type=False)


def _lua_unpack(data: bytes) -> Any:
    """A script's reply packed with cmsgpack.pack: one bulk string to read instead of a RESP array
    of every field (Lua strings come back as bytes)."""
    return msgpack.unpackb(data, raw=True)


def _claimed(queue: str, consumer: str, timeout: float, now_reply: Any, entries: Any) -> list[ClaimedJob]:
    """The claims a claim script's reply names."""
    deadline = _seconds(now_reply) + timeout
    return [
        ClaimedJob(
            job_id=_text(job_id),
            queue=queue,
            payload=unpack_payload(payload),
            deliveries=int(deliveries),
            max_deliveries=int(max_deliveries),
            consumer=consumer,
            token=_token(_text(entry_id), int(deliveries)),
            visibility_timeout=timeout,
            deadline=deadline,
        )
        for entry_id, job_id, payload, max_deliveries, deliveries in entries
    ]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _seconds(time_reply: Sequence[Any]) -> float:
    """A Redis TIME reply as float seconds."""
    return int(time_reply[0]) + int(time_reply[1]) / 1e6


def _token(entry_id: str, deliveries: int) -> str:
    return f"{entry_id}/{deliveries}"


def _entry_id(claim: ClaimedJob) -> str:
    entry_id, sep, deliveries = claim.token.partition("/")
    if not sep or deliveries != str(claim.deliveries):
        raise InvalidArgument(f"claim token {claim.token!r} was not issued by the Redis engine")
    return entry_id


class RedisQueueEngine:
    """`QueueEngine` on Redis Streams. Open it with `open_redis_queue`."""

    def __init__(
        self, client: coredis.Redis[bytes], *, prefix: str = "stratumkit:queue", raw: resp.RawPool | None = None
    ) -> None:
        self._client = client
        self._prefix = prefix
        self._closed = False
        self._raw = raw  # the scripts' lean connections to the same server (coredis when None)
        self._scripts = {
            name: client.register_script(_PRELUDE + source)
            for name, source in {
                "enqueue_many": _ENQUEUE_MANY,
                "claim": _CLAIM,
                "heartbeat": _HEARTBEAT,
                "ack_many": _ACK_MANY,
                "ack_and_claim": _ACK_AND_CLAIM,
                "nack": _NACK,
                "info": _INFO,
                "expire": _EXPIRE,
                "requeue_consumer": _REQUEUE_CONSUMER,
                "stats": _STATS,
            }.items()
        }

    @property
    def client(self) -> coredis.Redis[bytes]:
        """The connection pool, for other stores of the same pool process (the lease store)."""
        return self._client

    # --- keys and plumbing ---------------------------------------------------------------------

    def _key(self, *parts: str) -> str:
        return ":".join((self._prefix, *parts))

    def _queue_keys(self, queue: str) -> tuple[str, str, str]:
        return (
            self._key("q", queue, "stream"),
            self._key("q", queue, "dead"),
            self._key("q", queue, "counts"),
        )

    async def _script(self, name: str, keys: list[str], args: list[str | bytes | int]) -> Any:
        if self._closed:
            raise QueueClosed("the queue engine is closed")
        if self._raw is not None:
            return await self._raw_script(name, keys, args)
        try:
            return await self._scripts[name](keys=keys, args=args)
        except coredis.exceptions.RedisError as exc:
            raise QueueError(f"redis {name} failed: {exc}") from exc

    async def _raw_script(self, name: str, keys: list[str], args: list[str | bytes | int]) -> Any:
        assert self._raw is not None
        script = self._scripts[name]
        sha = _text(script.sha)
        try:
            try:
                return await self._raw.call("EVALSHA", sha, len(keys), *keys, *args)
            except resp.RespError as exc:
                if not str(exc).startswith("NOSCRIPT"):
                    raise
            await self._raw.call("SCRIPT", "LOAD", script.script)
            return await self._raw.call("EVALSHA", sha, len(keys), *keys, *args)
        except (resp.RespError, OSError, trio.BrokenResourceError) as exc:
            raise QueueError(f"redis {name} failed: {exc}") from exc

    async def _command(self, request: Any) -> Any:
        if self._closed:
            raise QueueClosed("the queue engine is closed")
        try:
            return await request
        except coredis.exceptions.RedisError as exc:
            raise QueueError(f"redis command failed: {exc}") from exc

    async def check_server(self) -> None:
        """Refuse a server too old for XPENDING ... IDLE."""
        info = await self._command(self._client.info("server"))
        version = str(info.get("redis_version", "0"))
        parts = tuple(int(p) for p in version.split(".")[:2] if p.isdigit())
        if parts < MIN_REDIS_VERSION:
            raise QueueError(f"Redis {version} is too old: the queue needs 6.2 or newer")

    # --- QueueEngine ---------------------------------------------------------------------------

    async def enqueue(
        self,
        queue: str,
        payload: dict[str, Any],
        *,
        job_id: str | None = None,
        max_deliveries: int = DEFAULT_MAX_DELIVERIES,
    ) -> str:
        [job_id] = await self.enqueue_many(queue, [NewJob(payload, job_id, max_deliveries)])
        return job_id

    async def enqueue_many(self, queue: str, jobs: Sequence[NewJob]) -> list[str]:
        check_name("queue", queue)
        check_batch("jobs", jobs)
        rows = [check_new_job(job) for job in jobs]
        if not rows:
            return []
        stream, _, counts = self._queue_keys(queue)
        reply = await self._script(
            "enqueue_many",
            [self._key("jobs"), self._key("queues"), stream, counts, self._key("enqueued")],
            [queue, _lua_pack(rows)],
        )
        if int(reply[0]) != 0:
            job_id = rows[int(reply[0]) - 1][0]
            raise InvalidArgument(f"job id {job_id!r} is already used on queue {_text(reply[1])!r}")
        return [job_id for job_id, _, _ in rows]

    async def claim(
        self, queue: str, consumer: str, visibility_timeout: float, *, max_jobs: int = 1
    ) -> list[ClaimedJob]:
        keys, args, timeout = self._claim_call(queue, consumer, visibility_timeout, max_jobs)
        now_reply, entries = _lua_unpack(await self._script("claim", keys, args))
        return _claimed(queue, consumer, timeout, now_reply, entries)

    def _claim_call(
        self, queue: str, consumer: str, visibility_timeout: float, max_jobs: int
    ) -> tuple[list[str], list[str | bytes | int], float]:
        """The claim script's keys and arguments, and the checked timeout."""
        check_name("queue", queue)
        check_name("consumer", consumer)
        timeout = check_visibility_timeout(visibility_timeout)
        check_count("max_jobs", max_jobs)
        keys = [*self._queue_keys(queue), self._key("claimed")]
        return keys, [consumer, _HORIZON_MS, round(timeout * 1000), max_jobs, REASON_MAX_DELIVERIES], timeout

    async def ack_and_claim(
        self,
        acks: Sequence[tuple[ClaimedJob, dict[str, Any]]],
        queue: str,
        consumer: str,
        visibility_timeout: float,
        *,
        max_jobs: int = 1,
    ) -> tuple[list[bool], list[ClaimedJob]]:
        rows = self._ack_rows(acks)
        keys, args, timeout = self._claim_call(queue, consumer, visibility_timeout, max_jobs)
        reply = _lua_unpack(
            await self._script("ack_and_claim", [self._key("jobs"), *keys], [self._prefix, _lua_pack(rows), *args])
        )
        answers = self._acked(acks, reply[0])
        now_reply, entries = reply[1]
        return answers, _claimed(queue, consumer, timeout, now_reply, entries)

    def _claim_args(self, claim: ClaimedJob) -> list[str | bytes | int]:
        return [claim.job_id, _entry_id(claim), claim.consumer, claim.deliveries]

    async def heartbeat(self, claim: ClaimedJob, visibility_timeout: float | None = None) -> ClaimedJob:
        timeout = check_visibility_timeout(
            claim.visibility_timeout if visibility_timeout is None else visibility_timeout
        )
        stream, _, _ = self._queue_keys(claim.queue)
        reply = await self._script(
            "heartbeat",
            [stream, self._key("jobs")],
            [*self._claim_args(claim), _HORIZON_MS - round(timeout * 1000)],
        )
        if reply == -1:
            raise UnknownJob(claim.job_id)
        if reply == 0:
            raise StaleClaim(claim.job_id, claim.token)
        return dataclasses.replace(claim, visibility_timeout=timeout, deadline=_seconds(reply) + timeout)

    async def ack(self, claim: ClaimedJob, result: dict[str, Any]) -> bool:
        [acked] = await self.ack_many([(claim, result)])
        return acked

    async def ack_many(self, acks: Sequence[tuple[ClaimedJob, dict[str, Any]]]) -> list[bool]:
        rows = self._ack_rows(acks)
        if not rows:
            return []
        reply = _lua_unpack(await self._script("ack_many", [self._key("jobs")], [self._prefix, _lua_pack(rows)]))
        return self._acked(acks, reply)

    def _ack_rows(self, acks: Sequence[tuple[ClaimedJob, dict[str, Any]]]) -> list[list[str | bytes | int]]:
        check_batch("acks", acks)
        return [
            [*self._claim_args(claim), claim.token, pack_payload("result", result), claim.queue]
            for claim, result in acks
        ]

    @staticmethod
    def _acked(acks: Sequence[tuple[ClaimedJob, dict[str, Any]]], reply: list[int]) -> list[bool]:
        if int(reply[0]) == -1:
            raise UnknownJob(acks[int(reply[1]) - 1][0].job_id)
        return [answer == 1 for answer in reply[1:]]

    async def nack(self, claim: ClaimedJob, *, cause: str | None = None) -> None:
        cause = check_cause(cause)
        stream, dead, counts = self._queue_keys(claim.queue)
        reply = await self._script(
            "nack",
            [stream, self._key("jobs"), dead, counts, self._key("causes")],
            [*self._claim_args(claim), _HORIZON_MS, REASON_MAX_DELIVERIES, int(cause is not None), cause or ""],
        )
        if reply == -1:
            raise UnknownJob(claim.job_id)
        if reply == 0:
            raise StaleClaim(claim.job_id, claim.token)

    async def requeue_consumer(self, consumer: str) -> int:
        check_name("consumer", consumer)
        queues = await self._command(self._client.smembers(self._key("queues")))
        released = 0
        for queue in sorted(_text(q) for q in queues):
            released += int(
                await self._script(
                    "requeue_consumer",
                    list(self._queue_keys(queue)),
                    [consumer, _HORIZON_MS, REASON_MAX_DELIVERIES],
                )
            )
        return released

    async def result(self, job_id: str) -> JobResult | None:
        check_name("job_id", job_id)
        fields = await self._command(self._client.hgetall(self._key("result", job_id)))
        if not fields:
            if await self._command(self._client.hget(self._key("jobs"), job_id)) is None:
                raise UnknownJob(job_id)
            return None
        f = {_text(k): v for k, v in fields.items()}
        return JobResult(
            job_id=job_id,
            queue=_text(f["queue"]),
            payload=unpack_payload(f["payload"]),
            consumer=_text(f["consumer"]),
            deliveries=int(f["deliveries"]),
            completed_at=float(f["at"]),
        )

    async def stats(self, queue: str) -> QueueStats:
        check_name("queue", queue)
        ready, in_flight, done, dead = await self._script(
            "stats", list(self._queue_keys(queue)), [_HORIZON_MS, REASON_MAX_DELIVERIES]
        )
        return QueueStats(queue=queue, ready=int(ready), in_flight=int(in_flight), done=int(done), dead=int(dead))

    async def dead_letters(self, queue: str, *, limit: int = 100) -> list[DeadLetter]:
        check_name("queue", queue)
        check_count("limit", limit)
        _, dead, _ = self._queue_keys(queue)
        entries = await self._command(self._client.xrange(dead, count=limit))
        return [_letter(queue, entry) for entry in entries]

    async def dead_letter(self, job_id: str) -> DeadLetter | None:
        check_name("job_id", job_id)
        queue = await self._command(self._client.hget(self._key("jobs"), job_id))
        if queue is None:
            raise UnknownJob(job_id)
        queue = _text(queue)
        _, dead, _ = self._queue_keys(queue)
        entry_id = await self._command(self._client.hget(dead + "jobs", job_id))
        if entry_id is None:
            return None
        entries = await self._command(self._client.xrange(dead, _text(entry_id), _text(entry_id)))
        return _letter(queue, entries[0]) if entries else None

    async def info(self, job_id: str) -> JobInfo:
        check_name("job_id", job_id)
        keys = [self._key("jobs"), self._key("enqueued"), self._key("claimed"), self._key("causes")]
        reply = await self._script("info", keys, [self._prefix, job_id])
        if not reply or reply[0] is None:
            raise UnknownJob(job_id)
        queue, enqueued_at, claimed_at, cause, completed_at, dead = reply
        state = "done" if completed_at is not None else "dead" if dead is not None else "pending"
        return JobInfo(
            job_id=job_id,
            queue=_text(queue),
            state=state,
            # a job enqueued before the engine kept enqueue times: unknown (0)
            enqueued_at=0.0 if enqueued_at is None else float(enqueued_at),
            claimed_at=None if claimed_at is None else float(claimed_at),
            completed_at=None if completed_at is None else float(completed_at),
            cause=None if cause is None else _text(cause),
        )

    async def expire_results(self, before: float) -> int:
        """In scripts of at most `EXPIRE_CHUNK` jobs, so other clients get their turn."""
        keys = [self._key(k) for k in ("done", "jobs", "enqueued", "claimed", "causes")]
        total = 0
        while True:
            n = int(await self._script("expire", keys, [self._prefix, repr(float(before)), EXPIRE_CHUNK]))
            total += n
            if n < EXPIRE_CHUNK:
                return total

    async def close(self) -> None:
        """Refuse further calls; the coredis connection closes when `open_redis_queue` exits."""
        self._closed = True
        if self._raw is not None:
            await self._raw.aclose()


@asynccontextmanager
async def open_redis_queue(
    url: str = "redis://127.0.0.1:6379/0", *, prefix: str = "stratumkit:queue", raw_scripts: bool = True
) -> AsyncIterator[RedisQueueEngine]:
    """Connect to Redis at `url`, check its version, and yield the engine.

    With `raw_scripts` (and a plain redis:// URL) the queue's scripts run on lean connections of
    their own (`resp.RawPool`), everything else on coredis.

    coredis keeps its connections in a task group, so the engine lives inside this context. That
    task group wraps whatever crosses it in an exception group; a lone exception (the caller's
    own, or a connection failure) is given back as itself."""
    client = coredis.Redis.from_url(url, decode_responses=False)
    lone: BaseException | None = None
    try:
        async with client:
            raw = resp.RawPool.from_url(url) if raw_scripts else None
            engine = RedisQueueEngine(client, prefix=prefix, raw=raw)
            try:
                await engine.check_server()
                yield engine
            finally:
                await engine.close()
    except BaseExceptionGroup as group:
        lone = _lone_exception(group)
        if lone is None:
            raise
    except coredis.exceptions.RedisError as exc:
        raise QueueError(f"redis at {url}: {exc}") from exc
    if isinstance(lone, coredis.exceptions.RedisError):
        raise QueueError(f"redis at {url}: {lone}") from lone
    if lone is not None:
        raise lone


def _lone_exception(group: BaseExceptionGroup[BaseException]) -> BaseException | None:
    while len(group.exceptions) == 1:
        inner = group.exceptions[0]
        if not isinstance(inner, BaseExceptionGroup):
            return inner
        group = inner
    return None


def _letter(queue: str, entry: Any) -> DeadLetter:
    """A dead letter from its entry in the queue's dead stream."""
    f = {_text(k): v for k, v in entry.field_values.items()}
    return DeadLetter(
        job=Job(
            job_id=_text(f["j"]),
            queue=queue,
            payload=unpack_payload(f["p"]),
            deliveries=int(f["n"]),
            max_deliveries=int(f["m"]),
        ),
        reason=_text(f["r"]),
        dead_at=int(_text(entry.identifier).partition("-")[0]) / 1000,
    )
