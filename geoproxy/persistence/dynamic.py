"""Server ids for ``cookie ... dynamic``: HAProxy's hash of the secret key, address and port.

Rules:
1. A server with its own ``cookie VALUE`` keeps it; ``dynamic`` only fills in the others.
2. The id is XXH64 (seed 0) of the bytes of ``dynamic-cookie-key``, then the server's IPv4
   (4 bytes) or IPv6 (16 bytes) address in network order, then the port as 4 big-endian
   bytes, written as 16 lower-case hex digits. It changes when the address or port changes.
3. A server whose address is not an IP address (a name still to be resolved) gets no dynamic
   id, as in HAProxy, which only derives it for IPv4/IPv6 addresses.
"""

from __future__ import annotations

import ipaddress

from geoproxy.config.model import Backend, Server
from geoproxy.persistence.xxh64 import xxh64


def dynamic_cookie(key: str, host: str, port: int) -> str | None:
    """The dynamic server id for ``host:port`` under ``key``; None when ``host`` is not an
    IP address."""
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
    data = key.encode() + address.packed + port.to_bytes(4, "big")
    return f"{xxh64(data):016x}"


def server_cookie(backend: Backend, server: Server, host: str | None = None) -> str | None:
    """The id ``server`` carries in ``backend``'s persistence cookies: its own ``cookie`` value,
    else the dynamic one when the backend's cookie line says ``dynamic`` and a key is set.
    ``host`` overrides the configured host (the address it resolved to)."""
    if server.cookie is not None:
        return server.cookie
    policy = backend.cookie
    if policy is None or not policy.dynamic or not backend.dynamic_cookie_key:
        return None
    return dynamic_cookie(backend.dynamic_cookie_key, host or server.host, server.port)
