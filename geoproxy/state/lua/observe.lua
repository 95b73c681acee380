-- observe.lua: passive health (`observe layer4|layer7`): errors the workers saw on real traffic
-- count towards `error-limit`, fleet-wide; reaching it applies `on-error` to the same health
-- counter the active checks move (see record_check.lua).
--
-- KEYS[1]  the server's hash (gp:{B}:srv:S): written only when health or oper change
-- KEYS[2]  the server's statistics hash (gp:{B}:stat:S): the error counts and fastinter
-- ARGV[1]  errors seen in this batch after its last success (the batch's trailing run)
-- ARGV[2]  "1" when the batch saw a success before that run (it ends any earlier run)
-- ARGV[3]  all errors seen in this batch (statistics)
-- ARGV[4]  error-limit     ARGV[5]  on-error: fastinter | fail-check | sudden-death | mark-down
-- ARGV[6]  rise            ARGV[7]  fall
-- Writes   health and oper (when they change), consecutive_errors, observed_errors; when
--          on-error acts, fastinter =
--          the Redis time (ms) it acted, which the checker reads to bring its next check
--          forward (every on-error mode forces fastinter, as HAProxy's health_adjust does)
-- Returns  { oper before, oper after }

local server, stats = KEYS[1], KEYS[2]
local rise, fall = tonumber(ARGV[6]), tonumber(ARGV[7])
local top = rise + fall - 1

local function oper_of(health)
  if health >= rise then
    if health == top then return 'up' end
    return 'going-down'
  end
  if health == 0 then return 'down' end
  return 'going-up'
end

redis.call('HINCRBY', stats, 'observed_errors', tonumber(ARGV[3]))
local run = tonumber(ARGV[1])
if ARGV[2] ~= '1' then
  run = run + tonumber(redis.call('HGET', stats, 'consecutive_errors') or '0')
end
local health = math.min(tonumber(redis.call('HGET', server, 'health') or top), top)
local before = oper_of(health)
if run >= tonumber(ARGV[4]) then
  run = 0
  local action = ARGV[5]
  if action == 'mark-down' then
    health = 0
  elseif action == 'sudden-death' then
    if health >= rise then health = rise end
  elseif action == 'fail-check' then
    if health > 0 then
      health = health - 1
      if health < rise then health = 0 end
    end
  end
  -- when: the checker brings the next check forward once per event (HAProxy requeues it)
  local now = redis.call('TIME')
  local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
  redis.call('HSET', stats, 'fastinter', now_ms)
end
local after = oper_of(health)
redis.call('HSET', stats, 'consecutive_errors', run)
if tostring(health) ~= redis.call('HGET', server, 'health') or after ~= redis.call('HGET', server, 'oper') then
  redis.call('HSET', server, 'health', health, 'oper', after)
end
if before ~= after and ((before == 'up' or before == 'going-down') ~= (after == 'up' or after == 'going-down')) then
  local now = redis.call('TIME')
  local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
  redis.call('HSET', server, 'last_change', now_ms)
  if after == 'down' then redis.call('HINCRBY', server, 'downs', 1) end
end
return { before, after }
