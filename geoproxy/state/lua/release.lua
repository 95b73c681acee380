-- release.lua: give back the in-flight counts one worker batched for one backend, when no
-- request of that worker came to carry them in its acquire.lua call (see state/flusher.py).
--
-- KEYS[1]  in-flight hash of the backend   KEYS[2]  the caller's in-flight hash
-- ARGV[1]  m, then m pairs: server name, count
-- Returns  the number of requests actually released (a worker that was reaped as dead while it
--          was only slow gives back nothing twice: it can only release what its hash still holds)

local inflight, mine = KEYS[1], KEYS[2]
local released = 0
for i = 1, tonumber(ARGV[1]) do
  local name, count = ARGV[2 * i], tonumber(ARGV[2 * i + 1])
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
return released
