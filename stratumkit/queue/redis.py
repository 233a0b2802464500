"""The distributed queue engine: lists, hashes and sorted sets in Redis (through coredis, anyio,
so it runs on trio; the hot scripts on `resp` connections).

Layout (every key under `prefix`; a queue's keys under `{prefix}:q:{queue}`):
- `...:ready`     list of the ids of the queue's jobs never delivered, in enqueue order.
- `...:deadlines` sorted set job id -> deadline (server time, microseconds) of the jobs in flight.
- `...:dead`      the queue's dead letters (a stream: j, p, m, deliveries n, reason r, claimed c).
- `...:deadjobs`  hash job id -> its entry id in the dead stream.
- `...:counts`    hash: done, dead, seq.
- `{prefix}:jobs`     hash job id -> '<queue> <enqueued at>' (server time, seconds): makes enqueue
  idempotent and ids global.
- `{prefix}:entries`  hash job id -> '<incarnation> <max deliveries> <msgpack payload>', while the
  job is not done. The incarnation is a number of the queue's own (`counts` field seq) given to
  an enqueue batch, so a claim of a job id enqueued again after its result expired is never
  current for the new job.
- `{prefix}:claims`   hash job id -> '<incarnation> <deliveries> <claimed at> <consumer>', its
  current delivery, from its first delivery until it is done (`~released` for the consumer after
  a release); claimed at is the server time (seconds) of that delivery.
- `{prefix}:queues`   set of queue names.
- `{prefix}:results`  hash job id -> '<result time> <token> <queue> <consumer> <msgpack result>':
  the one recorded result (its token says which delivery recorded it).
- `{prefix}:causes`   hash job id -> the last cause a consumer gave with `nack`.
- `{prefix}:done`     list of "<result time> <job id> ..." (an ack batch's jobs) in result order,
  for `expire_results` (which deletes the result and the job's entries in the hashes above).

Rules:
- Batch arguments travel as plain script arguments, a few per job, in the strings the hashes keep
  (the client builds them; the script stores them as they come, no cmsgpack to unpack or pack),
  and replies are flat arrays of those strings. The scripts build the queue key names they touch
  from the prefix, so the engine needs one Redis server (not a Cluster).
- Every operation is one Lua script, so each check-and-change is atomic on the server; a batch
  (`enqueue_many`, `ack_many`, a claim of `max_jobs`) is one script too: one round trip, all of
  it or none (its checks come before its first write), and one AOF write to fsync.
- A batch costs a few Redis commands, each with many fields (one HMGET, HSET, ZADD, ZREM, HDEL of
  the batch's jobs), not a few per job: a command called from Lua costs a microsecond or more of
  its own, and every write command is one more to propagate to the AOF. (The earlier layout on
  Redis Streams cost an XADD per job, and each XREADGROUP, XCLAIM and XDEL wrote one AOF command
  per entry.)
- A claim's token is '<incarnation>/<deliveries>/<claimed at>'; the claim is current while the
  job's claims value is exactly those and its consumer. Every new delivery bumps the count; a
  heartbeat moves the deadline and keeps the value; a release (nack, a rig gone) writes
  `~released` and a deadline of now, so the job is claimable at once and no longer current for
  the rig that had it. A claim takes the jobs past their deadline first (one ZRANGEBYSCORE),
  earliest first, then ready ones (LPOP count). The server's clock is the only clock.
- A result is written only by a current delivery, and recording it ends the delivery (the job
  leaves the claims, entries and deadlines), in the same script: results are recorded once.
- A job that would be delivered again after `max_deliveries` deliveries is moved to the dead
  stream instead (at claim time, on release, or when `stats` looks).

Upgrading: this layout does not read what the Streams layout wrote under the same prefix (its
`:q:{queue}:stream` keys and `result:{job_id}` hashes). So no job is lost unseen, the engine
refuses to open (`EarlierLayout`, one line at the pool's start) while any of those keys exist: let
the earlier version finish its jobs, or delete those keys, first.

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
-- values per call of a many-value command (Lua's unpack stops at a few thousand values)
local CHUNK = 1000
-- redis.call(cmd, key, values[from]...) in calls of at most CHUNK values (an even number: pairs stay
-- whole); array replies concatenated
local function many(cmd, key, values, from)
  from = from or 1
  local last = #values
  if last < from then return {} end
  if last - from < CHUNK then return redis.call(cmd, key, unpack(values, from, last)) end
  local replies = {}
  for i = from, last, CHUNK do
    local r = redis.call(cmd, key, unpack(values, i, math.min(i + CHUNK - 1, last)))
    if type(r) == 'table' then
      for _, v in ipairs(r) do replies[#replies + 1] = v end
    end
  end
  return replies
end
-- a TIME reply as '<seconds>.<microseconds>', and as microseconds
local function stamp(t) return t[1] .. '.' .. string.format('%06d', tonumber(t[2])) end
local function micros(t) return tonumber(t[1]) * 1000000 + tonumber(t[2]) end
-- an entries value '<incarnation> <max deliveries> <payload>' -> max deliveries (a number), payload
local function split_entry(v)
  local m, at = string.match(v, '^%d+ (%d+) ()')
  return tonumber(m), string.sub(v, at)
end
-- a jobs value '<queue> <enqueued at>' -> queue
local function queue_of(v) return string.match(v, '^%S+') end
-- a claims value '<incarnation> <deliveries> <claimed at> <consumer>' -> incarnation, deliveries
-- (a number), claimed at, consumer
local function split_claim(v)
  local inc, n, at, consumer = string.match(v, '^(%d+) (%d+) (%S+) (.*)$')
  return inc, tonumber(n), at, consumer
end
-- the job leaves its queue for the dead stream (with its payload, when its entry is still there,
-- and when it was last claimed)
local function dead_letter(prefix, qk, id, deliveries, reason)
  local v = redis.call('HGET', prefix .. ':entries', id)
  if v then
    local m, p = split_entry(v)
    local c = redis.call('HGET', prefix .. ':claims', id)
    local _, _, at = split_claim(c or '0 0 - -')
    local letter = redis.call('XADD', qk .. ':dead', '*', 'j', id, 'p', p, 'm', m, 'n', deliveries, 'r', reason,
                              'c', at)
    redis.call('HSET', qk .. ':deadjobs', id, letter)
    redis.call('HINCRBY', qk .. ':counts', 'dead', 1)
  end
  redis.call('ZREM', qk .. ':deadlines', id)
  redis.call('HDEL', prefix .. ':entries', id)
  redis.call('HDEL', prefix .. ':claims', id)
end
-- release a delivery: dead letter if out of deliveries, else claimable at once (deadline now)
local function release(prefix, qk, id, inc, deliveries, at, now, reason)
  local v = redis.call('HGET', prefix .. ':entries', id)
  if v == false or deliveries >= split_entry(v) then
    dead_letter(prefix, qk, id, deliveries, reason)
  else
    redis.call('HSET', prefix .. ':claims', id, inc .. ' ' .. deliveries .. ' ' .. at .. ' ' .. RELEASED)
    redis.call('ZADD', qk .. ':deadlines', now, id)
  end
end
"""

