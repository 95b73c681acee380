-- acquire.lua: take one server for one request, atomically, fleet-wide.
--
-- The caller's policy has already ranked the candidates (pure Python, see
-- geoproxy/balance/policy.py); this script only arbitrates what is shared and scarce: it reads
-- the live in-flight counts, picks, and counts the request in flight, in one round trip
-- (DESIGN.md invariant 1). Stick tables ride in the same round trip: entries are looked up
-- first, and the chosen server is stored under the request's keys last. The ranking rule has a
-- Python twin, geoproxy.balance.rank.decide, and one integration test runs both against the
-- same table.
--
-- KEYS[1]  in-flight hash of the backend     (field: server, value: requests in flight)
-- KEYS[2]  total hash of the backend         (field: server, value: requests ever acquired)
-- KEYS[3]  this worker's in-flight hash      (what the reaper gives back if the worker dies)
-- KEYS[4]  live-workers sorted set           (member: worker id, score: expiry, ms, Redis clock)
-- KEYS[5 .. 4+L]      stick-table entries to look up, in rule order (value: server name)
-- KEYS[5+L .. 4+L+S]  stick-table entries to store the chosen server in
-- KEYS[5+L+S ..]      (only for backends with maxconn) the backend's queue, then the server
--                     queue of each ranked candidate, in ranking order: requests already
--                     waiting keep the slots they are owed, so a newcomer never overtakes them
--                     (HAProxy skips a server with a queue and queues a request behind others)
-- ARGV[1]  worker id
-- ARGV[2]  worker ttl, milliseconds; 0: leave the worker's expiry as it is (it was refreshed
--          less than a heartbeat period ago)
-- ARGV[3]  "first": first candidate with room | "least": lowest (inflight+1)/weight, ties to
--          the earlier candidate, among those with room
-- ARGV[4]  n, then n triples: server name, weight, maxconn (0 = no limit)
-- then     m, then m pairs: server name, count -- releases this worker batched since its last
--          call (applied first, so the pick sees them)
-- then     L, S, then a, then a pairs: server name, maxconn -- the servers a stick entry may
--          send to (those that accept persistent requests), then L lookup lifetimes and S store
--          lifetimes, in milliseconds (0: no expiry). An entry a lookup finds gets its lifetime
--          back, whether or not it chose the server (HAProxy's stick match touches the entry:
--          'expire' counts from the last use, so an active session never expires).
-- Returns  { the chosen server's name (false when none had room), 1 if a stick entry chose it
--            else 0, the chosen server's in-flight count now (for its max) } (the other
--            counts reach the workers' snapshots with each heartbeat)
-- Invariants kept: KEYS[1][s] == sum over live workers of their hash[s], never below 0; with
-- queue keys, a server's slot goes to a newcomer only when more are free than are waited for.

local inflight, total, mine, workers = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local ttl_ms = tonumber(ARGV[2])
if ttl_ms > 0 then
  local now = redis.call('TIME')
  local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
  redis.call('ZADD', workers, now_ms + ttl_ms, ARGV[1])
end

local n = tonumber(ARGV[4])
local at = 5 + 3 * n
local m = tonumber(ARGV[at])
for i = 0, m - 1 do
  local name = ARGV[at + 1 + 2 * i]
  local count = tonumber(ARGV[at + 2 + 2 * i])
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
at = at + 1 + 2 * m

local lookups, stores, allowed_count = 0, 0, 0
if ARGV[at] then
  lookups, stores, allowed_count = tonumber(ARGV[at]), tonumber(ARGV[at + 1]), tonumber(ARGV[at + 2])
end
local allowed = {}
for i = 0, allowed_count - 1 do
  allowed[ARGV[at + 3 + 2 * i]] = tonumber(ARGV[at + 4 + 2 * i])
end
local ttls_at = at + 3 + 2 * allowed_count

local function has_room(name)
  local maxconn = allowed[name]
  if maxconn == nil then
    return false
  end
  return maxconn == 0 or tonumber(redis.call('HGET', inflight, name) or '0') < maxconn
end

local chosen, stuck = nil, 0
for i = 1, lookups do
  local server = redis.call('GET', KEYS[4 + i])
  if server then
    local ttl = tonumber(ARGV[ttls_at + i - 1])
    if ttl > 0 then
      redis.call('PEXPIRE', KEYS[4 + i], ttl)
    end
    if not chosen and has_room(server) then
      chosen, stuck = server, 1
    end
  end
end

if not chosen and n > 0 then
  local names = {}
  for i = 1, n do
    names[i] = ARGV[2 + 3 * i]
  end
  local counts = redis.call('HMGET', inflight, unpack(names))
  -- a slot is free for a newcomer when nobody waits for it: server queues first, then the
  -- backend's queue takes the free slots of all candidates before any newcomer does
  local queues = 4 + lookups + stores
  local owed = {}
  local free, unlimited = 0, false
  for i = 1, n do
    local count = tonumber(counts[i] or '0')
    local maxconn = tonumber(ARGV[4 + 3 * i])
    owed[i] = 0
    if maxconn == 0 then
      unlimited = true
    else
      if #KEYS > queues then
        owed[i] = redis.call('ZCARD', KEYS[queues + 1 + i])
      end
      free = free + math.max(0, maxconn - count - owed[i])
    end
  end
  if #KEYS > queues and not unlimited and free <= redis.call('ZCARD', KEYS[queues + 1]) then
    n = 0
  end
  local least_mode = ARGV[3] == 'least'
  local best, best_load, best_weight = 0, 0, 0
  for i = 1, n do
    local count = tonumber(counts[i] or '0')
    local weight = tonumber(ARGV[3 + 3 * i])
    local maxconn = tonumber(ARGV[4 + 3 * i])
    if maxconn == 0 or count + owed[i] < maxconn then
      if not least_mode then
        best = i
        break
      end
      -- (count+1)/weight < best, without division: weight 0 loses to any weight above 0
      if best == 0 or (count + 1) * best_weight < best_load * weight then
        best, best_load, best_weight = i, count + 1, weight
      end
    end
  end
  if best > 0 then
    chosen = names[best]
  end
end

local count = 0
if chosen then
  count = redis.call('HINCRBY', inflight, chosen, 1)
  redis.call('HINCRBY', mine, chosen, 1)
  redis.call('HINCRBY', total, chosen, 1)
  for i = 1, stores do
    local ttl = tonumber(ARGV[ttls_at + lookups + i - 1])
    if ttl > 0 then
      redis.call('SET', KEYS[4 + lookups + i], chosen, 'PX', ttl)
    else
      redis.call('SET', KEYS[4 + lookups + i], chosen)
    end
  end
end

return { chosen or false, stuck, count }
