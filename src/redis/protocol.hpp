#pragma once
// The job protocol of redis_pool / redis_worker: every multi-step change of a job's
// state is one Lua script (atomic on the server), so a job is never held only in a
// process's memory. Times come from the server's clock (TIME), never from a client's.
//
// Keys (q = queue name, w = worker id, id = job id):
//   corio:job:<id>           hash: fn, payload, client (result stream), queue, state
//                            (queued|started|finished|failed|dead|cancelled), attempts,
//                            retries, timeout, lease, ttl, worker, cancel, error_type,
//                            error_message
//   corio:{q}:ready          list of queued ids (LPUSH in, taken from the right)
//   corio:{q}:delayed        zset id -> due time (retries waiting for their backoff)
//   corio:{q}:leases         zset id -> lease deadline (running jobs)
//   corio:{q}:failed / dead  zsets id -> time (kept for inspection and requeueing)
//   corio:{q}:finished       counter
//   corio:inflight:<w>       list of the ids worker w took (LMOVE / BLMOVE target)
//   corio:alive:<w>          the worker's alive key, with a TTL renewed by its heartbeat
//   corio:workers, corio:queues   sets of known workers and queues
//   corio:reaper             the reaper's short lock
//   <client stream>          each client's results: XADD id, status, data
//
// Stream statuses: ok (data: per-item outcomes), error (data: an encoded exception
// failing every item), lost (data: message; worker_lost_error), cancelled, timeout.

#include <corio/redis.hpp>

#include <string>

namespace corio::detail::redis_protocol {

inline const char* const lua_common = R"lua(
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function P(q) return 'corio:{' .. q .. '}:' end
local function J(id) return 'corio:job:' .. id end
local function notify(id, status, data)
  local h = J(id)
  local stream = redis.call('HGET', h, 'client')
  if not stream then return end
  redis.call('XADD', stream, '*', 'id', id, 'status', status, 'data', data)
  local ttl = tonumber(redis.call('HGET', h, 'ttl')) or 3600000
  redis.call('PEXPIRE', stream, ttl)
end
-- Ends job id in a final state; removes it from every queue structure.
local function finish(id, state, status, data, etype, emsg)
  local h = J(id)
  local q = redis.call('HGET', h, 'queue')
  local p = P(q)
  local t = now_ms()
  redis.call('ZREM', p .. 'leases', id)
  redis.call('ZREM', p .. 'delayed', id)
  redis.call('LREM', p .. 'ready', 0, id)
  local w = redis.call('HGET', h, 'worker')
  if w and w ~= '' then redis.call('LREM', 'corio:inflight:' .. w, 0, id) end
  redis.call('HSET', h, 'state', state, 'ended', t)
  if state == 'finished' or state == 'cancelled' then
    redis.call('HDEL', h, 'payload')
    redis.call('PEXPIRE', h, tonumber(redis.call('HGET', h, 'ttl')) or 3600000)
    if state == 'finished' then redis.call('INCR', p .. 'finished') end
  else
    redis.call('HSET', h, 'error_type', etype, 'error_message', emsg)
    redis.call('ZADD', p .. state, t, id)
  end
  notify(id, status, data)
end
local function is_final(st)
  return st == 'finished' or st == 'failed' or st == 'dead' or st == 'cancelled'
end
-- Marks a queued id taken by worker w as started; returns the job or nil.
local function start(id, w, t)
  local h = J(id)
  local st = redis.call('HGET', h, 'state')
  if st ~= 'queued' then
    redis.call('LREM', 'corio:inflight:' .. w, 0, id)
    return nil
  end
  local q = redis.call('HGET', h, 'queue')
  local lease = tonumber(redis.call('HGET', h, 'lease'))
  local attempts = redis.call('HINCRBY', h, 'attempts', 1)
  redis.call('HSET', h, 'state', 'started', 'worker', w, 'started_at', t)
  redis.call('ZADD', P(q) .. 'leases', t + lease, id)
  return {id, redis.call('HGET', h, 'fn'), redis.call('HGET', h, 'payload') or '', attempts,
          redis.call('HGET', h, 'timeout')}
end
)lua";

// ARGV: id, queue, fn, payload, client stream, ttl_ms, max_retries, timeout_ms, lease_ms
inline const char* const lua_enqueue = R"lua(
local id, q = ARGV[1], ARGV[2]
local h = J(id)
if redis.call('EXISTS', h) == 1 then return 0 end
redis.call('HSET', h, 'fn', ARGV[3], 'payload', ARGV[4], 'client', ARGV[5], 'ttl', ARGV[6],
           'retries', ARGV[7], 'timeout', ARGV[8], 'lease', ARGV[9], 'queue', q,
           'state', 'queued', 'attempts', 0, 'created', now_ms())
redis.call('SADD', 'corio:queues', q)
redis.call('LPUSH', P(q) .. 'ready', id)
return 1
)lua";