# KEYS: jobs, queues, entries   ARGV: queue key, queue, then per job: job_id, '<max deliveries>
# <payload>' (distinct job ids: the engine drops an id's repeats in a batch)
# -> {0}, or {position (1-based) of a job whose id is used on another queue, that queue}
# Three many-field writes for the batch (entries, ready list, jobs): the claims hash gets a job
# at its first delivery, and what a batch's jobs share (incarnation, queue, time) is one string.
_ENQUEUE_MANY = """
local qk, queue = ARGV[1], ARGV[2]
local n = (#ARGV - 2) / 2
local ids = {}
for i = 1, n do ids[i] = ARGV[2 * i + 1] end
local owners = many('HMGET', KEYS[1], ids)
local keep = {}
for i = 1, n do
  local owner = owners[i]
  if owner then
    owner = queue_of(owner)
    if owner ~= queue then return {i, owner} end
  else
    keep[#keep + 1] = i
  end
end
if #keep == 0 then return {0} end
-- one incarnation for the batch: an id is in a batch once
local fresh = redis.call('HINCRBY', qk .. ':counts', 'seq', 1) .. ' '
local known = queue .. ' ' .. stamp(redis.call('TIME'))
local entries, jobs, ready = {}, {}, {}
for k, i in ipairs(keep) do
  local id = ids[i]
  entries[2 * k - 1] = id
  entries[2 * k] = fresh .. ARGV[2 * i + 2]
  jobs[2 * k - 1] = id
  jobs[2 * k] = known
  ready[k] = id
end
-- the entries before the ids, as one job alone always did: a write refused half way leaves a
-- job that may run twice, never an id that never runs
many('HSET', KEYS[3], entries)
many('RPUSH', qk .. ':ready', ready)
many('HSET', KEYS[1], jobs)
redis.call('SADD', KEYS[2], queue)
return {0}
"""

