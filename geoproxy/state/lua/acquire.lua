-- acquire.lua: one worker's turn on one backend, atomically and fleet-wide: give back the
-- releases it batched, then take a server for each request it collected meanwhile (group
-- commit: the busier the worker, the more requests share one call).
--
-- The caller's policy has already ranked each request's candidates (pure Python, see
-- geoproxy/balance/policy.py); this script only arbitrates what is shared and scarce. Requests
-- are decided in order, each seeing the picks before it, exactly as if each had come alone. A
-- request is one of:
--   P  leastconn over the whole pool: the lowest-scored member of the least-loaded index with
--      room (lib/least_index.lua);
--   F  the first of its listed candidates with room (roundrobin, hashing, persistence);
--   L  the least loaded of its listed candidates, ties to the earlier one (random draws, a
--      redispatch that avoids a server).
-- The listed rules have a Python twin, geoproxy.balance.rank.decide, and one integration test
-- runs both against the same table; the pool rule is that twin over the index's order
-- (tests/integration/test_script_least_index.py).
-- Stick tables ride in the same call: a request's lookups first (the first entry naming a
-- server it may use that has room decides), its stores last.
-- While requests wait in the backend's queues (backends with maxconn), a newcomer never takes
-- a slot a waiter is owed (HAProxy queues a request behind others): the candidates' free
-- slots, less the tickets of their own queues, must exceed the backend queue's length.
--
-- Cost: Redis charges about a microsecond per redis.call from a script and a fraction of one
-- per argument, so this script reads what a batch needs in a few calls (the index's lowest
-- members, their pool entries and counts), decides in Lua, and writes each changed key once at
-- its end: a batch costs about the same whatever its size and whatever the number of servers.
--
-- KEYS[1]  in-flight hash of the backend    (field: server, value: requests in flight)
-- KEYS[2]  the caller's in-flight hash      (what the reaper gives back if the worker dies)
-- KEYS[3]  live-workers sorted set          (member: worker id, score: expiry, ms, Redis clock)
-- KEYS[4]  the least-loaded index           KEYS[5]  the pool hash (lib/least_index.lua)
-- KEYS[6]  ticket deadlines of the backend's queues (its length: how many wait, 0 mostly)
-- KEYS[7]  the backend's queue
-- KEYS[8 ..] each request's stick-table entries, request after request: lookups, then stores
-- ARGV[1]  the caller's id   ARGV[2]  its liveness ttl, ms; 0: leave its expiry as it is
-- ARGV[3]  the prefix of server queue keys (the server name follows); '' when the backend has
--          no maxconn (and so no queues)
-- ARGV[4]  m, then m pairs: server, count -- releases batched since the caller's last call
-- then     the pool: digest ('' for a backend without one), version (ms, Redis clock, of the
--          snapshot it comes from), t, then t triples: server, weight, maxconn (t = 0: not
--          sent, Redis should have it)
-- then     r, then r requests, each: a header, the kind ('P', 'F' or 'L'), then '~' when its
--          candidates are only the first of its ranking, '+' when it has stick-table work;
--          for F and L: k, then k triples: server, weight, maxconn (0 = no limit); with '+':
--          L, S, a, a pairs: server, maxconn (the servers a stick entry may send to), L lookup
--          lifetimes and S store lifetimes (ms, 0: no expiry)
-- Returns  { pool, then per request: server or false, 1 if a stick entry chose it else 0, the
--          server's in-flight count now, resend } where pool is 0 (the caller's pool is in
--          Redis), 1 (a newer one, from a fresher snapshot, decided instead) or 2 (none: send
--          it), and resend is 1 when the request was not decided: a 'P' request without a pool,
--          or a partial list whose candidates were all full (send the whole ranking).
-- Invariants: KEYS[1][s] == sum over live workers of their hash[s], never below 0; a server
-- never exceeds its maxconn; the index holds the pool members scored by their counts.
--#include least_index

local inflight, mine, workers = KEYS[1], KEYS[2], KEYS[3]
local index, pool = KEYS[4], KEYS[5]
local deadlines, backend_queue = KEYS[6], KEYS[7]
local queue_prefix = ARGV[3]
local m = tonumber(ARGV[4])
local at = 5 + 2 * m
local digest, version, t = ARGV[at], tonumber(ARGV[at + 1]), tonumber(ARGV[at + 2])
local has_pool = digest ~= ''

local ttl_ms = tonumber(ARGV[2])
if ttl_ms > 0 then
  local now = redis.call('TIME')
  local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
  redis.call('ZADD', workers, now_ms + ttl_ms, ARGV[1])
end