// ARGV: worker, alive_ms, max jobs, queues... -> list of jobs {id, fn, payload, attempts, timeout}
inline const char* const lua_fetch = R"lua(
local w, alive, n = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('SET', 'corio:alive:' .. w, '1', 'PX', alive)
redis.call('SADD', 'corio:workers', w)
local out = {}
local t = now_ms()
for i = 4, #ARGV do
  local p = P(ARGV[i])
  while #out < n do
    local id = redis.call('LMOVE', p .. 'ready', 'corio:inflight:' .. w, 'RIGHT', 'LEFT')
    if not id then break end
    local job = start(id, w, t)
    if job then out[#out + 1] = job end
  end
end
return out
)lua";

// ARGV: worker, id (taken with BLMOVE) -> job or nil
inline const char* const lua_start = R"lua(
local job = start(ARGV[2], ARGV[1], now_ms())
if job then return {job} end
return {}
)lua";

// ARGV: worker, alive_ms, ids... -> ids whose cancellation was requested
inline const char* const lua_heartbeat = R"lua(
local w, alive = ARGV[1], tonumber(ARGV[2])
redis.call('SET', 'corio:alive:' .. w, '1', 'PX', alive)
redis.call('SADD', 'corio:workers', w)
local t = now_ms()
local cancel = {}
for i = 3, #ARGV do
  local id = ARGV[i]
  local h = J(id)
  local st = redis.call('HGET', h, 'state')
  if st == 'started' and redis.call('HGET', h, 'worker') == w then
    local q = redis.call('HGET', h, 'queue')
    redis.call('ZADD', P(q) .. 'leases', 'XX', t + tonumber(redis.call('HGET', h, 'lease')), id)
  end
  if redis.call('HGET', h, 'cancel') == '1' then cancel[#cancel + 1] = id end
end
return cancel
)lua";

// ARGV: worker, id, status, data, error_type, error_message, failed(0|1) -> 1 if it won
inline const char* const lua_complete = R"lua(
local w, id, status = ARGV[1], ARGV[2], ARGV[3]
local h = J(id)
redis.call('LREM', 'corio:inflight:' .. w, 0, id)
local st = redis.call('HGET', h, 'state')
if not st or is_final(st) then return 0 end
local state = 'finished'
if status == 'cancelled' then state = 'cancelled'
elseif status ~= 'ok' or ARGV[7] == '1' then state = 'failed' end
finish(id, state, status, ARGV[4], ARGV[5], ARGV[6])
return 1
)lua";

// ARGV: worker, ids... : a stopping worker hands jobs back (the attempt is not counted).
// The ids are jobs this worker started. One that is 'queued' again was requeued by the
// reaper (this worker's alive key expired under load, or a lease did) into the delayed
// set: it is not pushed a second time (that would queue it twice); being handed back by
// a live worker, it goes to the ready list at once and that attempt is not counted.
inline const char* const lua_release = R"lua(
local w = ARGV[1]
for i = 2, #ARGV do
  local id = ARGV[i]
  local h = J(id)
  redis.call('LREM', 'corio:inflight:' .. w, 0, id)
  local st = redis.call('HGET', h, 'state')
  if st == 'started' and redis.call('HGET', h, 'worker') == w then
    local q = redis.call('HGET', h, 'queue')
    redis.call('ZREM', P(q) .. 'leases', id)
    redis.call('HINCRBY', h, 'attempts', -1)
    redis.call('HSET', h, 'state', 'queued', 'worker', '')
    redis.call('RPUSH', P(q) .. 'ready', id)
  elseif st == 'queued' then
    local q = redis.call('HGET', h, 'queue')
    if redis.call('ZREM', P(q) .. 'delayed', id) == 1 then
      redis.call('HINCRBY', h, 'attempts', -1)
      redis.call('RPUSH', P(q) .. 'ready', id)
    end
  end
end
-- Whatever else is in its in-flight list (taken but not started) goes back too.
while true do
  local id = redis.call('RPOP', 'corio:inflight:' .. w)
  if not id then break end
  local h = J(id)
  if redis.call('HGET', h, 'state') == 'queued' then
    redis.call('RPUSH', P(redis.call('HGET', h, 'queue')) .. 'ready', id)
  end
end
redis.call('DEL', 'corio:alive:' .. w)
redis.call('SREM', 'corio:workers', w)
return 1
)lua";

// ARGV: worker, lock_ms, random seed -> number of jobs requeued or dead-lettered
inline const char* const lua_reap = R"lua(
if not redis.call('SET', 'corio:reaper', ARGV[1], 'NX', 'PX', tonumber(ARGV[2])) then return -1 end
math.randomseed(tonumber(ARGV[3]))
local t = now_ms()
local n = 0
local function requeue(id, why)
  local h = J(id)
  local st = redis.call('HGET', h, 'state')
  if st ~= 'started' then return end
  local q = redis.call('HGET', h, 'queue')
  local p = P(q)
  redis.call('ZREM', p .. 'leases', id)
  local w = redis.call('HGET', h, 'worker')
  if w and w ~= '' then redis.call('LREM', 'corio:inflight:' .. w, 0, id) end
  local attempts = tonumber(redis.call('HGET', h, 'attempts')) or 1
  local retries = tonumber(redis.call('HGET', h, 'retries')) or 0
  n = n + 1
  if attempts > retries then
    local msg = 'corio::redis_pool: job ' .. id .. ' lost its worker ' .. attempts ..
                ' time(s) (' .. why .. '); max_retries is ' .. retries
    finish(id, 'dead', 'lost', msg, 'corio::worker_lost_error', msg)
  else
    -- Exponential backoff from 50 ms, capped at 5 s, with jitter in [50%, 100%].
    local base = math.min(50 * 2 ^ (attempts - 1), 5000)
    local delay = math.floor(base * (0.5 + 0.5 * math.random()))
    redis.call('HSET', h, 'state', 'queued', 'worker', '')
    redis.call('ZADD', p .. 'delayed', t + delay, id)
  end