# KEYS: entries, claims   ARGV: prefix, queue key, consumer, timeout_ms, max_jobs, reason
# -> {server time seconds, microseconds, then per job: job id, '<incarnation> <deliveries>
# <claimed at> <consumer>', '<incarnation> <max deliveries> <payload>'}
_CLAIM_FN = """
local function claim_jobs(t, prefix, entries, claims, qk, consumer, timeout, want, reason)
local now, at = micros(t), stamp(t)
local by = ' ' .. at .. ' ' .. consumer
local deadlines = qk .. ':deadlines'
local out = {t[1], t[2]}
local ids, owners = {}, {}  -- the taken jobs; claims HSET arguments
local function take(id, delivery, entry)
  ids[#ids + 1] = id
  owners[#owners + 1] = id
  owners[#owners + 1] = delivery
  out[#out + 1] = id
  out[#out + 1] = delivery
  out[#out + 1] = entry
end
-- claims past their deadline (and released ones) first, earliest deadline first: one
-- ZRANGEBYSCORE per round, however many jobs are in flight
local kept = 0  -- expired jobs taken this claim: they stay in the set until their new deadline
repeat
  local asked = want - #ids
  local expired = redis.call('ZRANGEBYSCORE', deadlines, '-inf', now, 'LIMIT', kept, asked)
  if #expired == 0 then break end
  local cl, en = many('HMGET', claims, expired), many('HMGET', entries, expired)
  for i, id in ipairs(expired) do
    if cl[i] and en[i] then
      local inc, n = split_claim(cl[i])
      if n + 1 > split_entry(en[i]) then
        dead_letter(prefix, qk, id, n, reason)
      else
        take(id, inc .. ' ' .. (n + 1) .. by, en[i])
        kept = kept + 1
      end
    else  -- its job is gone
      redis.call('ZREM', deadlines, id)
    end
  end
until #expired < asked or #ids >= want
if #ids < want then
  local ready = redis.call('LPOP', qk .. ':ready', want - #ids)
  if ready then  -- never delivered: its first delivery
    local en = many('HMGET', entries, ready)
    local first = ' 1' .. by
    for i, id in ipairs(ready) do
      local v = en[i]
      if v then take(id, string.match(v, '^%d+') .. first, v) end
    end
  end
end
if #ids > 0 then
  -- every taken job gets this claim's deadline, a microsecond apart in claim order (so they
  -- expire in that order): one ZADD and one HSET for the batch
  local base = now + timeout * 1000
  local scores = {}
  for i, id in ipairs(ids) do
    scores[2 * i - 1] = base + i - 1
    scores[2 * i] = id
  end
  many('ZADD', deadlines, scores)
  many('HSET', claims, owners)
end
return out
end
"""
_CLAIM = (
    _CLAIM_FN
    + """
return claim_jobs(redis.call('TIME'), ARGV[1], KEYS[1], KEYS[2], ARGV[2], ARGV[3], tonumber(ARGV[4]),
                  tonumber(ARGV[5]), ARGV[6])
"""
)

