-- set_admin.lua: an operator's admin state for one server (READY, DRAIN, MAINT), fleet-wide.
--
-- HAProxy's srv_adm_set_ready(): a checked server that leaves MAINT comes back with its health
-- counter at 'rise', running but one failed check away from DOWN: the page shows 'UP 1/3'
-- (fall 3) until the next check passes and puts it at the top. An unchecked server simply runs.
-- Time is the Redis server's clock, milliseconds.
--
-- KEYS[1]  the server's hash (gp:{B}:srv:S)
-- ARGV[1]  the new admin state: ready, drain or maint
-- Returns  the admin state before

local server = KEYS[1]
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local before = redis.call('HGET', server, 'admin') or 'ready'
redis.call('HSET', server, 'admin', ARGV[1], 'admin_changed', now_ms)
if before == 'maint' and ARGV[1] ~= 'maint' and redis.call('HGET', server, 'check') == '1' then
  local rise = tonumber(redis.call('HGET', server, 'rise') or '2')
  local fall = tonumber(redis.call('HGET', server, 'fall') or '3')
  local oper = 'going-down'
  if rise == rise + fall - 1 then oper = 'up' end
  local was = redis.call('HGET', server, 'oper') or 'up'
  redis.call('HSET', server, 'health', rise, 'oper', oper)
  if was == 'down' or was == 'going-up' then
    local last = tonumber(redis.call('HGET', server, 'last_change') or '0')
    if last > 0 then redis.call('HINCRBY', server, 'downtime_ms', now_ms - last) end
    redis.call('HSET', server, 'last_change', now_ms, 'up_since', now_ms)
  end
end
return before
