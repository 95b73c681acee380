-- stats.lua: add the statistics one worker counted for one backend since its last flush (at
-- most once a second), off the request's critical path. Counts in flight are not here: they
-- travel with the acquire calls.
--
-- Time is the Redis server's clock. Session rates are HAProxy's freq_ctr over one-second
-- periods: per counter, the current second's count (rate_cur), the previous second's
-- (rate_prev), the second rate_cur belongs to (rate_sec), and the largest rate_cur ever
-- (rate_max); geoproxy.state.report reads them back as HAProxy does. A rate summed from
-- flushes made up to half a second apart is a rate over slightly shifted seconds, as HAProxy's
-- per-thread counters are.
--
-- Each hash is read once and written once (the script runs alone: reading, adding and writing
-- back is as safe as HINCRBY, and costs Redis two commands instead of a dozen).
--
-- KEYS[1]  the backend's statistics hash (gp:{B}:stats)
-- KEYS[2]  the backend's total hash (server -> requests sent to it)
-- KEYS[3]  the backend's server names (gp:{B}:servers)
-- KEYS[4 .. 3+k]  the statistics hashes of the servers in this flush (gp:{B}:stat:S)
-- ARGV[1]  the backend's sessions, then the highest in-flight sum seen, the longest backend
--          queue seen; then k, then k records: server name, sessions, bytes in, bytes out,
--          retries, redispatches, highest in-flight count seen, longest server queue seen;
--          then f, then f records: frontend name, sessions, bytes in, bytes out
-- Returns  the number of servers updated

local call, format, tonumber = redis.call, string.format, tonumber
local stats, total, names = KEYS[1], KEYS[2], KEYS[3]
local now_sec = tonumber(call('TIME')[1])

-- The fields of a rate counter (prefix .. rate_sec, rate_cur, rate_prev, rate_max) after `n`
-- more sessions, given their values read (strings or false), appended to `out` as pairs.
local function rate(out, prefix, n, sec, cur, prev, max)
  if n <= 0 then
    return
  end
  sec, cur, prev, max = tonumber(sec or '0'), tonumber(cur or '0'), prev, tonumber(max or '0')
  if sec == now_sec then
    cur = cur + n
  else
    out[#out + 1] = prefix .. 'rate_sec'
    out[#out + 1] = format('%d', now_sec)
    out[#out + 1] = prefix .. 'rate_prev'
    out[#out + 1] = sec == now_sec - 1 and format('%d', cur) or '0'
    cur = n
  end
  out[#out + 1] = prefix .. 'rate_cur'
  out[#out + 1] = format('%d', cur)
  if cur > max then
    out[#out + 1] = prefix .. 'rate_max'
    out[#out + 1] = format('%d', cur)
  end
end

-- `field` raised to `value` when above what was read (`read`: a string or false).
local function raise(out, field, value, read)
  if value > tonumber(read or '0') then
    out[#out + 1] = field
    out[#out + 1] = format('%d', value)
  end
end

-- `field` plus `by` (`read`: a string or false), when `by` is not 0.
local function add(out, field, by, read)
  if by ~= 0 then
    out[#out + 1] = field
    out[#out + 1] = format('%d', tonumber(read or '0') + by)
  end
end

local k = tonumber(ARGV[4])
local f_at = 5 + 8 * k
local f = tonumber(ARGV[f_at])

-- the backend's hash: its own rate and maxima, and each frontend's counters
local fields = { 'rate_sec', 'rate_cur', 'rate_prev', 'rate_max', 'max_inflight', 'max_queued' }
for i = 0, f - 1 do
  local prefix = 'fe:' .. ARGV[f_at + 1 + 4 * i] .. ':'
  for _, name in ipairs({ 'sessions', 'bytes_in', 'bytes_out', 'rate_sec', 'rate_cur',
    'rate_prev', 'rate_max' }) do
    fields[#fields + 1] = prefix .. name
  end
end
local read = call('HMGET', stats, unpack(fields))
local out = {}
rate(out, '', tonumber(ARGV[1]), read[1], read[2], read[3], read[4])
raise(out, 'max_inflight', tonumber(ARGV[2]), read[5])
raise(out, 'max_queued', tonumber(ARGV[3]), read[6])
for i = 0, f - 1 do
  local at, base = f_at + 1 + 4 * i, 7 + 7 * i
  local prefix = 'fe:' .. ARGV[at] .. ':'
  local sessions = tonumber(ARGV[at + 1])
  add(out, prefix .. 'sessions', sessions, read[base])
  add(out, prefix .. 'bytes_in', tonumber(ARGV[at + 2]), read[base + 1])
  add(out, prefix .. 'bytes_out', tonumber(ARGV[at + 3]), read[base + 2])
  rate(out, prefix, sessions, read[base + 3], read[base + 4], read[base + 5], read[base + 6])
end
if #out > 0 then
  call('HSET', stats, unpack(out))
end

-- each server's statistics hash, and its total
local updated = 0
for i = 1, k do
  local server, at = KEYS[3 + i], 5 + 8 * (i - 1)
  -- a server removed from the configuration meanwhile stays removed
  if call('ZSCORE', names, ARGV[at]) then
    read = call('HMGET', server, 'bytes_in', 'bytes_out', 'retries', 'redispatches',
      'max_inflight', 'max_queued', 'rate_sec', 'rate_cur', 'rate_prev', 'rate_max')
    local sessions = tonumber(ARGV[at + 1])
    if sessions > 0 then
      call('HINCRBY', total, ARGV[at], sessions)
    end
    out = {}
    add(out, 'bytes_in', tonumber(ARGV[at + 2]), read[1])
    add(out, 'bytes_out', tonumber(ARGV[at + 3]), read[2])
    add(out, 'retries', tonumber(ARGV[at + 4]), read[3])
    add(out, 'redispatches', tonumber(ARGV[at + 5]), read[4])
    raise(out, 'max_inflight', tonumber(ARGV[at + 6]), read[5])
    raise(out, 'max_queued', tonumber(ARGV[at + 7]), read[6])
    rate(out, '', sessions, read[7], read[8], read[9], read[10])
    if #out > 0 then
      call('HSET', server, unpack(out))
    end
    updated = updated + 1
  end
end
return updated
