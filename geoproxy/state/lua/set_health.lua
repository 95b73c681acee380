-- set_health.lua: an operator forces one server's health (the Runtime API's
-- 'set server B/S health up|stopping|down'), fleet-wide, until the next check says otherwise.
--
-- As HAProxy's CLI: 'up' puts the health counter at the top (rise + fall - 1), 'down' at 0,
-- 'stopping' keeps it and marks the server STOPPING (HAProxy's NOLB: persistent users only).
-- The running/not-running bookkeeping is record_check.lua's. Time: Redis clock, milliseconds.
--
-- KEYS[1]  the server's hash (gp:{B}:srv:S)
-- ARGV[1]  up, stopping or down
-- Returns  { oper before, oper after }

local server = KEYS[1]
local rise = tonumber(redis.call('HGET', server, 'rise') or '2')
local fall = tonumber(redis.call('HGET', server, 'fall') or '3')
local before = redis.call('HGET', server, 'oper') or 'up'
local after = ARGV[1]
if after == 'up' then
  redis.call('HSET', server, 'health', rise + fall - 1)
elseif after == 'down' then
  redis.call('HSET', server, 'health', 0)
end
redis.call('HSET', server, 'oper', after)

local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local function running(state)
  return state == 'up' or state == 'going-down' or state == 'stopping'
end
if running(before) ~= running(after) then
  local last = tonumber(redis.call('HGET', server, 'last_change') or '0')
  if running(after) then
    if last > 0 then redis.call('HINCRBY', server, 'downtime_ms', now_ms - last) end
    redis.call('HSET', server, 'up_since', now_ms)
  else
    redis.call('HINCRBY', server, 'downs', 1)
  end
  redis.call('HSET', server, 'last_change', now_ms)
end
return { before, after }
