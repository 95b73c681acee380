-- acquire.lua: take one server for one request, atomically, fleet-wide.
--
-- The caller's policy has already ranked the candidates (pure Python, see
-- geoproxy/balance/policy.py); this script only arbitrates what is shared and scarce: it reads
-- the live in-flight counts, picks, and counts the request in flight, in one round trip
-- (DESIGN.md invariant 1). Its rule has a Python twin, geoproxy.balance.rank.decide, and one
-- integration test runs both against the same table.
--
-- KEYS[1]  in-flight hash of the backend     (field: server, value: requests in flight)
-- KEYS[2]  total hash of the backend         (field: server, value: requests ever acquired)
-- KEYS[3]  this worker's in-flight hash      (what the reaper gives back if the worker dies)
-- KEYS[4]  live-workers sorted set           (member: worker id, score: expiry, ms, Redis clock)
-- ARGV[1]  worker id
-- ARGV[2]  worker ttl, milliseconds
-- ARGV[3]  "first": first candidate with room | "least": lowest (inflight+1)/weight, ties to
--          the earlier candidate, among those with room
-- ARGV[4]  n, then n triples: server name, weight, maxconn (0 = no limit)
-- then     m, then m pairs: server name, count -- releases this worker batched since its last
--          call (applied first, so the pick sees them)
-- Returns  { index of the chosen candidate (1-based; 0 when none had room),
--            then name, count pairs: the in-flight count of every server of the backend }
-- Invariant kept: KEYS[1][s] == sum over live workers of their hash[s], never below 0.

local inflight, total, mine, workers = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('ZADD', workers, now_ms + tonumber(ARGV[2]), ARGV[1])

local n = tonumber(ARGV[4])
local releases_at = 5 + 3 * n
local m = tonumber(ARGV[releases_at])
for i = 0, m - 1 do
  local name = ARGV[releases_at + 1 + 2 * i]
  local count = tonumber(ARGV[releases_at + 2 + 2 * i])
  local held = tonumber(redis.call('HGET', mine, name) or '0')
  local given = math.min(held, count)
  if given > 0 then
    redis.call('HINCRBY', inflight, name, -given)
    if held == given then
      redis.call('HDEL', mine, name)
    else
      redis.call('HINCRBY', mine, name, -given)
    end
  end
end

local chosen = 0
if n > 0 then
  local names = {}
  for i = 1, n do
    names[i] = ARGV[2 + 3 * i]
  end
  local counts = redis.call('HMGET', inflight, unpack(names))
  local least_mode = ARGV[3] == 'least'
  local best_load, best_weight
  for i = 1, n do
    local count = tonumber(counts[i] or '0')
    local weight = tonumber(ARGV[3 + 3 * i])
    local maxconn = tonumber(ARGV[4 + 3 * i])
    if maxconn == 0 or count < maxconn then
      if not least_mode then
        chosen = i
        break
      end
      -- (count+1)/weight < best, without division: weight 0 loses to any weight above 0
      if chosen == 0 or (count + 1) * best_weight < best_load * weight then
        chosen, best_load, best_weight = i, count + 1, weight
      end
    end
  end
  if chosen > 0 then
    local name = names[chosen]
    redis.call('HINCRBY', inflight, name, 1)
    redis.call('HINCRBY', mine, name, 1)
    redis.call('HINCRBY', total, name, 1)
  end
end

local reply = { chosen }
local all = redis.call('HGETALL', inflight)
for i = 1, #all do
  reply[i + 1] = all[i]
end
return reply
