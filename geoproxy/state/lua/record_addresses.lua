-- record_addresses.lua: write the addresses run-time resolution gave to the servers that share
-- one FQDN, only while the caller still holds that group's resolver lease (one resolver per
-- FQDN fleet-wide, as one checker per server: a slow resolution that outlived its lease
-- changes nothing).
--
-- KEYS[1]  the resolver lease (gp:{B}:dns:S, S the group's first server)
-- KEYS[2..] per server, its hash (gp:{B}:srv:S) then its statistics hash (gp:{B}:stat:S),
--          all of one backend: 'resolved' is written only when it changes (keys.py rule 4),
--          'resolved_at' at every answer
-- ARGV[1]  the caller's id (its worker id)
-- ARGV[2]  now, milliseconds (the caller's clock: when this answer was valid)
-- ARGV[3..] one address per server, '' for none (the server is then in MAINT)
-- Returns  1 when written, 0 when the lease is not the caller's

if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
for i = 1, (#KEYS - 1) / 2 do
  local server, address = KEYS[2 * i], ARGV[i + 2]
  if redis.call('HGET', server, 'resolved') ~= address then
    redis.call('HSET', server, 'resolved', address)
  end
  redis.call('HSET', KEYS[2 * i + 1], 'resolved_at', ARGV[2])
end
return 1