# KEYS: jobs, claims   ARGV: queue key, job_id, delivery ('<incarnation> <deliveries> <consumer>'), timeout_ms
_HEARTBEAT = """
if redis.call('HEXISTS', KEYS[1], ARGV[2]) == 0 then return -1 end
if redis.call('HGET', KEYS[2], ARGV[2]) ~= ARGV[3] then return 0 end
local t = redis.call('TIME')
redis.call('ZADD', ARGV[1] .. ':deadlines', micros(t) + tonumber(ARGV[4]) * 1000, ARGV[2])
return t
"""

# KEYS: jobs, results, entries, claims   ARGV: prefix, ..., then from `first` per ack: job_id,
# queue, delivery ('<incarnation> <deliveries> <consumer>'), token, '<token> <queue> <consumer>
# <msgpack result>' (what the results hash keeps, after '<result time> ')
# -> {0, 1|0 per ack}, or {-1, position (1-based) of an ack whose job was never enqueued}
# A few calls for the batch, not per job: one HMGET of the deliveries, then for the recorded ones
# one HDEL of each hash, one ZREM per queue, one HSET of their results and one RPUSH; a result's
# token is read only for an ack that is not current (a current delivery has no result yet:
# recording one ends it).
_ACK_FN = """
local function ack_jobs(t, prefix, jobs, results, entries, claims, first)
local count = (#ARGV - first + 1) / 5
if count == 0 then return {0} end
local ids = {}
for i = 1, count do ids[i] = ARGV[first + 5 * i - 5] end
local state = many('HMGET', claims, ids)
local out = {0}
local here = {}  -- job id -> token recorded by this batch
local done, rows, byq, order, stale = {}, {}, {}, {}, {}
local at = stamp(t)
local head = at .. ' '
for i = 1, count do
  local a = first + 5 * i - 5
  local id = ids[i]
  if state[i] == ARGV[a + 2] and not here[id] then
    local queue = ARGV[a + 1]
    done[#done + 1] = id
    rows[#rows + 1] = id
    rows[#rows + 1] = head .. ARGV[a + 4]
    here[id] = ARGV[a + 3]
    local l = byq[queue]
    if not l then
      l = {}
      byq[queue] = l
      order[#order + 1] = queue
    end
    l[#l + 1] = id
    out[i + 1] = 1
  else
    stale[#stale + 1] = i
    out[i + 1] = 0
  end
end
if #stale > 0 then  -- not current: an unknown job refuses the batch, a recorded token answers 1
  local sids = {}
  for k, i in ipairs(stale) do sids[k] = ids[i] end
  local known = many('HMGET', jobs, sids)
  for k, i in ipairs(stale) do
    if not known[k] then return {-1, i} end
  end
  for _, i in ipairs(stale) do
    local token = ARGV[first + 5 * i - 2]
    local recorded = here[ids[i]]
    if not recorded then
      local v = redis.call('HGET', results, ids[i])
      if v then recorded = string.match(v, '^%S+ (%S+)') end
    end
    if recorded == token then out[i + 1] = 1 end
  end
end
if #done == 0 then return out end
-- the recorded jobs leave their queues
for _, queue in ipairs(order) do
  local qk = prefix .. ':q:' .. queue
  many('ZREM', qk .. ':deadlines', byq[queue])
  redis.call('HINCRBY', qk .. ':counts', 'done', #byq[queue])
end
many('HDEL', claims, done)
many('HDEL', entries, done)
many('HSET', results, rows)
redis.call('RPUSH', prefix .. ':done', head .. table.concat(done, ' '))
return out
end
"""
_ACK_MANY = (
    _ACK_FN
    + """
return ack_jobs(redis.call('TIME'), ARGV[1], KEYS[1], KEYS[2], KEYS[3], KEYS[4], 2)
"""
)

