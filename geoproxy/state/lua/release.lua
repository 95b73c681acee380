-- release.lua: give back in-flight counts a worker batched, and add the statistics it counted
-- since its last flush, off the request's critical path (one call per backend per flush).
--
-- Time is the Redis server's clock. Session rates are HAProxy's freq_ctr over one-second
-- periods: per counter, the current second's count (rate_cur), the previous second's
-- (rate_prev), the second rate_cur belongs to (rate_sec), and the largest rate_cur ever
-- (rate_max); geoproxy.state.report reads them back as HAProxy does.
--
-- KEYS[1]  in-flight hash of the backend
-- KEYS[2]  this worker's in-flight hash
-- KEYS[3]  the backend's statistics hash (gp:{B}:stats)
-- KEYS[4 .. 3+k]  the hashes of the servers with statistics in this batch (gp:{B}:srv:S)
-- ARGV[1]  m, then m pairs: server name, count -- the releases
-- then     (optional) the backend's sessions, highest in-flight sum seen, longest backend queue
--          seen; k, then k records: sessions, bytes in, bytes out, retries, redispatches,
--          highest in-flight count seen, longest server queue seen; f, then f records:
--          frontend name, sessions, bytes in, bytes out
-- Returns  the number of requests actually released (a worker that was reaped as dead while it
--          was only slow gives back nothing twice: it can only release what its hash still holds)

local inflight, mine, stats = KEYS[1], KEYS[2], KEYS[3]
local released = 0
local m = tonumber(ARGV[1])
for i = 0, m - 1 do
  local name = ARGV[2 + 2 * i]
  local count = tonumber(ARGV[3 + 2 * i])
  local held = tonumber(redis.call('HGET', mine, name) or '0')
  local given = math.min(held, count)
  if given > 0 then
    redis.call('HINCRBY', inflight, name, -given)
    if held == given then
      redis.call('HDEL', mine, name)
    else
      redis.call('HINCRBY', mine, name, -given)
    end
    released = released + given
  end
end

local at = 2 + 2 * m
if not ARGV[at] then
  return released
end

local now_sec = tonumber(redis.call('TIME')[1])

local function raise(key, field, value)
  if value > tonumber(redis.call('HGET', key, field) or '0') then
    redis.call('HSET', key, field, value)
  end
end

local function bump_rate(key, prefix, n)
  if n <= 0 then return end
  local sec = tonumber(redis.call('HGET', key, prefix .. 'rate_sec') or '0')
  local current = n
  if sec == now_sec then
    current = redis.call('HINCRBY', key, prefix .. 'rate_cur', n)
  else
    local previous = 0
    if sec == now_sec - 1 then
      previous = tonumber(redis.call('HGET', key, prefix .. 'rate_cur') or '0')
    end
    redis.call('HSET', key, prefix .. 'rate_sec', now_sec, prefix .. 'rate_prev', previous,
      prefix .. 'rate_cur', n)
  end
  raise(key, prefix .. 'rate_max', current)
end

bump_rate(stats, '', tonumber(ARGV[at]))
raise(stats, 'max_inflight', tonumber(ARGV[at + 1]))
raise(stats, 'max_queued', tonumber(ARGV[at + 2]))

local k = tonumber(ARGV[at + 3])
at = at + 4
for i = 1, k do
  local server = KEYS[3 + i]
  -- a server removed from the configuration meanwhile stays removed
  if redis.call('EXISTS', server) == 1 then
    bump_rate(server, '', tonumber(ARGV[at]))
    redis.call('HINCRBY', server, 'bytes_in', ARGV[at + 1])
    redis.call('HINCRBY', server, 'bytes_out', ARGV[at + 2])
    redis.call('HINCRBY', server, 'retries', ARGV[at + 3])
    redis.call('HINCRBY', server, 'redispatches', ARGV[at + 4])
    raise(server, 'max_inflight', tonumber(ARGV[at + 5]))
    raise(server, 'max_queued', tonumber(ARGV[at + 6]))
  end
  at = at + 7
end

local f = tonumber(ARGV[at])
at = at + 1
for i = 1, f do
  local prefix = 'fe:' .. ARGV[at] .. ':'
  local sessions = tonumber(ARGV[at + 1])
  redis.call('HINCRBY', stats, prefix .. 'sessions', sessions)
  redis.call('HINCRBY', stats, prefix .. 'bytes_in', ARGV[at + 2])
  redis.call('HINCRBY', stats, prefix .. 'bytes_out', ARGV[at + 3])
  bump_rate(stats, prefix, sessions)
  at = at + 4
end
return released
