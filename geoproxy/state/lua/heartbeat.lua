-- heartbeat.lua: say this worker is alive, and reap the in-flight counts of workers that are not.
--
-- Any live process reaps any dead one (DESIGN.md invariant 2): a worker killed with SIGKILL
-- never releases, so its counts would leak; its own hash records exactly what it held.
-- Time is the Redis server's clock, in milliseconds, so hosts need not agree on time.
--
-- KEYS[1]  live-workers sorted set of the backend (member: worker id, score: expiry ms)
-- KEYS[2]  in-flight hash of the backend
-- ARGV[1]  prefix of the workers' in-flight hashes (the worker id is appended)
-- ARGV[2]  this worker's id, or "" when the caller only reaps (the gunicorn master)
-- ARGV[3]  ttl, milliseconds: how long this heartbeat keeps the worker alive
-- ARGV[4..] worker ids known to be dead now (the master saw them exit), reaped at once
-- Returns  the number of workers reaped

local workers, inflight, prefix = KEYS[1], KEYS[2], ARGV[1]
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
if ARGV[2] ~= '' then
  redis.call('ZADD', workers, now_ms + tonumber(ARGV[3]), ARGV[2])
end

local dead = redis.call('ZRANGEBYSCORE', workers, '-inf', now_ms, 'LIMIT', 0, 64)
for i = 4, #ARGV do
  dead[#dead + 1] = ARGV[i]
end

local reaped = 0
for _, worker in ipairs(dead) do
  local key = prefix .. worker
  local held = redis.call('HGETALL', key)
  for i = 1, #held, 2 do
    local count = tonumber(held[i + 1])
    if count > 0 then
      local left = redis.call('HINCRBY', inflight, held[i], -count)
      if left < 0 then
        redis.call('HSET', inflight, held[i], 0)
      end
    end
  end
  redis.call('DEL', key)
  if redis.call('ZREM', workers, worker) == 1 or #held > 0 then
    reaped = reaped + 1
  end
end
return reaped
