"""Run-time resolution of server FQDNs (``resolvers`` sections): HAProxy's DNS, fleet-wide.

``groups`` gathers the servers that share an FQDN, ``lookup`` asks the system's resolver,
``policy`` (pure) gives each server of a group its address, ``startup`` applies ``init-addr``,
and ``resolver`` is the background loop that keeps the addresses current under a lease.
"""
