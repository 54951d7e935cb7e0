"""The Lua scripts of the Redis queue: each step that reads and then writes runs in one script,
so it is atomic in Redis and costs one round trip.

Every script gets the same KEYS (:data:`KEYS`, under the queue's namespace) and the namespace
prefix as ARGV[1]; a request's hash is ``<prefix>request:<id>``, its coalescing key
``<prefix>coalesce:<key>``. Times come from the Redis server's clock (``TIME``), so workers on
machines whose clocks differ still agree on when a lease expired.
"""

from __future__ import annotations

#: the fixed keys, in the order the scripts name them
KEYS = ("pending", "leases", "finished", "seq", "work", "workers", "says")
#: a pending request's score: priority * SCORE_STEP + arrival number (exact in a double)
SCORE_STEP = 10**15
#: notices of new work kept for workers that are not listening (they only shorten a wait)
WORK_NOTICES = 16
#: how many evicted requests one claim drops before it gives up for this turn: a script
#: blocks the whole server while it runs
CLAIM_LOOKS = 64

_COMMON = f"""
local pending, leases, finished, seqkey, work, workers, says =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local prefix = ARGV[1]
local function rec(id) return prefix .. 'request:' .. id end
local function ckey(key) return prefix .. 'coalesce:' .. key end
local function clock()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local function notify()
  redis.call('LPUSH', work, '1')
  redis.call('LTRIM', work, 0, {WORK_NOTICES - 1})
end
local function held(id, worker, attempt)
  local state, w, a = unpack(redis.call('HMGET', rec(id), 'state', 'worker', 'attempts'))
  return state == 'in_flight' and w == worker and a == attempt
end
local function score(priority, seq)
  return tonumber(priority) * {SCORE_STEP} + tonumber(seq)
end
-- a request whose hash lost what makes it one (evicted by a maxmemory-policy that evicts)
-- is dropped whole; returns whether it was
local function gone(id)
  if redis.call('HEXISTS', rec(id), 'payload') == 1 then return false end
  redis.call('DEL', rec(id))
  redis.call('ZREM', pending, id)
  redis.call('ZREM', leases, id)
  return true
end
local function to_pending(id)
  if gone(id) then return end
  local h = rec(id)
  local priority, seq = unpack(redis.call('HMGET', h, 'priority', 'seq'))
  redis.call('HSET', h, 'state', 'pending', 'worker', '', 'lease_until', '')
  redis.call('ZREM', leases, id)
  redis.call('ZADD', pending, score(priority, seq), id)
  notify()
end
local function finish(id, fields, now, retention)
  local h = rec(id)
  redis.call('HSET', h, 'finished_at', now, 'lease_until', '', unpack(fields))
  redis.call('ZREM', leases, id)
  redis.call('ZREM', pending, id)
  redis.call('ZADD', finished, now, id)
  redis.call('ZREMRANGEBYSCORE', finished, '-inf', now - retention)
  local key = redis.call('HGET', h, 'coalesce_key')
  if key and key ~= '' and redis.call('GET', ckey(key)) == id then
    redis.call('DEL', ckey(key))
  end
  redis.call('EXPIRE', h, retention)
end
-- expired leases go back to pending, or fail once their attempts are spent (a private
-- worker's too: its asker may be stalled, not gone, and no script can look at its process);
-- returns the requeued ids and workers, flat, for the caller's log
local function recover(now, max_attempts, exhausted, retention)
  local back = {{}}
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', leases, '-inf', '(' .. now)) do
    local attempts, worker = unpack(redis.call('HMGET', rec(id), 'attempts', 'worker'))
    if not attempts then
      redis.call('ZREM', leases, id)
    elseif tonumber(attempts) >= max_attempts then
      local last = (worker and worker ~= '') and worker or 'unknown'
      local text = exhausted:gsub('{{attempts}}', function() return attempts end)
      text = text:gsub('{{worker}}', function() return last end)
      finish(id, {{'state', 'failed', 'error', text}}, now, retention)
    else
      to_pending(id)
      table.insert(back, id)
      table.insert(back, worker)
    end
  end
  return back
end
"""

# ARGV: prefix, id, kind, priority, payload, coalescing key or '', max attempts, exhausted
# error, retention -> {id, 1 if coalesced else 0}
SUBMIT = _COMMON + """
local id, key = ARGV[2], ARGV[6]
local now = clock()
if key ~= '' then
  recover(now, tonumber(ARGV[7]), ARGV[8], tonumber(ARGV[9]))
  local existing = redis.call('GET', ckey(key))
  if existing then
    local state = redis.call('HGET', rec(existing), 'state')
    if state == 'pending' or state == 'in_flight' then
      redis.call('HSET', rec(existing), 'joined', 1)
      return {existing, 1}
    end
  end
  redis.call('SET', ckey(key), id)
end
local seq = redis.call('INCR', seqkey)
redis.call('HSET', rec(id), 'id', id, 'kind', ARGV[3], 'priority', ARGV[4], 'payload', ARGV[5],
           'state', 'pending', 'created_at', now, 'attempts', 0, 'seq', seq, 'coalesce_key', key)
redis.call('ZADD', pending, score(ARGV[4], seq), id)
notify()
return {id, 0}
"""