end
for _, w in ipairs(redis.call('SMEMBERS', 'corio:workers')) do
  if redis.call('EXISTS', 'corio:alive:' .. w) == 0 then
    local ids = redis.call('LRANGE', 'corio:inflight:' .. w, 0, -1)
    for _, id in ipairs(ids) do
      local h = J(id)
      local st = redis.call('HGET', h, 'state')
      if st == 'queued' then
        redis.call('RPUSH', P(redis.call('HGET', h, 'queue')) .. 'ready', id)
      else
        requeue(id, 'worker ' .. w .. ' died')
      end
    end
    redis.call('DEL', 'corio:inflight:' .. w)
    redis.call('SREM', 'corio:workers', w)
  end
end
for _, q in ipairs(redis.call('SMEMBERS', 'corio:queues')) do
  local p = P(q)
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', p .. 'leases', '-inf', t)) do
    requeue(id, 'its lease expired')
  end
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', p .. 'delayed', '-inf', t)) do
    redis.call('ZREM', p .. 'delayed', id)
    if redis.call('HGET', J(id), 'state') == 'queued' then
      redis.call('RPUSH', p .. 'ready', id)
    end
  end
end
return n
)lua";

// ARGV: id -> the state before ('' if unknown)
inline const char* const lua_cancel = R"lua(
local id = ARGV[1]
local h = J(id)
local st = redis.call('HGET', h, 'state')
if not st then return '' end
if st == 'queued' then
  finish(id, 'cancelled', 'cancelled', '', '', '')
elseif st == 'started' then
  redis.call('HSET', h, 'cancel', '1')
end
return st
)lua";

// ARGV: queue -> {queued, started, finished, failed, dead}
inline const char* const lua_counts = R"lua(
local p = P(ARGV[1])
return {redis.call('LLEN', p .. 'ready') + redis.call('ZCARD', p .. 'delayed'),
        redis.call('ZCARD', p .. 'leases'),
        tonumber(redis.call('GET', p .. 'finished') or '0'),
        redis.call('ZCARD', p .. 'failed'), redis.call('ZCARD', p .. 'dead')}
)lua";

// ARGV: queue -> list of {id, fn, state, error_type, error_message, attempts}
inline const char* const lua_failed = R"lua(
local p = P(ARGV[1])
local out = {}
for _, set in ipairs({'failed', 'dead'}) do
  for _, id in ipairs(redis.call('ZRANGE', p .. set, 0, -1)) do
    local h = J(id)
    out[#out + 1] = {id, redis.call('HGET', h, 'fn') or '', set,
                     redis.call('HGET', h, 'error_type') or '',
                     redis.call('HGET', h, 'error_message') or '',
                     redis.call('HGET', h, 'attempts') or '0'}
  end
end
return out
)lua";

// ARGV: queue -> how many were requeued
inline const char* const lua_requeue_failed = R"lua(
local q = ARGV[1]
local p = P(q)
local n = 0
for _, set in ipairs({'failed', 'dead'}) do
  for _, id in ipairs(redis.call('ZRANGE', p .. set, 0, -1)) do
    local h = J(id)
    redis.call('ZREM', p .. set, id)
    if redis.call('HEXISTS', h, 'payload') == 1 then
      redis.call('HSET', h, 'state', 'queued', 'attempts', 0, 'worker', '', 'cancel', '0')
      redis.call('LPUSH', p .. 'ready', id)
      n = n + 1
    end
  end
end
return n
)lua";

/// The scripts, each prefixed with the common helpers.
struct scripts {
    redis::script enqueue{std::string(lua_common) + lua_enqueue};
    redis::script fetch{std::string(lua_common) + lua_fetch};
    redis::script start{std::string(lua_common) + lua_start};
    redis::script heartbeat{std::string(lua_common) + lua_heartbeat};
    redis::script complete{std::string(lua_common) + lua_complete};
    redis::script release{std::string(lua_common) + lua_release};
    redis::script reap{std::string(lua_common) + lua_reap};
    redis::script cancel{std::string(lua_common) + lua_cancel};
    redis::script counts{std::string(lua_common) + lua_counts};
    redis::script failed{std::string(lua_common) + lua_failed};
    redis::script requeue_failed{std::string(lua_common) + lua_requeue_failed};
};

} // namespace corio::detail::redis_protocol
