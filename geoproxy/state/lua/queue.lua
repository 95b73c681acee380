-- queue.lua: wait for a slot, fleet-wide, in arrival order (`maxconn`, `maxqueue`,
-- `timeout queue`).
--
-- A request that found every candidate full takes a ticket in a queue (the backend's for
-- balanced requests, the server's for persistent ones, as HAProxy keeps both) and calls this
-- script again until it is served or its deadline passes. A ticket is served when its rank in
-- the queue is below the number of free slots among its candidates, so tickets leave in
-- arrival order as far as the fleet allows; the pick among candidates with room follows the
-- same rule as acquire.lua. Tickets whose deadline passed (a timed-out or dead waiter) are
-- purged from the head. Time is the Redis server's clock, milliseconds.
--
-- KEYS[1]  in-flight hash   KEYS[2]  this worker's hash   KEYS[3]  live-workers sorted set
-- KEYS[4]  the queue (ZSET: ticket -> arrival sequence)
-- KEYS[5]  the backend's ticket deadlines (HASH: ticket -> deadline ms)
-- KEYS[6]  the backend's ticket sequence counter
-- ARGV[1]  worker id   ARGV[2]  worker ttl ms   ARGV[3]  "first" | "least"
-- ARGV[4]  n, then n triples: server name, weight, maxconn (0 = no limit)
-- then     ticket, deadline (ms from now), maxqueue (0 = no limit)
-- Returns  { chosen server or false, rank in the queue (-1: the queue is full) }

local inflight, mine, workers = KEYS[1], KEYS[2], KEYS[3]
local queue, deadlines, sequence = KEYS[4], KEYS[5], KEYS[6]
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('ZADD', workers, now_ms + tonumber(ARGV[2]), ARGV[1])

local n = tonumber(ARGV[4])
local at = 5 + 3 * n
local ticket, wait_ms, maxqueue = ARGV[at], tonumber(ARGV[at + 1]), tonumber(ARGV[at + 2])

-- purge tickets whose waiter is gone or gave up, from the head
while true do
  local head = redis.call('ZRANGE', queue, 0, 0)
  if #head == 0 then break end
  local deadline = tonumber(redis.call('HGET', deadlines, head[1]) or '0')
  if deadline >= now_ms then break end
  redis.call('ZREM', queue, head[1])
  redis.call('HDEL', deadlines, head[1])
end

local rank = redis.call('ZRANK', queue, ticket)
if not rank then
  if maxqueue > 0 and redis.call('ZCARD', queue) >= maxqueue then
    return { false, -1 }
  end
  redis.call('ZADD', queue, redis.call('INCR', sequence), ticket)
  redis.call('HSET', deadlines, ticket, now_ms + wait_ms)
  rank = redis.call('ZRANK', queue, ticket)
end

local names, counts = {}, {}
for i = 1, n do
  names[i] = ARGV[2 + 3 * i]
end
if n > 0 then
  counts = redis.call('HMGET', inflight, unpack(names))
end
local free, unlimited = 0, false
for i = 1, n do
  local maxconn = tonumber(ARGV[4 + 3 * i])
  if maxconn == 0 then
    unlimited = true
  else
    free = free + math.max(0, maxconn - tonumber(counts[i] or '0'))
  end
end
if not unlimited and rank >= free then
  return { false, rank }
end

local least_mode = ARGV[3] == 'least'
local best, best_load, best_weight = 0, 0, 0
for i = 1, n do
  local count = tonumber(counts[i] or '0')
  local weight = tonumber(ARGV[3 + 3 * i])
  local maxconn = tonumber(ARGV[4 + 3 * i])
  if maxconn == 0 or count < maxconn then
    if not least_mode then
      best = i
      break
    end
    if best == 0 or (count + 1) * best_weight < best_load * weight then
      best, best_load, best_weight = i, count + 1, weight
    end
  end
end
if best == 0 then
  return { false, rank }
end
local chosen = names[best]
redis.call('HINCRBY', inflight, chosen, 1)
redis.call('HINCRBY', mine, chosen, 1)
redis.call('ZREM', queue, ticket)
redis.call('HDEL', deadlines, ticket)
return { chosen, rank }
