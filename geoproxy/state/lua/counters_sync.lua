-- counters_sync.lua: one worker's sync of one stick table's counters (``track-sc*``), off the
-- request path, every SYNC_PERIOD (geoproxy/state/counters.py): add what the worker counted
-- since its last sync to the fleet's entries, and answer the fleet's values, which the worker
-- then serves its fetches from (geoproxy/counters/table.py).
--
-- Time is the Redis server's clock, in milliseconds. An entry is a hash gp:{T}:sc:K whose
-- fields are counters ('http_req_cnt', 'gpc0': integers), tags ('gpt0'), rates
-- ('http_req_rate': HAProxy's freq_ctr as 'curr/prev@tick', the period being the table's;
-- geoproxy.counters.freq is the Python twin of rotate() below), 't' (its last write) and one
-- gauge share per worker tracking it ('use:<worker>' = 'count@written', summed while fresher
-- than the staleness limit: a dead worker's share ages out). The table's index gp:{T}:sc-keys
-- scores every entry by its last write: entries idle for the table's expire are dropped, and
-- past 'size' entries the least recently written are evicted (HAProxy purges its oldest),
-- unless 'nopurge', where a full table refuses new entries as HAProxy's does.
--
-- Cost: per entry one HGETALL, one HSET and one PEXPIRE; per call one TIME, one ZCARD, one
-- ZADD and one ZRANGEBYSCORE. A worker syncs all the entries it changed in one call per table.
--
-- KEYS[1]      the table's index (ZSET: member entry key K, score last write, ms)
-- KEYS[2 ..]   the entries of this sync (HASH gp:{T}:sc:K), in ARGV's order
-- ARGV[1]  the worker's id   ARGV[2]  the table's expire, ms ('0': none)
-- ARGV[3]  the table's size  ARGV[4]  '1' for nopurge   ARGV[5]  gauge staleness limit, ms
-- ARGV[6]  the prefix of entry keys (K follows)   ARGV[7]  the prefix of the table's
--          persistence keys (gp:{T}:stick:, K follows)
-- ARGV[8]  the table's rates and their periods: 'name=ms,name=ms' ('' for none)
-- then, per entry: its mode ('w': write, creating it; 'r': read, never creating), its key K,
--          n, and n pairs: op, integer; op '+F' adds to counter or rate F, '=F' sets F, 'u'
--          sets this worker's gauge share
-- Returns  { now, entries in the table, per entry { status, gauge sum, last write,
--          persistence server or '', field, value, field, value ... } }: status 1 found (or
--          written), 0 not in the table (a read), -1 refused (nopurge, full)
-- Invariant: the index holds exactly the entries written within the last expire (or all,
-- without expire), at most 'size' of them once this call returns.

local call, format, tonumber = redis.call, string.format, tonumber
local clock = call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local index = KEYS[1]
local worker_field = 'use:' .. ARGV[1]
local expire, size = tonumber(ARGV[2]), tonumber(ARGV[3])
local nopurge, stale = ARGV[4] == '1', tonumber(ARGV[5])
local entry_prefix, stick_prefix = ARGV[6], ARGV[7]
local periods = {}
for name, period in string.gmatch(ARGV[8], '([%w_]+)=(%d+)') do
  periods[name] = tonumber(period)
end

-- HAProxy's update_freq_ctr_period on a 'curr/prev@tick' text (false: a new counter)
local function rotate(text, period, inc)
  local curr, prev, tick = 0, 0, 0
  if text then
    local c, p, k = string.match(text, '^(%d+)/(%d+)@(%d+)$')
    if c then
      curr, prev, tick = tonumber(c), tonumber(p), tonumber(k)
    end
  end
  if now - tick < period then
    curr = curr + inc
  else
    prev, curr = curr, inc
    tick = tick + period
    if now - tick >= period then
      prev = 0
      tick = now - now % 2
    end
  end
  return format('%d/%d@%d', curr, prev, tick)
end

-- entries idle for the table's expire leave the index (their hashes expire by themselves)
if expire > 0 then
  local idle = call('ZRANGEBYSCORE', index, '-inf', now - expire, 'LIMIT', 0, 128)
  if #idle > 0 then
    local doomed = {}
    for i = 1, #idle do
      doomed[i] = entry_prefix .. idle[i]
    end
    call('DEL', unpack(doomed))
    call('ZREM', index, unpack(idle))
  end
end
local used = tonumber(call('ZCARD', index))

-- the reply of one entry from its fields: the gauge summed, shares of dead workers listed
local function answer(key, fields, status, stale_out)
  local sum, out = 0, { status, 0, tonumber(fields.t or '0'), '' }
  for name, value in pairs(fields) do
    if string.sub(name, 1, 4) == 'use:' then
      local count, written = string.match(value, '^(%d+)@(%d+)$')
      if count and now - tonumber(written) <= stale then
        sum = sum + tonumber(count)
      elseif stale_out then
        stale_out[#stale_out + 1] = name
      end
    elseif name ~= 't' then
      out[#out + 1] = name
      out[#out + 1] = value
    end
  end
  out[2] = sum
  return out
end

local replies, touched, a = {}, {}, 9
for i = 2, #KEYS do
  local key, mode, member, n = KEYS[i], ARGV[a], ARGV[a + 1], tonumber(ARGV[a + 2])
  a = a + 3
  local raw = call('HGETALL', key)
  local fields = {}
  for j = 1, #raw, 2 do
    fields[raw[j]] = raw[j + 1]
  end
  local exists = #raw > 0
  if mode == 'r' then
    if exists then
      replies[#replies + 1] = answer(key, fields, 1, nil)
    else
      local server = call('GET', stick_prefix .. member)
      replies[#replies + 1] = { 0, 0, 0, server or '' }
    end
    a = a + 2 * n
  elseif not exists and nopurge and used >= size then
    replies[#replies + 1] = { -1, 0, 0, '' }
    a = a + 2 * n
  else
    if not exists then
      used = used + 1
    end
    local changed, removed = {}, {}
    for j = 1, n do
      local op, value = ARGV[a], tonumber(ARGV[a + 1])
      a = a + 2
      local kind, name = string.sub(op, 1, 1), string.sub(op, 2)
      if kind == '+' then
        local period = periods[name]
        if period then
          fields[name] = rotate(fields[name], period, value)
        else
          fields[name] = format('%d', (tonumber(fields[name]) or 0) + value)
        end
        changed[#changed + 1] = name
      elseif kind == '=' then
        fields[name] = format('%d', value)
        changed[#changed + 1] = name
      elseif value > 0 then -- 'u': this worker's gauge share
        fields[worker_field] = format('%d@%d', value, now)
        changed[#changed + 1] = worker_field
      elseif fields[worker_field] then
        fields[worker_field] = nil
        removed[#removed + 1] = worker_field
      end
    end
    fields.t = format('%d', now)
    local out = answer(key, fields, 1, removed)
    local pairs_out = { 't', fields.t }
    for j = 1, #changed do
      local name = changed[j]
      if fields[name] then
        pairs_out[#pairs_out + 1] = name
        pairs_out[#pairs_out + 1] = fields[name]
      end
    end
    call('HSET', key, unpack(pairs_out))
    if #removed > 0 then
      call('HDEL', key, unpack(removed))
    end
    if expire > 0 then
      call('PEXPIRE', key, expire)
    end
    touched[#touched + 1] = now
    touched[#touched + 1] = member
    replies[#replies + 1] = out
  end
end

if #touched > 0 then
  call('ZADD', index, unpack(touched))
end
if used > size and not nopurge then
  local victims = call('ZPOPMIN', index, used - size)
  local doomed = {}
  for i = 1, #victims, 2 do
    doomed[#doomed + 1] = entry_prefix .. victims[i]
  end
  if #doomed > 0 then
    call('DEL', unpack(doomed))
  end
end
used = tonumber(call('ZCARD', index))
if expire > 0 then
  call('PEXPIRE', index, expire)
end
return { now, used, replies }
