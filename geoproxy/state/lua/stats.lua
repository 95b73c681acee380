-- stats.lua: add the statistics one worker counted for one backend since its last flush (at
-- most twice a second), off the request's critical path. Counts in flight are not here: they
-- travel with acquire.lua.
--
-- Time is the Redis server's clock. Session rates are HAProxy's freq_ctr over one-second
-- periods: per counter, the current second's count (rate_cur), the previous second's
-- (rate_prev), the second rate_cur belongs to (rate_sec), and the largest rate_cur ever
-- (rate_max); geoproxy.state.report reads them back as HAProxy does. A rate summed from
-- flushes made up to half a second apart is a rate over slightly shifted seconds, as HAProxy's
-- per-thread counters are.
--
-- KEYS[1]  the backend's statistics hash (gp:{B}:stats)
-- KEYS[2]  the backend's total hash (server -> requests sent to it)
-- KEYS[3 .. 2+k]  the hashes of the servers with statistics in this flush (gp:{B}:srv:S)
-- ARGV[1]  the backend's sessions, then the highest in-flight sum seen, the longest backend
--          queue seen; then k, then k records: server name, sessions, bytes in, bytes out,
--          retries, redispatches, highest in-flight count seen, longest server queue seen;
--          then f, then f records: frontend name, sessions, bytes in, bytes out
-- Returns  the number of servers updated

local stats, total = KEYS[1], KEYS[2]
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

bump_rate(stats, '', tonumber(ARGV[1]))
raise(stats, 'max_inflight', tonumber(ARGV[2]))
raise(stats, 'max_queued', tonumber(ARGV[3]))

local k = tonumber(ARGV[4])
local at = 5
local updated = 0
for i = 1, k do
  local server = KEYS[2 + i]
  -- a server removed from the configuration meanwhile stays removed
  if redis.call('EXISTS', server) == 1 then
    local sessions = tonumber(ARGV[at + 1])
    if sessions > 0 then
      redis.call('HINCRBY', total, ARGV[at], sessions)
      bump_rate(server, '', sessions)
    end
    redis.call('HINCRBY', server, 'bytes_in', ARGV[at + 2])
    redis.call('HINCRBY', server, 'bytes_out', ARGV[at + 3])
    redis.call('HINCRBY', server, 'retries', ARGV[at + 4])
    redis.call('HINCRBY', server, 'redispatches', ARGV[at + 5])
    raise(server, 'max_inflight', tonumber(ARGV[at + 6]))
    raise(server, 'max_queued', tonumber(ARGV[at + 7]))
    updated = updated + 1
  end
  at = at + 8
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
return updated