-- counts[s]: the fleet's count of s as this call leaves it; members[s]: s's pool entry
-- { weight, maxconn }, false when s is not in the pool
local counts, members = {}, {}
local function read(names)
  local missing = {}
  for _, name in ipairs(names) do
    if counts[name] == nil then
      missing[#missing + 1] = name
    end
  end
  if #missing == 0 then
    return
  end
  local raw = redis.call('HMGET', inflight, unpack(missing))
  for i, name in ipairs(missing) do
    counts[name] = tonumber(raw[i] or '0')
  end
  if has_pool then
    raw = redis.call('HMGET', pool, unpack(missing))
    for i, name in ipairs(missing) do
      members[name] = least_entry(raw[i])
    end
  end
end
local function count_of(name)
  if counts[name] == nil then
    read({ name })
  end
  return counts[name]
end

-- 1. the pool: the caller's, if Redis has it or it is newer than Redis's; else Redis's, newer
local pool_state, seq = 2, 0
if has_pool then
  pool_state = 0
  local stored = redis.call('HMGET', pool, '#digest', '#version', '#seq')
  seq = tonumber(stored[3] or '0')
  if stored[1] ~= digest then
    if t > 0 and (not stored[2] or tonumber(stored[2]) < version) then
      local names, scores = {}, {}
      local fields = { '#digest', digest, '#version', version, '#seq', t }
      for i = 0, t - 1 do
        names[i + 1] = ARGV[at + 3 + 3 * i]
        fields[#fields + 1] = ARGV[at + 3 + 3 * i]
        fields[#fields + 1] = tonumber(ARGV[at + 5 + 3 * i]) * 512 + tonumber(ARGV[at + 4 + 3 * i])
      end
      redis.call('DEL', index, pool)
      redis.call('HSET', pool, unpack(fields))
      read(names)
      for i, name in ipairs(names) do
        scores[#scores + 1] = least_key(counts[name], members[name][1]) * LEAST_SPAN + i
        scores[#scores + 1] = name
      end
      redis.call('ZADD', index, unpack(scores))
      seq = t
    elseif stored[1] and tonumber(stored[2]) >= version then
      pool_state = 1
    else
      pool_state = 2
    end
  end
end
at = at + 3 + 3 * t
local r = tonumber(ARGV[at])
if has_pool and seq + m + r >= LEAST_SPAN then
  seq = least_renumber(least_open(index, pool))
end

-- The working set of the index: the lowest members read so far and every member this call
-- moved, with their scores as this call leaves them. A member outside it is unmoved and
-- scores above `boundary` (the highest score read), so the lowest of the set with room is the
-- lowest of the index with room whenever it scores below the boundary.
local scores, fetched, boundary, moved = {}, 0, -1, {}
local function fetch(count)
  local got = redis.call('ZRANGE', index, fetched, fetched + count - 1, 'WITHSCORES')
  local names = {}
  for i = 1, #got, 2 do
    if scores[got[i]] == nil then
      scores[got[i]] = tonumber(got[i + 1])
    end
    names[#names + 1] = got[i]
  end
  read(names)
  fetched = fetched + #names
  if #names < count then
    boundary = math.huge
  elseif #names > 0 then
    boundary = tonumber(got[#got])
  end
end

local touched, is_touched = {}, {}
local function change(name, by)
  if not is_touched[name] then
    is_touched[name] = true
    touched[#touched + 1] = name
  end
  counts[name] = count_of(name) + by
  local entry = members[name]
  if entry then
    seq = seq + 1
    scores[name] = least_key(counts[name], entry[1]) * LEAST_SPAN + seq
    moved[name] = true
  end
end

-- 2. releases, given back before any pick sees the counts: a worker gives back only what its
--    hash holds (one reaped as dead while it was only slow gives back nothing twice)
local held = {} -- held[s]: what the caller's hash holds of s, as this call leaves it
if m > 0 then
  local names = {}
  for i = 1, m do
    names[i] = ARGV[3 + 2 * i]
  end
  read(names)
  local raw = redis.call('HMGET', mine, unpack(names))
  for i, name in ipairs(names) do
    local holds = tonumber(raw[i] or '0')
    local given = math.min(holds, tonumber(ARGV[4 + 2 * i]))
    held[name] = holds - given
    if given > 0 then
      change(name, -given)
    end
  end
end

-- 3. the requests, in order
local waiting = queue_prefix ~= '' and redis.call('HLEN', deadlines) > 0

-- The server `cands` (triples) give a request, or nil when none has room.
local function pick_listed(cands, least_mode)
  local names = {}
  for i, c in ipairs(cands) do
    names[i] = c[1]
  end
  read(names)
  local owed = {}
  if waiting then
    local free, unlimited = 0, false
    for i, c in ipairs(cands) do
      owed[i] = 0
      if c[3] == 0 then
        unlimited = true
      else
        owed[i] = redis.call('ZCARD', queue_prefix .. c[1])
        free = free + math.max(0, c[3] - counts[c[1]] - owed[i])
      end
    end
    if not unlimited and free <= redis.call('ZCARD', backend_queue) then
      return nil
    end
  end
  local best, best_load, best_weight = nil, 0, 0
  for i, c in ipairs(cands) do
    local count = counts[c[1]]
    if c[3] == 0 or count + (owed[i] or 0) < c[3] then
      if not least_mode then
        return c[1]
      end
      -- (count+1)/weight < best, without division: weight 0 loses to any weight above 0
      if best == nil or (count + 1) * best_weight < best_load * c[2] then
        best, best_load, best_weight = c[1], count + 1, c[2]
      end
    end
  end
  return best
end

local pool_picks = 0
local function pick_pool()
  if waiting then
    -- the slow path while requests queue: every member, in the index's order
    while boundary ~= math.huge do
      fetch(64)
    end
    local cands = {}
    for name, _ in pairs(scores) do
      if members[name] then
        cands[#cands + 1] = { name, members[name][1], members[name][2] }
      end
    end
    table.sort(cands, function(a, b)
      return scores[a[1]] < scores[b[1]]
    end)
    return pick_listed(cands, true)
  end
  while true do
    local best, best_score = nil, nil
    for name, score in pairs(scores) do
      local entry = members[name]
      if entry and (entry[2] == 0 or counts[name] < entry[2])
          and (best_score == nil or score < best_score) then
        best, best_score = name, score
      end
    end
    if boundary == math.huge or (best_score ~= nil and best_score <= boundary) then
      return best
    end
    fetch(math.max(4, pool_picks + 2))
  end
end

local reply, picks_of = { pool_state }, {}
local key_at = 8
at = at + 1
for _ = 1, r do
  local header = ARGV[at]
  local kind = string.sub(header, 1, 1)
  local partial = string.find(header, '~', 2, true) ~= nil
  local sticky = string.find(header, '+', 2, true) ~= nil
  at = at + 1
  local cands = {}
  if kind ~= 'P' then
    local k = tonumber(ARGV[at])
    for i = 0, k - 1 do
      cands[i + 1] = { ARGV[at + 1 + 3 * i], tonumber(ARGV[at + 2 + 3 * i]),
        tonumber(ARGV[at + 3 + 3 * i]) }
    end
    at = at + 1 + 3 * k
  end
  local lookups, stores, ttls, allowed = 0, 0, 0, {}
  if sticky then
    lookups, stores = tonumber(ARGV[at]), tonumber(ARGV[at + 1])
    local a = tonumber(ARGV[at + 2])
    for i = 0, a - 1 do
      allowed[ARGV[at + 3 + 2 * i]] = tonumber(ARGV[at + 4 + 2 * i])
    end
    ttls = at + 3 + 2 * a
    at = ttls + lookups + stores
  end

  local chosen, stuck, resend = nil, 0, 0
  for i = 0, lookups - 1 do
    local entry = KEYS[key_at + i]
    local server = redis.call('GET', entry)
    if server then
      local ttl = tonumber(ARGV[ttls + i])
      if ttl > 0 then
        redis.call('PEXPIRE', entry, ttl)
      end
      local maxconn = allowed[server]
      if not chosen and maxconn and (maxconn == 0 or count_of(server) < maxconn) then
        chosen, stuck = server, 1
      end
    end
  end
  if not chosen then
    if kind == 'P' then
      if pool_state == 2 then
        resend = 1
      else
        pool_picks = pool_picks + 1
        chosen = pick_pool()
      end
    elseif #cands > 0 then
      chosen = pick_listed(cands, kind == 'L')
      if not chosen and partial then
        resend = 1
      end
    end
  end
  local count = 0
  if chosen then
    change(chosen, 1)
    picks_of[chosen] = (picks_of[chosen] or 0) + 1
    count = counts[chosen]
    for i = 0, stores - 1 do
      local ttl = tonumber(ARGV[ttls + lookups + i])
      if ttl > 0 then
        redis.call('SET', KEYS[key_at + lookups + i], chosen, 'PX', ttl)
      else
        redis.call('SET', KEYS[key_at + lookups + i], chosen)
      end
    end
  end
  key_at = key_at + lookups + stores
  reply[#reply + 1] = chosen or false
  reply[#reply + 1] = stuck
  reply[#reply + 1] = count
  reply[#reply + 1] = resend
end

-- 4. every changed key, once, in one command per key (the values are known: this script read
--    them, and nothing else ran since)
if #touched > 0 then
  local unread = {}
  for _, name in ipairs(touched) do
    if held[name] == nil then
      unread[#unread + 1] = name
    end
  end
  if #unread > 0 then
    local raw = redis.call('HMGET', mine, unpack(unread))
    for i, name in ipairs(unread) do
      held[name] = tonumber(raw[i] or '0')
    end
  end
  local counted, holding, dropped = {}, {}, {}
  for _, name in ipairs(touched) do
    counted[#counted + 1] = name
    counted[#counted + 1] = math.max(counts[name], 0)
    -- a release was taken off `held` already; a pick adds to it
    local holds = held[name] + (picks_of[name] or 0)
    if holds > 0 then
      holding[#holding + 1] = name
      holding[#holding + 1] = holds
    else
      dropped[#dropped + 1] = name
    end
  end
  redis.call('HSET', inflight, unpack(counted))
  if #holding > 0 then
    redis.call('HSET', mine, unpack(holding))
  end
  if #dropped > 0 then
    redis.call('HDEL', mine, unpack(dropped))
  end
end
if next(moved) ~= nil then
  local args = {}
  for name in pairs(moved) do
    args[#args + 1] = scores[name]
    args[#args + 1] = name
  end
  redis.call('ZADD', index, unpack(args))
  redis.call('HSET', pool, '#seq', seq)
end
return reply