# KEYS: jobs, results, entries, claims   ARGV: prefix, then claim's ARGV after its prefix,
# then the acks (as ack_many's)
# -> {ack_many's answer, claim's answer}; {ack_many's answer} alone if an ack's job is unknown
_ACK_AND_CLAIM = (
    _ACK_FN
    + _CLAIM_FN
    + """
local t = redis.call('TIME')
local acked = ack_jobs(t, ARGV[1], KEYS[1], KEYS[2], KEYS[3], KEYS[4], 7)
if acked[1] ~= 0 then return {acked} end
return {acked, claim_jobs(t, ARGV[1], KEYS[3], KEYS[4], ARGV[2], ARGV[3], tonumber(ARGV[4]),
                          tonumber(ARGV[5]), ARGV[6])}
"""
)

# KEYS: jobs, causes, claims
# ARGV: prefix, queue key, job_id, delivery, reason, has cause (1|0), cause
_NACK = """
if redis.call('HEXISTS', KEYS[1], ARGV[3]) == 0 then return -1 end
local v = redis.call('HGET', KEYS[3], ARGV[3])
if v ~= ARGV[4] then return 0 end
if ARGV[6] == '1' then redis.call('HSET', KEYS[2], ARGV[3], ARGV[7]) end
local inc, n, at = split_claim(v)
release(ARGV[1], ARGV[2], ARGV[3], inc, n, at, micros(redis.call('TIME')), ARGV[5])
return 1
"""

# KEYS: jobs, claims, causes, results   ARGV: prefix, job_id
# -> {queue or false, enqueued at, claimed at, cause, result time, dead letter id}
# When it was last claimed: in the token of its result, in its claims value, or in its dead letter.
_INFO = """
local prefix, job_id = ARGV[1], ARGV[2]
local known = redis.call('HGET', KEYS[1], job_id)
if not known then return {false} end
local queue, enqueued = string.match(known, '^(%S+) (%S+)$')
local dead = redis.call('HGET', prefix .. ':q:' .. queue .. ':deadjobs', job_id)
local result = redis.call('HGET', KEYS[4], job_id)
local completed, claimed = false, false
if result then
  completed, claimed = string.match(result, '^(%S+) %d+/%d+/(%S+) ')
else
  local c = redis.call('HGET', KEYS[2], job_id)
  if c then
    local _
    _, _, claimed = split_claim(c)
  elseif dead then
    local e = redis.call('XRANGE', prefix .. ':q:' .. queue .. ':dead', dead, dead)
    if #e == 1 then
      local f = e[1][2]
      for i = 1, #f, 2 do
        if f[i] == 'c' and f[i + 1] ~= '-' then claimed = f[i + 1] end
      end
    end
  end
end
return {queue, enqueued, claimed, redis.call('HGET', KEYS[3], job_id), completed, dead}
"""

# KEYS: done, jobs, causes, results   ARGV: prefix, before (seconds), limit
# -> jobs forgotten (and taken off their queue's done count). The done list is in result order
# (scripts run one at a time, stamped with the server's clock), so the expired ones are its head;
# an item is '<result time> <job id> ...', an ack batch's jobs; whole items go, until `limit` jobs.
_EXPIRE = """
local prefix, before, limit = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local head = redis.call('LRANGE', KEYS[1], 0, limit - 1)
local ids, items, done = {}, 0, {}
for _, item in ipairs(head) do
  if #ids >= limit then break end
  local at, rest = string.match(item, '^(%S+) (.+)$')
  if tonumber(at) >= before then break end
  for id in string.gmatch(rest, '%S+') do ids[#ids + 1] = id end
  items = items + 1
end
if #ids == 0 then return 0 end
for _, known in ipairs(many('HMGET', KEYS[2], ids)) do
  if known then
    local queue = queue_of(known)
    done[queue] = (done[queue] or 0) + 1
  end
end
for queue, n in pairs(done) do redis.call('HINCRBY', prefix .. ':q:' .. queue .. ':counts', 'done', -n) end
for k = 2, 4 do many('HDEL', KEYS[k], ids) end
redis.call('LTRIM', KEYS[1], items, -1)
return #ids
"""

