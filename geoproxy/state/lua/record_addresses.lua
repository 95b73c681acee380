-- record_addresses.lua: write the addresses run-time resolution gave to the servers that share
-- one FQDN, only while the caller still holds that group's resolver lease (one resolver per
-- FQDN fleet-wide, as one checker per server: a slow resolution that outlived its lease
-- changes nothing).
--
-- KEYS[1]  the resolver lease (gp:{B}:dns:S, S the group's first server)
-- KEYS[2..] the server hashes (gp:{B}:srv:S), all of one backend
-- ARGV[1]  the caller's id (its worker id)
-- ARGV[2]  now, milliseconds (the caller's clock: when this answer was valid)
-- ARGV[3..] one address per server hash, '' for none (the server is then in MAINT)
-- Returns  1 when written, 0 when the lease is not the caller's

if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
for i = 2, #KEYS do
  redis.call('HSET', KEYS[i], 'resolved', ARGV[i + 1], 'resolved_at', ARGV[2])
end
return 1
