"""The server connections private to one client connection (``server ... send-proxy``).

Rules:
1. A connection that began with a PROXY header carries that client's addresses: HAProxy 2.6
   marks it private, and never gives it to another client's requests. Here each client
   connection (HTTP/1.1 or HTTP/2) owns a ``PrivatePools``: one pool per shared pool it
   derives from (same server, address and TLS), whose new connections send the header.
2. The later requests of the same client connection reuse its idle private connections, as
   HAProxy reuses a private connection for the same session.
3. When the client connection ends, ``close`` closes every idle private connection, and one
   given back later (a stream still finishing) is closed instead of kept.
4. At most ``MAX_IDLE`` idle connections per server are kept for one client connection (one
   is enough for HTTP/1.1; HTTP/2 streams may run side by side).
"""

from __future__ import annotations

from geoproxy.forward.pool import ServerPool

PRIVATE = "geoproxy.private_pools"  # environ key: the client connection's PrivatePools

MAX_IDLE = 4  # rule 4


class PrivatePools:
    """One client connection's private pools, keyed by the shared pool they derive from."""

    __slots__ = ("_pools", "_closed")

    def __init__(self) -> None:
        self._pools: dict[ServerPool, ServerPool] = {}
        self._closed = False

    def pool(self, shared: ServerPool, header: bytes) -> ServerPool:
        """The private pool beside ``shared`` whose connections start with ``header``."""
        pool = self._pools.get(shared)
        if pool is None or pool.header != header:
            if pool is not None:
                pool.close()
            pool = shared.private(header, 0 if self._closed else MAX_IDLE)
            self._pools[shared] = pool
        return pool

    def close(self) -> None:
        """Rule 3."""
        self._closed = True
        for pool in self._pools.values():
            pool.max_idle = 0
            pool.close()