# KEYS: jobs, claims   ARGV: prefix, consumer, reason   -> jobs released
# Reads the whole claims hash (every job not done yet): for a rig that went away, not per job.
_REQUEUE_CONSUMER = """
local prefix, consumer = ARGV[1], ARGV[2]
local all = redis.call('HGETALL', KEYS[2])
local now = micros(redis.call('TIME'))
local released = 0
for i = 1, #all, 2 do
  local inc, n, at, owner = split_claim(all[i + 1])
  if owner == consumer then
    local queue = queue_of(redis.call('HGET', KEYS[1], all[i]))
    release(prefix, prefix .. ':q:' .. queue, all[i], inc, n, at, now, ARGV[3])
    released = released + 1
  end
end
return released
"""

# KEYS: entries, claims   ARGV: prefix, queue key, reason   -> {ready, in flight, done, dead}
_STATS = """
local prefix, qk = ARGV[1], ARGV[2]
local deadlines = qk .. ':deadlines'
local expired = 0
local due = redis.call('ZRANGEBYSCORE', deadlines, '-inf', micros(redis.call('TIME')))
if #due > 0 then
  local en, cl = many('HMGET', KEYS[1], due), many('HMGET', KEYS[2], due)
  for i, id in ipairs(due) do
    if cl[i] and en[i] then
      local _, n = split_claim(cl[i])
      if n >= split_entry(en[i]) then dead_letter(prefix, qk, id, n, ARGV[3]) else expired = expired + 1 end
    else
      redis.call('ZREM', deadlines, id)
    end
  end
end
local c = redis.call('HMGET', qk .. ':counts', 'done', 'dead')
return {redis.call('LLEN', qk .. ':ready') + expired, redis.call('ZCARD', deadlines) - expired,
        tonumber(c[1]) or 0, tonumber(c[2]) or 0}
"""


def _claimed(queue: str, consumer: str, timeout: float, reply: list[Any]) -> list[ClaimedJob]:
    """The claims a claim script's reply names: the server time, then per job its id, delivery
    ('<incarnation> <deliveries> <claimed at> <consumer>') and entry ('<incarnation> <max
    deliveries> <payload>'). (Positional arguments: this runs for every job claimed.)"""
    deadline = _seconds(reply) + timeout
    claims = []
    for i in range(2, len(reply), 3):
        incarnation, deliveries, at, _ = reply[i + 1].split(b" ", 3)
        _, max_deliveries, payload = reply[i + 2].split(b" ", 2)
        token = b"%b/%b/%b" % (incarnation, deliveries, at)
        claims.append(
            ClaimedJob(
                reply[i].decode(),
                queue,
                unpack_payload(payload),
                int(deliveries),
                int(max_deliveries),
                consumer,
                token.decode(),
                timeout,
                deadline,
            )
        )
    return claims


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _seconds(time_reply: Sequence[Any]) -> float:
    """A Redis TIME reply as float seconds."""
    return int(time_reply[0]) + int(time_reply[1]) / 1e6


