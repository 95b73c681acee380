-- lib/least_index.lua: the least-loaded index of a backend, shared by every script that changes
-- an in-flight count (acquire, queue, heartbeat). scripts.py puts this text where a script says
-- `--#include least_index` (Redis scripts cannot import one another).
--
-- The index (gp:{B}:least, ZSET) holds the servers of the backend's *pool*: the servers a
-- leastconn pick may take, with the effective weight and maxconn that the newest snapshot of any
-- worker gave them (gp:{B}:pool, HASH: server -> maxconn * 512 + weight, and '#digest',
-- '#version', '#seq'). A member's score is its leastconn key, then a sequence number:
--   score = floor((inflight + 1) * 65536 / weight) * 2^20 + seq
-- The lowest score is the lowest (inflight + 1) / weight, exactly (weights are 1..256, so two
-- different loads never share a key), and among equal loads the member moved longest ago:
-- HAProxy's tree puts a server behind its equals each time it takes or drops a connection.
-- Every change of a member's count moves it, in the script that made the change, so a pick
-- reads only the lowest few members, whatever the number of servers (acquire.lua reads them once
-- per call and writes every move back at its end). Scores stay below 2^52 (exact in a Lua
-- number). The sequence would wrap after 2^20 moves: the members are renumbered in place then.

local LEAST_SPAN = 1048576 -- 2^20

-- The index of one backend, for one script call: `least_open(index_key, pool_key)`.
local function least_open(index, pool)
  return { index = index, pool = pool, members = {}, seq = nil }
end

-- A pool entry, { weight, maxconn }, from its hash value (maxconn * 512 + weight: weights are
-- 1..256); false for none.
local function least_entry(raw)
  if not raw then
    return false
  end
  local packed = tonumber(raw)
  return { packed % 512, math.floor(packed / 512) }
end

-- { weight, maxconn } of a pool member; false when `name` is not in the pool.
local function least_member(ix, name)
  local info = ix.members[name]
  if info == nil then
    info = least_entry(redis.call('HGET', ix.pool, name))
    ix.members[name] = info
  end
  return info
end

local function least_key(count, weight)
  if count > 65534 then
    count = 65534
  end
  return math.floor((count + 1) * 65536 / weight)
end

-- Renumber every member in its present order (the sequence nears 2^20); returns the next one.
local function least_renumber(ix)
  local scored = redis.call('ZRANGE', ix.index, 0, -1, 'WITHSCORES')
  local args = {}
  for i = 1, #scored, 2 do
    local key = math.floor(tonumber(scored[i + 1]) / LEAST_SPAN)
    args[#args + 1] = key * LEAST_SPAN + (i + 1) / 2
    args[#args + 1] = scored[i]
  end
  if #args > 0 then
    redis.call('ZADD', ix.index, unpack(args))
  end
  return #scored / 2 + 1
end

-- A member's count changed to `count`: move it behind the members of its new load.
local function least_move(ix, name, count)
  local info = least_member(ix, name)
  if not info then
    return
  end
  if ix.seq == nil then
    ix.seq = tonumber(redis.call('HGET', ix.pool, '#seq') or '0')
  end
  ix.seq = ix.seq + 1
  if ix.seq >= LEAST_SPAN then
    ix.seq = least_renumber(ix)
  end
  redis.call('ZADD', ix.index, least_key(count, info[1]) * LEAST_SPAN + ix.seq, name)
end

-- Save the sequence (once per script call, after the last move).
local function least_close(ix)
  if ix.seq ~= nil then
    redis.call('HSET', ix.pool, '#seq', ix.seq)
  end
end
