"""One resolution through the system's resolver (``getaddrinfo``: ``/etc/hosts``, then DNS
as ``/etc/resolv.conf`` says; gevent's cooperative resolver in a worker).

Rules (HAProxy's ``resolve-prefer`` and ``resolve-net``):
1. The answer is the FQDN's addresses, each once, in the resolver's order; addresses of the
   preferred family only when there are any, else those of the other family.
2. Addresses inside a ``resolve-net`` network come first.
3. A failure is classified as HAProxy's ``hold`` statuses name them: ``nx`` (no such name or
   no address), ``timeout`` (try again later), ``other``.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass

from geoproxy.config.model import ResolvePrefer, ServerResolution


@dataclass(frozen=True, slots=True)
class Answer:
    """Addresses in preference order, or the failure's ``hold`` status."""

    addresses: tuple[str, ...] = ()
    failure: str | None = None


_NX = {getattr(socket, name) for name in ("EAI_NONAME", "EAI_NODATA") if hasattr(socket, name)}


def lookup(fqdn: str, resolution: ServerResolution) -> Answer:
    try:
        infos = socket.getaddrinfo(fqdn, None, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        if error.errno in _NX:
            return Answer(failure="nx")
        if error.errno == socket.EAI_AGAIN:
            return Answer(failure="timeout")
        return Answer(failure="other")
    except OSError:
        return Answer(failure="other")
    return Answer(order(
        [(info[0], str(info[4][0])) for info in infos], resolution))


def order(found: list[tuple[socket.AddressFamily, str]], resolution: ServerResolution
          ) -> tuple[str, ...]:
    """Rules 1 and 2 over (family, address) pairs (pure)."""
    preferred = socket.AF_INET if resolution.prefer is ResolvePrefer.IPV4 else socket.AF_INET6
    unique = list(dict.fromkeys(found))
    chosen = [a for family, a in unique if family == preferred] or [a for _, a in unique]
    if resolution.networks:
        networks = [ipaddress.ip_network(n) for n in resolution.networks]

        def inside(address: str) -> bool:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
            return any(ip.version == net.version and ip in net for net in networks)

        chosen = [a for a in chosen if inside(a)] + [a for a in chosen if not inside(a)]
    if not chosen:
        return ()
    return tuple(chosen)
