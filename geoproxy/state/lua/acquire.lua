-- acquire.lua: one worker's turn on one backend, atomically and fleet-wide, for requests whose
-- choice must be checked against the fleet's counts (a candidate with maxconn, a stick-table
-- entry, a queue; the others need no script: state/leases.py): give back the releases the
-- worker batched, then take a server for each request it collected meanwhile (group commit).
--
-- The caller's policy has already ranked each request's candidates (pure Python, see
-- geoproxy/balance/policy.py); this script only arbitrates what is shared and scarce. Requests
-- are decided in order, each seeing the picks before it, exactly as if each had come alone. A
-- request is one of:
--   F  the first of its listed candidates with room (roundrobin, hashing, persistence);
--   L  the least loaded of its listed candidates, ties to the earlier one (leastconn, random
--      draws, a redispatch that avoids a server).
-- F and L have a Python twin, geoproxy.balance.rank.decide, and one integration test runs both
-- against the same table. Stick tables ride in the same call: a request's lookups first (the
-- first entry naming a server it may use that has room decides), its stores last. While
-- requests wait in the backend's queues (backends with maxconn), a newcomer never takes a slot
-- a waiter is owed (HAProxy queues a request behind others): the candidates' free slots, less
-- the tickets of their own queues, must exceed the backend queue's length.
--
-- Cost: Redis charges several thousand instructions per redis.call from a script, about a
-- thousand per argument, per table a script makes, per number it turns into text. So the
-- script reads what it needs in few commands, decides over plain tables, and writes each
-- changed key once at its end, its numbers formatted as integers.
--
-- KEYS[1]  in-flight hash of the backend    (field: server, value: requests in flight)
-- KEYS[2]  the caller's in-flight hash      (what the reaper gives back if the worker dies)
-- KEYS[3]  live-workers sorted set          (member: worker id, score: expiry, ms, Redis clock)
-- KEYS[4]  ticket deadlines of the backend's queues (its length: how many wait, 0 mostly)
-- KEYS[5]  the backend's queue
-- KEYS[6 ..] each request's stick-table entries, request after request: lookups, then stores
-- ARGV[1]  the caller's id   ARGV[2]  its liveness ttl, ms; 0: leave its expiry as it is
-- ARGV[3]  the prefix of server queue keys (the server name follows); '' when the backend has
--          no maxconn (and so no queues)
-- ARGV[4]  m, then m pairs: server, count -- releases batched since the caller's last call
--          (below 0: requests it counted since without a script)
-- then     r, then r requests, each: a header, the kind ('F' or 'L'), then '~' when its
--          candidates are only the first of its ranking, '+' when it has stick-table work;
--          then k, then k triples: server, weight, maxconn (0 = no limit); with
--          '+': L, S, a, a pairs: server, maxconn (the servers a stick entry may send to), L
--          lookup lifetimes and S store lifetimes (ms, '0': no expiry)
-- Returns  per request: server or false, 1 if a stick entry chose it else 0, the server's
--          in-flight count now, 1 when the request was not decided (a partial list whose
--          candidates were all full: send the whole ranking) else 0; then the in-flight
--          count of every listed candidate, as name and count pairs (the caller's view)
-- Invariants: KEYS[1][s] == sum over live workers of their hash[s], never below 0; a server
-- never exceeds its maxconn.

local call, format, tonumber = redis.call, string.format, tonumber
local inflight, mine = KEYS[1], KEYS[2]
local queue_prefix = ARGV[3]
local m = tonumber(ARGV[4])

local ttl_ms = tonumber(ARGV[2])
if ttl_ms > 0 then
  local now = call('TIME')
  local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
  call('ZADD', KEYS[3], format('%d', now_ms + ttl_ms), ARGV[1])
end

-- counts[s]: the fleet's count of s as this call leaves it
local counts = {}
local function read(names, n)
  local missing, k = {}, 0
  for i = 1, n do
    if counts[names[i]] == nil then
      k = k + 1
      missing[k] = names[i]
    end
  end
  if k > 0 then
    local raw = call('HMGET', inflight, unpack(missing, 1, k))
    for i = 1, k do
      counts[missing[i]] = tonumber(raw[i] or '0')
    end
  end
end

local touched, nt, held, picks = {}, 0, {}, {}
local function change(name, by)
  if counts[name] == nil then
    read({ name }, 1)
  end
  if picks[name] == nil then
    nt = nt + 1
    touched[nt] = name
    picks[name] = 0
  end
  counts[name] = counts[name] + by
end

-- 1. releases, given back before any pick sees the counts: a worker gives back only what its
--    hash holds (one reaped as dead while it was only slow gives back nothing twice); a
--    negative count is requests the worker decided and counted without a script (plain ones)
if m > 0 then
  local names = {}
  for i = 1, m do
    names[i] = ARGV[3 + 2 * i]
  end
  read(names, m)
  local raw = call('HMGET', mine, unpack(names))
  for i = 1, m do
    local holds = tonumber(raw[i] or '0')
    local given = tonumber(ARGV[4 + 2 * i])
    if given > holds then
      given = holds
    end
    held[names[i]] = holds - given
    if given ~= 0 then
      change(names[i], -given)
    end
  end
end

-- 2. the requests, in order
local at = 5 + 2 * m
local r = tonumber(ARGV[at])
at = at + 1
local waiting = queue_prefix ~= '' and call('HLEN', KEYS[4]) > 0
local cand_names, cand_weights, cand_maxconns = {}, {}, {}
local seen, ns = {}, 0 -- every listed candidate, for the caller's view

-- The first of the k listed candidates with room (least_mode: the least loaded), or nil.
local function pick_listed(k, least_mode)
  read(cand_names, k)
  local owed = nil
  if waiting then
    owed = {}
    local free, unlimited = 0, false
    for i = 1, k do
      owed[i] = 0
      if cand_maxconns[i] == 0 then
        unlimited = true
      else
        owed[i] = call('ZCARD', queue_prefix .. cand_names[i])
        free = free + math.max(0, cand_maxconns[i] - counts[cand_names[i]] - owed[i])
      end
    end
    if not unlimited and free <= call('ZCARD', KEYS[5]) then
      return nil
    end
  end
  local best, best_load, best_weight = nil, 0, 0
  for i = 1, k do
    local count, maxconn = counts[cand_names[i]], cand_maxconns[i]
    if owed then
      count = count + owed[i]
    end
    if maxconn == 0 or count < maxconn then
      if not least_mode then
        return cand_names[i]
      end
      -- (count+1)/weight < best, without division: weight 0 loses to any weight above 0
      if best == nil or (count + 1) * best_weight < best_load * cand_weights[i] then
        best, best_load, best_weight = cand_names[i], count + 1, cand_weights[i]
      end
    end
  end
  return best
end

local reply = {}
local key_at = 6
for q = 1, r do
  local header = ARGV[at]
  local kind = string.sub(header, 1, 1)
  local k = tonumber(ARGV[at + 1])
  for i = 1, k do
    local base = at + 3 * i
    cand_names[i] = ARGV[base - 1]
    cand_weights[i] = tonumber(ARGV[base])
    cand_maxconns[i] = tonumber(ARGV[base + 1])
  end
  at = at + 2 + 3 * k
  local lookups, stores, ttls, allowed = 0, 0, 0, nil
  if #header > 1 and string.find(header, '+', 2, true) then
    lookups, stores = tonumber(ARGV[at]), tonumber(ARGV[at + 1])
    local a = tonumber(ARGV[at + 2])
    allowed = {}
    for i = 0, a - 1 do
      allowed[ARGV[at + 3 + 2 * i]] = tonumber(ARGV[at + 4 + 2 * i])
    end
    ttls = at + 3 + 2 * a
    at = ttls + lookups + stores
  end

  local chosen, stuck, resend = nil, 0, 0
  for i = 0, lookups - 1 do
    local entry = KEYS[key_at + i]
    local server = call('GET', entry)
    if server then
      local ttl = ARGV[ttls + i]
      if ttl ~= '0' then
        call('PEXPIRE', entry, ttl)
      end
      local maxconn = allowed[server]
      if not chosen and maxconn then
        if counts[server] == nil then
          read({ server }, 1)
        end
        if maxconn == 0 or counts[server] < maxconn then
          chosen, stuck = server, 1
        end
      end
    end
  end
  if not chosen and k > 0 then
    for i = 1, k do
      if not seen[cand_names[i]] then
        seen[cand_names[i]] = true
        ns = ns + 1
        seen[ns] = cand_names[i]
      end
    end
    chosen = pick_listed(k, kind == 'L')
    if not chosen and string.find(header, '~', 2, true) then
      resend = 1
    end
  end
  local count = 0
  if chosen then
    change(chosen, 1)
    picks[chosen] = picks[chosen] + 1
    count = counts[chosen]
    for i = 0, stores - 1 do
      local ttl = ARGV[ttls + lookups + i]
      if ttl ~= '0' then
        call('SET', KEYS[key_at + lookups + i], chosen, 'PX', ttl)
      else
        call('SET', KEYS[key_at + lookups + i], chosen)
      end
    end
  end
  key_at = key_at + lookups + stores
  local base = 4 * q - 3
  reply[base], reply[base + 1], reply[base + 2], reply[base + 3] = chosen or false, stuck, count,
    resend
end

-- 3. every changed key, once per key (the values are known: this script read them, and
--    nothing else ran since); the caller's hash by increments where it was not read
if nt > 0 then
  local counted, holding, dropped, nh, nd = {}, {}, {}, 0, 0
  for i = 1, nt do
    local name = touched[i]
    local count = counts[name]
    counted[2 * i - 1] = name
    counted[2 * i] = format('%d', count > 0 and count or 0)
    local holds = held[name]
    if holds == nil then
      call('HINCRBY', mine, name, format('%d', picks[name]))
    else
      holds = holds + picks[name]
      if holds > 0 then
        holding[nh + 1], holding[nh + 2] = name, format('%d', holds)
        nh = nh + 2
      else
        nd = nd + 1
        dropped[nd] = name
      end
    end
  end
  call('HSET', inflight, unpack(counted, 1, 2 * nt))
  if nh > 0 then
    call('HSET', mine, unpack(holding, 1, nh))
  end
  if nd > 0 then
    call('HDEL', mine, unpack(dropped, 1, nd))
  end
end
-- 4. the caller's view: the counts of every candidate it listed
local n = #reply
for i = 1, ns do
  reply[n + 2 * i - 1] = seen[i]
  reply[n + 2 * i] = counts[seen[i]]
end
return reply