def _delivery(claim: ClaimedJob) -> str:
    """What the claims hash holds for the job while this claim is current."""
    parts = claim.token.split("/")
    if len(parts) != 3 or not parts[0].isdigit() or parts[1] != str(claim.deliveries) or " " in parts[2]:
        raise InvalidArgument(f"claim token {claim.token!r} was not issued by the Redis engine")
    return f"{parts[0]} {parts[1]} {parts[2]} {claim.consumer}"


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
        """Refuse a server too old for LPOP ... count, and one holding jobs in the earlier layout."""
        info = await self._command(self._client.info("server"))
        version = str(info.get("redis_version", "0"))
        parts = tuple(int(p) for p in version.split(".")[:2] if p.isdigit())
        if parts < MIN_REDIS_VERSION:
            raise QueueError(f"Redis {version} is too old: the queue needs 6.2 or newer")
        await self._check_layout()

    async def _check_layout(self) -> None:
        """`EarlierLayout` if the prefix holds a queue stream or a result of the Streams layout:
        this layout would not see those jobs, so they would be lost to the pool without a word."""
        patterns = (f"{self._prefix}:q:*:stream", f"{self._prefix}:result:*")
        for pattern in patterns:
            cursor = 0
            while True:
                cursor, keys = await self._command(self._client.scan(cursor, match=pattern, count=1000))
                if keys:
                    key = bytes(next(iter(keys))).decode(errors="replace")
                    raise EarlierLayout(
                        f"Redis holds queue data in the layout of an earlier stratumkit ({key!r}, under the"
                        f" prefix {self._prefix!r}) that this version does not read: let the earlier"
                        " version finish those jobs, or delete its keys, before starting this one"
                    )
                if not cursor:
                    break

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
        args: list[str | bytes | int] = [self._queue_key(queue), queue]
        sent: dict[str, None] = {}  # an id's first row in the batch counts, its repeats do not
        for job_id, payload, max_deliveries in rows:
            if job_id not in sent:
                sent[job_id] = None
                args += (job_id, b"%d %b" % (max_deliveries, payload))
        reply = await self._script("enqueue_many", self._enqueue_keys(), args)
        if int(reply[0]) != 0:
            job_id = list(sent)[int(reply[0]) - 1]
            raise InvalidArgument(f"job id {job_id!r} is already used on queue {_text(reply[1])!r}")
        return [job_id for job_id, _, _ in rows]

    def _enqueue_keys(self) -> list[str]:
        return [self._key(k) for k in ("jobs", "queues", "entries")]

    async def claim(
        self, queue: str, consumer: str, visibility_timeout: float, *, max_jobs: int = 1
    ) -> list[ClaimedJob]:
        args, timeout = self._claim_call(queue, consumer, visibility_timeout, max_jobs)
        reply = await self._script("claim", [self._key("entries"), self._key("claims")], args)
        return _claimed(queue, consumer, timeout, reply)

    def _claim_call(
        self, queue: str, consumer: str, visibility_timeout: float, max_jobs: int
    ) -> tuple[list[str | bytes | int], float]:
        """The claim script's arguments (after the prefix), and the checked timeout."""
        check_name("queue", queue)
        check_name("consumer", consumer)
        timeout = check_visibility_timeout(visibility_timeout)
        check_count("max_jobs", max_jobs)
        args: list[str | bytes | int] = [self._queue_key(queue), consumer, round(timeout * 1000), max_jobs]
        return [self._prefix, *args, REASON_MAX_DELIVERIES], timeout

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
        args, timeout = self._claim_call(queue, consumer, visibility_timeout, max_jobs)
        reply = await self._script("ack_and_claim", self._ack_keys(), [*args, *rows])
        answers = self._acked(acks, reply[0])
        return answers, _claimed(queue, consumer, timeout, reply[1])

    async def heartbeat(self, claim: ClaimedJob, visibility_timeout: float | None = None) -> ClaimedJob:
        timeout = check_visibility_timeout(
            claim.visibility_timeout if visibility_timeout is None else visibility_timeout
        )
        reply = await self._script(
            "heartbeat",
            [self._key("jobs"), self._key("claims")],
            [self._queue_key(claim.queue), claim.job_id, _delivery(claim), round(timeout * 1000)],
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
        reply = await self._script("ack_many", self._ack_keys(), [self._prefix, *rows])
        return self._acked(acks, reply)

    def _ack_keys(self) -> list[str]:
        return [self._key(k) for k in ("jobs", "results", "entries", "claims")]

    @staticmethod
    def _ack_rows(acks: Sequence[tuple[ClaimedJob, dict[str, Any]]]) -> list[str | bytes | int]:
        """Five script arguments per ack: job id, queue, delivery, token, and the result as the
        results hash keeps it after its time ('<token> <queue> <consumer> <msgpack result>')."""
        check_batch("acks", acks)
        rows: list[str | bytes | int] = []
        for claim, result in acks:
            record = f"{claim.token} {claim.queue} {claim.consumer} ".encode() + pack_payload("result", result)
            rows += (claim.job_id, claim.queue, _delivery(claim), claim.token, record)
        return rows

    @staticmethod
    def _acked(acks: Sequence[tuple[ClaimedJob, dict[str, Any]]], reply: list[int]) -> list[bool]:
        if int(reply[0]) == -1:
            raise UnknownJob(acks[int(reply[1]) - 1][0].job_id)
        return [answer == 1 for answer in reply[1:]]

    async def nack(self, claim: ClaimedJob, *, cause: str | None = None) -> None:
        cause = check_cause(cause)
        reply = await self._script(
            "nack",
            [self._key("jobs"), self._key("causes"), self._key("claims")],
            [
                self._prefix,
                self._queue_key(claim.queue),
                claim.job_id,
                _delivery(claim),
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
        keys = [self._key("jobs"), self._key("claims")]
        return int(await self._script("requeue_consumer", keys, [self._prefix, consumer, REASON_MAX_DELIVERIES]))

    async def result(self, job_id: str) -> JobResult | None:
        check_name("job_id", job_id)
        kept = await self._command(self._client.hget(self._key("results"), job_id))
        if kept is None:
            if await self._command(self._client.hget(self._key("jobs"), job_id)) is None:
                raise UnknownJob(job_id)
            return None
        at, token, queue, consumer, payload = kept.split(b" ", 4)
        deliveries = token.split(b"/")[1]
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
        ready, in_flight, done, dead = await self._script(
            "stats",
            [self._key("entries"), self._key("claims")],
            [self._prefix, self._queue_key(queue), REASON_MAX_DELIVERIES],
        )
        return QueueStats(queue=queue, ready=int(ready), in_flight=int(in_flight), done=int(done), dead=int(dead))

    async def dead_letters(self, queue: str, *, limit: int = 100) -> list[DeadLetter]:
        check_name("queue", queue)
        check_count("limit", limit)
        dead = self._queue_key(queue) + ":dead"
        entries = await self._command(self._client.xrange(dead, count=limit))
        return [_letter(queue, entry) for entry in entries]

    async def dead_letter(self, job_id: str) -> DeadLetter | None:
        check_name("job_id", job_id)
        known = await self._command(self._client.hget(self._key("jobs"), job_id))
        if known is None:
            raise UnknownJob(job_id)
        queue = _text(known).partition(" ")[0]
        dead = self._queue_key(queue) + ":dead"
        entry_id = await self._command(self._client.hget(dead + "jobs", job_id))
        if entry_id is None:
            return None
        entries = await self._command(self._client.xrange(dead, _text(entry_id), _text(entry_id)))
        return _letter(queue, entries[0]) if entries else None

    async def info(self, job_id: str) -> JobInfo:
        check_name("job_id", job_id)
        keys = [self._key(k) for k in ("jobs", "claims", "causes", "results")]
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
        keys = [self._key(k) for k in ("done", "jobs", "causes", "results")]
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


class EarlierLayout(QueueError):
    """The Redis holds jobs this engine's layout does not read (see Upgrading)."""


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
