-- claim_checks.lua: take or keep the checker lease of some servers, so that one process of the
-- whole fleet checks each server (DESIGN.md invariant 3).
--
-- A lease is a key holding the checker's id, with a TTL; the holder renews it well before it
-- expires, and when the holder dies another process takes it over once it has expired. Giving a
-- lease up is claiming it with a 1 ms TTL: only a lease still ours is touched.
--
-- KEYS     the lease keys (gp:{B}:chk:S), all of one backend
-- ARGV[1]  the claiming checker's id (its worker id)
-- ARGV[2]  lease TTL, milliseconds
-- Returns  one 1/0 per key: 1 when the caller holds that lease now

local held = {}
for i, key in ipairs(KEYS) do
  local holder = redis.call('GET', key)
  if holder == false or holder == ARGV[1] then
    redis.call('SET', key, ARGV[1], 'PX', tonumber(ARGV[2]))
    held[i] = 1
  else
    held[i] = 0
  end
end
return held
