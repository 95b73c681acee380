-- record_check.lua: apply one active check result to a server's health, fleet-wide.
--
-- HAProxy's single health counter (src/check.c; Python twin: geoproxy.health.verdict): 0 ..
-- rise+fall-1; running while >= rise. A pass adds one, and at rise or above jumps to the top;
-- a failure takes one away, and below rise drops to 0. Only the holder of the server's checker
-- lease may record, so a check that outlived its lease changes nothing.
-- Time is the Redis server's clock, milliseconds.
--
-- The server's hash is written only when its routing state changes (every worker is told of
-- each write to it, keys.py rule 4); what every check writes goes to its statistics hash.
--
-- KEYS[1]  the server's hash (gp:{B}:srv:S)
-- KEYS[2]  the server's checker lease (gp:{B}:chk:S)
-- KEYS[3]  the server's statistics hash (gp:{B}:stat:S)
-- ARGV[1]  checker id       ARGV[2]  "1" passed, "0" failed
-- ARGV[3]  rise             ARGV[4]  fall
-- ARGV[5]  check status code (L4OK, L4CON, L7STS...)   ARGV[6]  description
--          (L7OKC: http-check disable-on-404 got a 404: the server is up but takes no new
--          load-balanced requests, HAProxy's NOLB, kept in 'nolb' until a plain pass)
-- ARGV[7]  check duration, milliseconds
-- Returns  { oper before, oper after, fastinter flag } or false when the lease is not ours

if redis.call('GET', KEYS[2]) ~= ARGV[1] then
  return false
end
local server = KEYS[1]
local rise, fall = tonumber(ARGV[3]), tonumber(ARGV[4])
local top = rise + fall - 1

local function oper_of(health)
  if health >= rise then
    if health == top then return 'up' end
    return 'going-down'
  end
  if health == 0 then return 'down' end
  return 'going-up'
end

local health = math.min(tonumber(redis.call('HGET', server, 'health') or top), top)
local before = oper_of(health)
local passed = ARGV[2] == '1'
if passed then
  if health < top then
    health = health + 1
    if health >= rise then health = top end
  end
else
  if health > 0 then
    health = health - 1
    if health < rise then health = 0 end
  end
end
local after = oper_of(health)
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local stats = KEYS[3]
local routing = {}
if tostring(health) ~= redis.call('HGET', server, 'health') then
  routing[#routing + 1] = 'health'
  routing[#routing + 1] = health
end
if after ~= redis.call('HGET', server, 'oper') then
  routing[#routing + 1] = 'oper'
  routing[#routing + 1] = after
end
if #routing > 0 then
  redis.call('HSET', server, unpack(routing))
end
redis.call('HSET', stats, 'check_code', ARGV[5], 'check_desc', ARGV[6], 'check_ms', ARGV[7],
  'checked_at', now_ms)
if ARGV[5] == 'L7OKC' then
  if redis.call('HGET', server, 'nolb') ~= '1' then redis.call('HSET', server, 'nolb', 1) end
elseif passed then
  redis.call('HDEL', server, 'nolb')  -- (HDEL of an absent field writes nothing)
end
if passed then
  redis.call('HINCRBY', stats, 'check_ok', 1)
  redis.call('HSET', stats, 'check_fail', 0)
  if after == 'up' then redis.call('HDEL', stats, 'fastinter') end
else
  redis.call('HINCRBY', stats, 'check_fail', 1)
  redis.call('HSET', stats, 'check_ok', 0)
  redis.call('HINCRBY', stats, 'failed_checks', 1)
end
local was_running = before == 'up' or before == 'going-down'
local is_running = after == 'up' or after == 'going-down'
if was_running ~= is_running then
  -- downtime_ms: time spent not running, added up when the server runs again
  local last = tonumber(redis.call('HGET', server, 'last_change') or '0')
  if is_running and last > 0 then
    redis.call('HINCRBY', server, 'downtime_ms', now_ms - last)
  end
  redis.call('HSET', server, 'last_change', now_ms)
  if is_running then
    redis.call('HSET', server, 'up_since', now_ms)
  else
    redis.call('HINCRBY', server, 'downs', 1)
  end
end
return { before, after, redis.call('HGET', stats, 'fastinter') or '0' }
