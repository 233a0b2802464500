"""The distributed queue engine: lists, hashes and sorted sets in Redis (through coredis, anyio,
so it runs on trio; the hot scripts on `resp` connections).

Layout (every key under `prefix`; a queue's keys under `{prefix}:q:{queue}`):
- `...:ready`     list of the ids of the queue's jobs never delivered, in enqueue order.
- `...:entries`   hash job id -> '<max deliveries> <msgpack payload>', while the job is not done.
- `...:claims`    hash job id -> '<incarnation> <deliveries> <consumer>', its current delivery, while
  the job is not done (consumer empty before its first, `~released` after a release). The
  incarnation is a number of the queue's own (`counts` field seq) given at enqueue, so a claim of
  a job id enqueued again after its result expired is never current for the new job.
- `...:deadlines` sorted set job id -> deadline (server time, microseconds) of the jobs in flight.
- `...:dead`      the queue's dead letters (a stream: j, p, m, deliveries n, reason r).
- `...:deadjobs`  hash job id -> its entry id in the dead stream.
- `...:counts`    hash: done, dead, seq.
- `{prefix}:jobs`     hash job id -> queue: makes enqueue idempotent and ids global.
- `{prefix}:queues`   set of queue names, for `requeue_consumer`.
- `{prefix}:results`  hash job id -> msgpack [token, queue, payload, consumer, deliveries, at]: the
  one recorded result (its token says which delivery recorded it).
- `{prefix}:enqueued`, `{prefix}:claimed` hashes job id -> when it was enqueued, last claimed
  (server time, seconds): one HSET per batch, not per job.
- `{prefix}:causes`   hash job id -> the last cause a consumer gave with `nack`.
- `{prefix}:done`     list of "<result time> <job id>" in result order, for `expire_results`
  (which deletes the result and the job's entries in the hashes above): one RPUSH per ack batch.

Rules:
- Batch arguments travel as one msgpack argument (cmsgpack in the script). The scripts build the
  queue key names they touch from the prefix, so the engine needs one Redis server (not a Cluster).
- Every operation is one Lua script, so each check-and-change is atomic on the server; a batch
  (`enqueue_many`, `ack_many`, a claim of `max_jobs`) is one script too: one round trip, all of
  it or none (its checks come before its first write), and one AOF write to fsync.
- A batch costs a few Redis commands, each with many fields (one HMGET, HSET, ZADD, ZREM, HDEL of
  the batch's jobs), not a few per job: a command called from Lua costs a microsecond or more of
  its own, and every write command is one more to propagate to the AOF. (The earlier layout on
  Redis Streams cost an XADD per job, and each XREADGROUP, XCLAIM and XDEL wrote one AOF command
  per entry.)
- A claim's token is '<incarnation>/<deliveries>'; the claim is current while the job's claims
  value is exactly its incarnation, deliveries and consumer. Every new delivery bumps the count; a
  heartbeat moves the deadline and keeps the value; a release (nack, a rig gone) writes
  `~released` and a deadline of now, so the job is claimable at once and no longer current for
  the rig that had it. A claim takes the jobs past their deadline first (one ZRANGEBYSCORE),
  earliest first, then ready ones (LPOP count). The server's clock is the only clock.
- A result is written only by a current delivery, and recording it ends the delivery (the job
  leaves the claims, entries and deadlines), in the same script: results are recorded once.
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

#: Jobs one script of `expire_results` forgets.
EXPIRE_CHUNK = 1000
#: Oldest Redis with LPOP ... count.
MIN_REDIS_VERSION = (6, 2)

_PRELUDE = """
local RELEASED = '~released'
-- ids per call of a many-id command (Lua's unpack stops at a few thousand values)
local CHUNK = 1000
-- redis.call(head..., ids..., tail...) in calls of at most CHUNK ids; array replies concatenated
local function chunked(head, ids, tail)
  local replies = {}
  for i = 1, #ids, CHUNK do
    local args = {unpack(head)}
    for j = i, math.min(i + CHUNK - 1, #ids) do args[#args + 1] = ids[j] end
    for _, v in ipairs(tail or {}) do args[#args + 1] = v end
    local r = redis.call(unpack(args))
    if type(r) == 'table' then
      for _, v in ipairs(r) do replies[#replies + 1] = v end
    end
  end
  return replies
end
-- the queue of each row's job (its first field) from the jobs hash, false where there is none
local function queues_of(jobs_key, rows)
  local ids = {}
  for i, row in ipairs(rows) do ids[i] = row[1] end
  return chunked({'HMGET', jobs_key}, ids)
end
-- a TIME reply as '<seconds>.<microseconds>', and as microseconds
local function stamp(t) return t[1] .. '.' .. string.format('%06d', tonumber(t[2])) end
local function micros(t) return tonumber(t[1]) * 1000000 + tonumber(t[2]) end
-- an entries value '<max deliveries> <payload>' -> max deliveries (a number), payload
local function split_entry(v)
  local s = string.find(v, ' ', 1, true)
  return tonumber(string.sub(v, 1, s - 1)), string.sub(v, s + 1)
end
-- a claims value '<incarnation> <deliveries> <consumer>' -> incarnation, deliveries (a number), consumer
local function split_claim(v)
  local inc, n, consumer = string.match(v, '^(%d+) (%d+) (.*)$')
  return inc, tonumber(n), consumer
end
-- the job leaves its queue for the dead stream (with its payload, when its entry is still there)
local function dead_letter(qk, id, deliveries, reason)
  local v = redis.call('HGET', qk .. ':entries', id)
  if v then
    local m, p = split_entry(v)
    local letter = redis.call('XADD', qk .. ':dead', '*', 'j', id, 'p', p, 'm', m, 'n', deliveries, 'r', reason)
    redis.call('HSET', qk .. ':deadjobs', id, letter)
    redis.call('HINCRBY', qk .. ':counts', 'dead', 1)
  end
  redis.call('ZREM', qk .. ':deadlines', id)
  redis.call('HDEL', qk .. ':entries', id)
  redis.call('HDEL', qk .. ':claims', id)
end
-- true if the job's current delivery is this one (incarnation, deliveries, consumer)
local function current(qk, id, inc, consumer, deliveries)
  return redis.call('HGET', qk .. ':claims', id) == inc .. ' ' .. deliveries .. ' ' .. consumer
end
-- release a delivery: dead letter if out of deliveries, else claimable at once (deadline now)
local function release(qk, id, inc, deliveries, now, reason)
  local v = redis.call('HGET', qk .. ':entries', id)
  if v == false or deliveries >= split_entry(v) then
    dead_letter(qk, id, deliveries, reason)
  else
    redis.call('HSET', qk .. ':claims', id, inc .. ' ' .. deliveries .. ' ' .. RELEASED)
    redis.call('ZADD', qk .. ':deadlines', now, id)
  end
end
"""

# KEYS: jobs, queues, enqueued   ARGV: queue key, queue, msgpack [[job_id, payload, max_deliveries], ...]
# -> {0}, or {position (1-based) of a job whose id is used on another queue, that queue}
_ENQUEUE_MANY = """
local qk, queue, jobs = ARGV[1], ARGV[2], cmsgpack.unpack(ARGV[3])
local owners = queues_of(KEYS[1], jobs)
for i = 1, #jobs do
  if owners[i] and owners[i] ~= queue then return {i, owners[i]} end
end
local seen, new = {}, {}
for i, job in ipairs(jobs) do
  if not owners[i] and not seen[job[1]] then  -- new, and not earlier in this batch
    seen[job[1]] = true
    new[#new + 1] = job
  end
end
if #new == 0 then return {0} end
local at = stamp(redis.call('TIME'))
local first = redis.call('HINCRBY', qk .. ':counts', 'seq', #new) - #new
local entries, claims, ready, ids, times = {}, {}, {}, {}, {}
for k, job in ipairs(new) do
  local id = job[1]
  entries[#entries + 1] = id
  entries[#entries + 1] = job[3] .. ' ' .. job[2]
  claims[#claims + 1] = id
  claims[#claims + 1] = (first + k) .. ' 0 '
  ready[k] = id
  ids[#ids + 1] = id
  ids[#ids + 1] = queue
  times[#times + 1] = id
  times[#times + 1] = at
end
-- the entries before the ids (one HSET for the batch), as one job alone always did: a write
-- refused half way leaves a job that may run twice, never an id that never runs
chunked({'HSET', qk .. ':entries'}, entries)
chunked({'HSET', qk .. ':claims'}, claims)
chunked({'RPUSH', qk .. ':ready'}, ready)
chunked({'HSET', KEYS[1]}, ids)
chunked({'HSET', KEYS[3]}, times)
redis.call('SADD', KEYS[2], queue)
return {0}
"""

# KEYS: claimed   ARGV: queue key, consumer, timeout_ms, max_jobs, reason
# -> msgpack {server time, {{incarnation, job id, payload, max deliveries, deliveries}, ...}}
_CLAIM_FN = """
local function claim_jobs(qk, claimed, consumer, timeout, want, reason)
local t = redis.call('TIME')
local now = micros(t)
local deadlines, claims, entries = qk .. ':deadlines', qk .. ':claims', qk .. ':entries'
local taken = {}  -- {id, incarnation, deliveries, max deliveries, payload}
-- claims past their deadline (and released ones) first, earliest deadline first: one
-- ZRANGEBYSCORE per round, however many jobs are in flight
local kept = 0  -- expired entries taken this claim: they stay in the set until their new deadline
repeat
  local asked = want - #taken
  local expired = redis.call('ZRANGEBYSCORE', deadlines, '-inf', now, 'LIMIT', kept, asked)
  if #expired == 0 then break end
  local cl, en = chunked({'HMGET', claims}, expired), chunked({'HMGET', entries}, expired)
  for i, id in ipairs(expired) do
    if cl[i] and en[i] then
      local inc, n = split_claim(cl[i])
      local m, p = split_entry(en[i])
      if n + 1 > m then
        dead_letter(qk, id, n, reason)
      else
        taken[#taken + 1] = {id, inc, n + 1, m, p}
        kept = kept + 1
      end
    else  -- its job is gone
      redis.call('ZREM', deadlines, id)
    end
  end
until #expired < asked or #taken >= want
if #taken < want then
  local ready = redis.call('LPOP', qk .. ':ready', want - #taken)
  if ready then
    local cl, en = chunked({'HMGET', claims}, ready), chunked({'HMGET', entries}, ready)
    for i, id in ipairs(ready) do
      if cl[i] and en[i] then
        local inc, n = split_claim(cl[i])
        local m, p = split_entry(en[i])
        taken[#taken + 1] = {id, inc, n + 1, m, p}
      end
    end
  end
end
local out = {}
if #taken > 0 then
  -- every taken job gets this claim's deadline, a microsecond apart in claim order (so they
  -- expire in that order), one ZADD and one HSET each for the batch
  local base, at = now + timeout * 1000, stamp(t)
  local scores, owners, times = {}, {}, {}
  for i, j in ipairs(taken) do
    scores[#scores + 1] = base + i - 1
    scores[#scores + 1] = j[1]
    owners[#owners + 1] = j[1]
    owners[#owners + 1] = j[2] .. ' ' .. j[3] .. ' ' .. consumer
    times[#times + 1] = j[1]
    times[#times + 1] = at
    out[i] = {j[2], j[1], j[5], j[4], j[3]}
  end
  chunked({'ZADD', deadlines}, scores)
  chunked({'HSET', claims}, owners)
  chunked({'HSET', claimed}, times)
end
return {t, out}
end
"""
_CLAIM = (
    _CLAIM_FN
    + """
return cmsgpack.pack(claim_jobs(ARGV[1], KEYS[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]))
"""
)

# KEYS: jobs   ARGV: queue key, job_id, incarnation, consumer, deliveries, timeout_ms
_HEARTBEAT = """
if redis.call('HEXISTS', KEYS[1], ARGV[2]) == 0 then return -1 end
if not current(ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]) then return 0 end
local t = redis.call('TIME')
redis.call('ZADD', ARGV[1] .. ':deadlines', micros(t) + tonumber(ARGV[6]) * 1000, ARGV[2])
return t
"""

# KEYS: jobs, results   ARGV: prefix, msgpack [[job_id, incarnation, consumer, deliveries, token, result, queue], ...]
# -> msgpack {0, 1|0 per ack}, or {-1, position (1-based) of an ack whose job was never enqueued}
# The queues' keys are named from the prefix. A few calls per queue of the batch, not per job:
# one HMGET of the deliveries, then one ZREM, HDEL, HDEL for the recorded ones and one HSET of
# their results; a result's token is read only for an ack that is not current (a current
# delivery has no result yet: recording one ends it).
_ACK_FN = """
local function ack_jobs(prefix, jobs_key, results_key, acks)
local known = queues_of(jobs_key, acks)
for i = 1, #acks do
  if not known[i] then return {-1, i} end
end
local at = stamp(redis.call('TIME'))
local rows, order = {}, {}  -- queue -> {ids, positions}; queues in first-seen order
for i, a in ipairs(acks) do
  local r = rows[a[7]]
  if not r then
    r = {{}, {}}
    rows[a[7]] = r
    order[#order + 1] = a[7]
  end
  r[1][#r[1] + 1] = a[1]
  r[2][#r[2] + 1] = i
end
local state = {}  -- position -> the job's current delivery ('<incarnation> <deliveries> <consumer>')
for _, queue in ipairs(order) do
  local r = rows[queue]
  local values = chunked({'HMGET', prefix .. ':q:' .. queue .. ':claims'}, r[1])
  for k, i in ipairs(r[2]) do state[i] = values[k] end
end
local out = {0}
local acked = {}  -- queue -> job ids recorded
local here = {}  -- job id -> token recorded by this batch
local results, finished = {}, {}  -- results HSET arguments; '<result time> <job id>' for the done list
for i, a in ipairs(acks) do
  local job_id, inc, consumer, deliveries, token, queue = a[1], a[2], a[3], a[4], a[5], a[7]
  local answer = 0
  if not here[job_id] and state[i] == inc .. ' ' .. deliveries .. ' ' .. consumer then
    results[#results + 1] = job_id
    results[#results + 1] = cmsgpack.pack({token, queue, a[6], consumer, deliveries, at})
    here[job_id] = token
    finished[#finished + 1] = at .. ' ' .. job_id
    local ids = acked[queue] or {}
    acked[queue] = ids
    ids[#ids + 1] = job_id
    answer = 1
  else
    local recorded = here[job_id]
    if not recorded then
      local v = redis.call('HGET', results_key, job_id)
      if v then recorded = cmsgpack.unpack(v)[1] end
    end
    if recorded == token then answer = 1 end
  end
  out[#out + 1] = answer
end
-- the recorded jobs leave their queues, a few calls per queue
for _, queue in ipairs(order) do
  local ids = acked[queue]
  if ids then
    local qk = prefix .. ':q:' .. queue
    chunked({'ZREM', qk .. ':deadlines'}, ids)
    chunked({'HDEL', qk .. ':claims'}, ids)
    chunked({'HDEL', qk .. ':entries'}, ids)
    redis.call('HINCRBY', qk .. ':counts', 'done', #ids)
  end
end
chunked({'HSET', results_key}, results)
chunked({'RPUSH', prefix .. ':done'}, finished)
return out
end
"""
_ACK_MANY = (
    _ACK_FN
    + """
return cmsgpack.pack(ack_jobs(ARGV[1], KEYS[1], KEYS[2], cmsgpack.unpack(ARGV[2])))
"""
)

# KEYS: jobs, results, then claim's   ARGV: prefix, acks (as ack_many), then claim's
# -> msgpack {ack_many's answer, claim's answer}; {ack_many's answer} alone if an ack's job is unknown
_ACK_AND_CLAIM = (
    _ACK_FN
    + _CLAIM_FN
    + """
local acked = ack_jobs(ARGV[1], KEYS[1], KEYS[2], cmsgpack.unpack(ARGV[2]))
if acked[1] ~= 0 then return cmsgpack.pack({acked}) end
return cmsgpack.pack({acked, claim_jobs(ARGV[3], KEYS[3], ARGV[4], tonumber(ARGV[5]), tonumber(ARGV[6]), ARGV[7])})
"""
)

# KEYS: jobs, causes
# ARGV: queue key, job_id, incarnation, consumer, deliveries, reason, has cause (1|0), cause
_NACK = """
if redis.call('HEXISTS', KEYS[1], ARGV[2]) == 0 then return -1 end
if not current(ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]) then return 0 end
if ARGV[7] == '1' then redis.call('HSET', KEYS[2], ARGV[2], ARGV[8]) end
release(ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[5]), micros(redis.call('TIME')), ARGV[6])
return 1
"""

# KEYS: jobs, enqueued, claimed, causes, results   ARGV: prefix, job_id
# -> {queue or false, enqueued at, claimed at, cause, result time, dead letter id}
_INFO = """
local prefix, job_id = ARGV[1], ARGV[2]
local queue = redis.call('HGET', KEYS[1], job_id)
if not queue then return {false} end
local result = redis.call('HGET', KEYS[5], job_id)
return {queue, redis.call('HGET', KEYS[2], job_id), redis.call('HGET', KEYS[3], job_id),
        redis.call('HGET', KEYS[4], job_id), result and cmsgpack.unpack(result)[6],
        redis.call('HGET', prefix .. ':q:' .. queue .. ':deadjobs', job_id)}
"""

# KEYS: done, jobs, enqueued, claimed, causes, results   ARGV: prefix, before (seconds), limit
# -> jobs forgotten (and taken off their queue's done count). The done list is in result order
# (scripts run one at a time, stamped with the server's clock), so the expired ones are its head.
_EXPIRE = """
local prefix, before = ARGV[1], tonumber(ARGV[2])
local head = redis.call('LRANGE', KEYS[1], 0, tonumber(ARGV[3]) - 1)
local ids, rows, done = {}, {}, {}
for _, item in ipairs(head) do
  local at, id = string.match(item, '^(%S+) (.+)$')
  if tonumber(at) >= before then break end
  ids[#ids + 1] = id
  rows[#ids] = {id}
end
if #ids == 0 then return 0 end
for _, queue in ipairs(queues_of(KEYS[2], rows)) do
  if queue then done[queue] = (done[queue] or 0) + 1 end
end
for queue, n in pairs(done) do redis.call('HINCRBY', prefix .. ':q:' .. queue .. ':counts', 'done', -n) end
for k = 2, 6 do chunked({'HDEL', KEYS[k]}, ids) end
redis.call('LTRIM', KEYS[1], #ids, -1)
return #ids
"""

# ARGV: queue key, consumer, reason   -> jobs released
# Reads the queue's whole claims hash (every job not done yet): for a rig that went away, not per job.
_REQUEUE_CONSUMER = """
local qk, consumer = ARGV[1], ARGV[2]
local all = redis.call('HGETALL', qk .. ':claims')
local now = micros(redis.call('TIME'))
local released = 0
for i = 1, #all, 2 do
  local inc, n, owner = split_claim(all[i + 1])
  if owner == consumer then
    release(qk, all[i], inc, n, now, ARGV[3])
    released = released + 1
  end
end
return released
"""

# ARGV: queue key, reason   -> {ready, in flight, done, dead}
_STATS = """
local qk = ARGV[1]
local deadlines = qk .. ':deadlines'
local expired = 0
local due = redis.call('ZRANGEBYSCORE', deadlines, '-inf', micros(redis.call('TIME')))
if #due > 0 then
  local cl, en = chunked({'HMGET', qk .. ':claims'}, due), chunked({'HMGET', qk .. ':entries'}, due)
  for i, id in ipairs(due) do
    if cl[i] and en[i] then
      local _, n = split_claim(cl[i])
      if n >= split_entry(en[i]) then dead_letter(qk, id, n, ARGV[2]) else expired = expired + 1 end
    else
      redis.call('ZREM', deadlines, id)
    end
  end
end
local c = redis.call('HMGET', qk .. ':counts', 'done', 'dead')
return {redis.call('LLEN', qk .. ':ready') + expired, redis.call('ZCARD', deadlines) - expired,
        tonumber(c[1]) or 0, tonumber(c[2]) or 0}
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
    """`QueueEngine` on Redis lists, hashes and sorted sets. Open it with `open_redis_queue`."""

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

    def _queue_key(self, queue: str) -> str:
        """The prefix of a queue's keys (`:ready`, `:entries`, `:claims`, `:deadlines`, `:dead`, ...)."""
        return self._key("q", queue)

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
        """Refuse a server too old for LPOP ... count."""
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
        reply = await self._script(
            "enqueue_many",
            [self._key("jobs"), self._key("queues"), self._key("enqueued")],
            [self._queue_key(queue), queue, _lua_pack(rows)],
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
        keys = [self._key("claimed")]
        args: list[str | bytes | int] = [self._queue_key(queue), consumer, round(timeout * 1000), max_jobs]
        return keys, [*args, REASON_MAX_DELIVERIES], timeout

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
            await self._script("ack_and_claim", [*self._ack_keys(), *keys], [self._prefix, _lua_pack(rows), *args])
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
        reply = await self._script(
            "heartbeat",
            [self._key("jobs")],
            [self._queue_key(claim.queue), *self._claim_args(claim), round(timeout * 1000)],
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
        reply = _lua_unpack(await self._script("ack_many", self._ack_keys(), [self._prefix, _lua_pack(rows)]))
        return self._acked(acks, reply)

    def _ack_keys(self) -> list[str]:
        return [self._key("jobs"), self._key("results")]

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
        reply = await self._script(
            "nack",
            [self._key("jobs"), self._key("causes")],
            [
                self._queue_key(claim.queue),
                *self._claim_args(claim),
                REASON_MAX_DELIVERIES,
                int(cause is not None),
                cause or "",
            ],
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
                await self._script("requeue_consumer", [], [self._queue_key(queue), consumer, REASON_MAX_DELIVERIES])
            )
        return released

    async def result(self, job_id: str) -> JobResult | None:
        check_name("job_id", job_id)
        packed = await self._command(self._client.hget(self._key("results"), job_id))
        if packed is None:
            if await self._command(self._client.hget(self._key("jobs"), job_id)) is None:
                raise UnknownJob(job_id)
            return None
        _, queue, payload, consumer, deliveries, at = _lua_unpack(packed)
        return JobResult(
            job_id=job_id,
            queue=_text(queue),
            payload=unpack_payload(payload),
            consumer=_text(consumer),
            deliveries=int(deliveries),
            completed_at=float(_text(at)),
        )

    async def stats(self, queue: str) -> QueueStats:
        check_name("queue", queue)
        ready, in_flight, done, dead = await self._script("stats", [], [self._queue_key(queue), REASON_MAX_DELIVERIES])
        return QueueStats(queue=queue, ready=int(ready), in_flight=int(in_flight), done=int(done), dead=int(dead))

    async def dead_letters(self, queue: str, *, limit: int = 100) -> list[DeadLetter]:
        check_name("queue", queue)
        check_count("limit", limit)
        dead = self._queue_key(queue) + ":dead"
        entries = await self._command(self._client.xrange(dead, count=limit))
        return [_letter(queue, entry) for entry in entries]

    async def dead_letter(self, job_id: str) -> DeadLetter | None:
        check_name("job_id", job_id)
        queue = await self._command(self._client.hget(self._key("jobs"), job_id))
        if queue is None:
            raise UnknownJob(job_id)
        queue = _text(queue)
        dead = self._queue_key(queue) + ":dead"
        entry_id = await self._command(self._client.hget(dead + "jobs", job_id))
        if entry_id is None:
            return None
        entries = await self._command(self._client.xrange(dead, _text(entry_id), _text(entry_id)))
        return _letter(queue, entries[0]) if entries else None

    async def info(self, job_id: str) -> JobInfo:
        check_name("job_id", job_id)
        keys = [self._key(k) for k in ("jobs", "enqueued", "claimed", "causes", "results")]
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
        keys = [self._key(k) for k in ("done", "jobs", "enqueued", "claimed", "causes", "results")]
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
