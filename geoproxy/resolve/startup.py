"""``init-addr``: the addresses servers under run-time resolution start with.

Rules (HAProxy's ``srv_init_addr()``): the methods are tried in order, per group of servers
sharing an FQDN; the first that gives an address wins:
- ``last``: the addresses Redis already holds (the fleet's last resolution survives restarts
  and reloads, as HAProxy's server-state file does);
- ``libc``: the system's resolver, now;
- ``none``: no address (MAINT until the first resolution);
- an IP address: that address.
When none gives one (HAProxy refuses to start then), the servers start in MAINT and a warning
says why: the resolver loop gives them an address as soon as the name resolves.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Callable

from geoproxy.config.model import Config, ServerResolution
from geoproxy.resolve.groups import Group, resolution_groups
from geoproxy.resolve.lookup import Answer, lookup
from geoproxy.resolve.policy import assign
from geoproxy.state.dns_store import DnsStore

log = logging.getLogger("geoproxy.resolve")
Lookup = Callable[[str, ServerResolution], Answer]


def seed_addresses(store: DnsStore, config: Config, resolve: Lookup = lookup,
                   wall: Callable[[], float] = time.time) -> None:
    """Apply ``init-addr`` to every group of every backend (module rules)."""
    for backend in config.backends:
        for group in resolution_groups(config, backend):
            _seed(store, group, resolve, int(wall() * 1000))


def _seed(store: DnsStore, group: Group, resolve: Lookup, now_ms: int) -> None:
    names = [server.name for server in group.servers]
    stored = store.addresses(group.backend, names)
    for method in group.resolution.init_addr:
        if method == "last":
            if any(address for address, _ in stored.values()):
                return
            continue
        if method == "libc":
            answer = resolve(group.fqdn, group.resolution)
            if not answer.addresses:
                continue
            current = [(name, None) for name in names]
            addresses = assign(current, answer.addresses,
                               allow_dup=group.resolution.allow_dup_ip)
        elif method == "none":
            addresses = dict.fromkeys(names, "")
        else:
            addresses = dict.fromkeys(names, str(ipaddress.ip_address(method)))
        store.seed(group.backend, addresses, now_ms)
        return
    log.warning("could not resolve '%s' for backend '%s' (init-addr %s): its servers start in "
                "MAINT until it resolves", group.fqdn, group.backend,
                ",".join(group.resolution.init_addr))
    store.seed(group.backend, dict.fromkeys(names, ""), now_ms)
