-- observe.lua: passive health (`observe layer4|layer7`): errors the workers saw on real traffic
-- count towards `error-limit`, fleet-wide; reaching it applies `on-error` to the same health
-- counter the active checks move (see record_check.lua).
--
-- KEYS[1]  the server's hash (gp:{B}:srv:S)
-- ARGV[1]  errors seen in this batch after its last success (the batch's trailing run)
-- ARGV[2]  "1" when the batch saw a success before that run (it ends any earlier run)
-- ARGV[3]  all errors seen in this batch (statistics)
-- ARGV[4]  error-limit     ARGV[5]  on-error: fastinter | fail-check | sudden-death | mark-down
-- ARGV[6]  rise            ARGV[7]  fall
-- Writes   health, oper, consecutive_errors, observed_errors; when on-error acts, fastinter =
--          the Redis time (ms) it acted, which the checker reads to bring its next check
--          forward (every on-error mode forces fastinter, as HAProxy's health_adjust does)
-- Returns  { oper before, oper after }

local server = KEYS[1]
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

redis.call('HINCRBY', server, 'observed_errors', tonumber(ARGV[3]))
local run = tonumber(ARGV[1])
if ARGV[2] ~= '1' then
  run = run + tonumber(redis.call('HGET', server, 'consecutive_errors') or '0')
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
  redis.call('HSET', server, 'fastinter', now_ms)
end
local after = oper_of(health)
redis.call('HSET', server, 'consecutive_errors', run, 'health', health, 'oper', after)
if before ~= after and ((before == 'up' or before == 'going-down') ~= (after == 'up' or after == 'going-down')) then
  local now = redis.call('TIME')
  local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
  redis.call('HSET', server, 'last_change', now_ms)
  if after == 'down' then redis.call('HINCRBY', server, 'downs', 1) end
end
return { before, after }