# ARGV: prefix, worker, lease seconds, max attempts, exhausted error, retention, the score
# a request taken stays under ('(N', exclusive: of a priority that high or higher) or '' any,
# '1' to take only one of the ids that follow (a private worker's) or '0' any
# -> {requeued ids and workers (flat), the claimed request's fields (flat) or {}, the ids
# found gone (evicted) and dropped}
CLAIM = _COMMON + """
local now = clock()
local back = recover(now, tonumber(ARGV[4]), ARGV[5], tonumber(ARGV[6]))
local lost = {}
local id
for _ = 1, @CLAIM_LOOKS@ do
  id = nil
  if ARGV[8] == '1' then
    local best
    for i = 9, #ARGV do
      local s = redis.call('ZSCORE', pending, ARGV[i])
      if s and (not best or tonumber(s) < best) then best, id = tonumber(s), ARGV[i] end
    end
  elseif ARGV[7] ~= '' then
    id = redis.call('ZRANGEBYSCORE', pending, '-inf', ARGV[7], 'LIMIT', 0, 1)[1]
  else
    id = redis.call('ZRANGE', pending, 0, 0)[1]
  end
  if not id or not gone(id) then break end
  table.insert(lost, id)
  id = nil
end
if not id then return {back, {}, lost} end
local h = rec(id)
local lease_until = now + tonumber(ARGV[3])
redis.call('ZREM', pending, id)
redis.call('HINCRBY', h, 'attempts', 1)
redis.call('HSET', h, 'state', 'in_flight', 'worker', ARGV[2], 'started_at', now,
           'lease_until', lease_until)
redis.call('ZADD', leases, lease_until, id)
return {back, redis.call('HGETALL', h), lost}
""".replace("@CLAIM_LOOKS@", str(CLAIM_LOOKS))

# ARGV: prefix, id, worker, attempt, lease seconds -> 1 renewed, 0 lost
RENEW = _COMMON + """
if not held(ARGV[2], ARGV[3], ARGV[4]) then return 0 end
local lease_until = clock() + tonumber(ARGV[5])
redis.call('HSET', rec(ARGV[2]), 'lease_until', lease_until)
redis.call('ZADD', leases, lease_until, ARGV[2])
return 1
"""

# ARGV: prefix, id, worker, attempt, state, result, error, retention -> 1 stored, 0 refused
COMPLETE = _COMMON + """
if not held(ARGV[2], ARGV[3], ARGV[4]) then return 0 end
finish(ARGV[2], {'state', ARGV[5], 'result', ARGV[6], 'error', ARGV[7]}, clock(),
       tonumber(ARGV[8]))
return 1
"""

# ARGV: prefix, id, worker, attempt -> 1 given back (the attempt not counted), 0 not held
RELEASE = _COMMON + """
if not held(ARGV[2], ARGV[3], ARGV[4]) then return 0 end
redis.call('HINCRBY', rec(ARGV[2]), 'attempts', -1)
to_pending(ARGV[2])
return 1
"""

# ARGV: prefix, id, max attempts, exhausted error, retention, '1' only if no other caller
# joined it (abandon: then also one in flight, whose lease ends) or '0' -> 1 cancelled,
# 0 not pending (or joined)
CANCEL = _COMMON + """
local now = clock()
recover(now, tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[5]))
local h = rec(ARGV[2])
local state = redis.call('HGET', h, 'state')
if state ~= 'pending' and not (ARGV[6] == '1' and state == 'in_flight') then return 0 end
if ARGV[6] == '1' and redis.call('HGET', h, 'joined') == '1' then return 0 end
finish(ARGV[2], {'state', 'cancelled', 'worker', ''}, now, tonumber(ARGV[5]))
return 1
"""

# ARGV: prefix, worker, '1' serving or '0' stopped, silence seconds
ANNOUNCE = _COMMON + """
local now = clock()
if ARGV[3] == '1' then
  redis.call('ZADD', workers, now, ARGV[2])
  if ARGV[5] == '' then
    redis.call('HDEL', says, ARGV[2])
  else
    redis.call('HSET', says, ARGV[2], ARGV[5])
  end
else
  redis.call('ZREM', workers, ARGV[2])
  redis.call('HDEL', says, ARGV[2])
end
local gone = now - 100 * tonumber(ARGV[4])
for _, name in ipairs(redis.call('ZRANGEBYSCORE', workers, '-inf', gone)) do
  redis.call('HDEL', says, name)
end
redis.call('ZREMRANGEBYSCORE', workers, '-inf', gone)
return 1
"""

# ARGV: prefix, silence seconds -> how many workers announced themselves within it
LIVE_WORKERS = _COMMON + """
return redis.call('ZCOUNT', workers, '(' .. (clock() - tonumber(ARGV[2])), '+inf')
"""

# ARGV: prefix, silence seconds -> name, what it says, name, ... of the workers that
# announced themselves within it and said something
WORKERS_SAY = _COMMON + """
local live = redis.call('ZRANGEBYSCORE', workers, '(' .. (clock() - tonumber(ARGV[2])), '+inf')
local out = {}
for _, name in ipairs(live) do
  local text = redis.call('HGET', says, name)
  if text then
    out[#out + 1] = name
    out[#out + 1] = text
  end
end
return out
"""

SCRIPTS = {
    "submit": SUBMIT, "claim": CLAIM, "renew": RENEW, "complete": COMPLETE,
    "release": RELEASE, "cancel": CANCEL, "announce": ANNOUNCE,
    "live_workers": LIVE_WORKERS, "workers_say": WORKERS_SAY,
}
