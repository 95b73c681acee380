"""Run-time resolution's share of fleet state: resolver leases and resolved addresses. Part of
the state layer (the only one that talks to Redis).

Rules:
1. One resolver per FQDN group, fleet-wide: a process resolves a group (the servers of one
   backend sharing an FQDN, e.g. a server-template) only while it holds the group's lease
   (``gp:{B}:dns:S``, S the group's first server; the same lease script as health checks),
   and its answer is written only while it still holds it (``record_addresses.lua``).
2. The address lives in the server's hash (``resolved``: an IP, or '' for none, which puts
   the server in MAINT); every worker's snapshot refresh reads it (``snapshot.py``), so a new
   address reaches every worker of every host within a refresh.
3. ``seed`` writes the start-up addresses (``init-addr``) without a lease, from the process
   that registers the configuration, before any worker runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import cast

from geoproxy.state.connect import Client
from geoproxy.state.health_store import LEASE_TTL_MS, _reachable
from geoproxy.state.keys import backend_keys
from geoproxy.state.scripts import Scripts

__all__ = ["DnsStore", "LEASE_TTL_MS"]


class DnsStore:
    """Raises ``HealthStoreUnavailable`` when Redis is away (as the checker's side does)."""

    def __init__(self, client: Client, scripts: Scripts) -> None:
        self._client = client
        self._scripts = scripts

    def claim(self, backend: str, groups: Sequence[str], holder: str,
              ttl_ms: int = LEASE_TTL_MS) -> set[str]:
        """Take or renew the resolver lease of ``groups`` (each named by its first server);
        returns those the caller holds."""
        if not groups:
            return set()
        keys = backend_keys(backend)
        leases = [keys.resolver_lease(name) for name in groups]
        with _reachable():
            held = self._scripts.call(self._client, "claim_checks", leases, [holder, ttl_ms])
        return {name for name, mine in zip(groups, held, strict=True) if int(mine)}

    def give_up(self, backend: str, groups: Sequence[str], holder: str) -> None:
        self.claim(backend, groups, holder, ttl_ms=1)

    def record(self, backend: str, group: str, holder: str, addresses: Mapping[str, str],
               now_ms: int) -> bool:
        """Write ``addresses`` (server -> IP, '' for none) under the group's lease (rule 1);
        False when the lease is no longer the caller's."""
        keys = backend_keys(backend)
        names = list(addresses)
        with _reachable():
            done = self._scripts.call(
                self._client, "record_addresses",
                [keys.resolver_lease(group),
                 *(key for name in names for key in (keys.server(name), keys.server_stats(name)))],
                [holder, now_ms, *(addresses[name] for name in names)])
        return bool(int(done))

    def addresses(self, backend: str, servers: Sequence[str]
                  ) -> dict[str, tuple[str | None, int]]:
        """server -> (its resolved address, None when never resolved; when it was valid, ms)."""
        keys = backend_keys(backend)
        pipe = self._client.pipeline(transaction=False)
        for name in servers:
            pipe.hget(keys.server(name), "resolved")
            pipe.hget(keys.server_stats(name), "resolved_at")
        with _reachable():
            replies = cast(list[str | None], pipe.execute())
        return {name: (replies[2 * i], int(replies[2 * i + 1] or 0))
                for i, name in enumerate(servers)}

    def seed(self, backend: str, addresses: Mapping[str, str], now_ms: int) -> None:
        """Rule 3: write start-up addresses (server -> IP, '' for none)."""
        keys = backend_keys(backend)
        pipe = self._client.pipeline(transaction=False)
        for name, address in addresses.items():
            pipe.hset(keys.server(name), "resolved", address)
            pipe.hset(keys.server_stats(name), "resolved_at", now_ms)
        with _reachable():
            pipe.execute()
