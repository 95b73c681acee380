"""Which connection pool a request to a server uses, in one worker.

Rules:
1. A server with a fixed address has one pool, built at start-up.
2. A server without a port (``server s1 10.0.0.1``) is reached on the port the client
   connected to, one with the address ``*`` (or ``0.0.0.0``) at the address the client
   connected to (HAProxy's meanings): one pool per such destination, made on first use.
3. A server whose address run-time resolution manages (``resolvers``) is reached at the
   address its snapshot holds; when that address changes, the next request gets a pool to the
   new address, and the old pool's idle connections are closed.
4. A server with ``ssl`` has TLS pools: its client context is built once per pool.
"""

from __future__ import annotations

from typing import Any

from geoproxy.balance.view import BackendView
from geoproxy.config.model import Backend, Server
from geoproxy.forward.pool import ServerPool
from geoproxy.proxy.unique_id import LOCAL_ADDRESS
from geoproxy.runtime.tls_client import ClientTls

Environ = dict[str, Any]


class ServerPools:
    """Every pool of one backend's servers (module rules)."""

    __slots__ = ("_fixed", "_servers", "_dynamic")

    def __init__(self, backend: Backend) -> None:
        self._servers: dict[str, Server] = {s.name: s for s in backend.servers}
        self._fixed: dict[str, ServerPool] = {
            s.name: ServerPool(s.host, s.port, tls=_tls(s))
            for s in backend.servers
            if not s.maps_port and not s.maps_address and not _resolved(s)
        }
        # (server, host, port) -> pool, for rules 2 and 3
        self._dynamic: dict[str, tuple[str, int, ServerPool]] = {}

    def __getitem__(self, name: str) -> ServerPool:
        """The pool of a fixed-address server (rule 1)."""
        return self._fixed[name]

    def pool(self, name: str, environ: Environ, view: BackendView) -> ServerPool:
        """The pool for a request of ``environ`` to server ``name`` (rules 1-3); ``view`` is
        the backend's snapshot (read only for servers under run-time resolution)."""
        fixed = self._fixed.get(name)
        if fixed is not None:
            return fixed
        server = self._servers[name]
        seen = view.server(name) if _resolved(server) else None
        host = (seen.address if seen is not None else None) or server.host
        if server.maps_address:
            host = environ.get(LOCAL_ADDRESS) or environ.get("SERVER_NAME") or host
        port = server.port or int(environ.get("SERVER_PORT") or 0)
        key = f"{name}:{host}:{port}" if server.maps_port or server.maps_address else name
        known = self._dynamic.get(key)
        if known is not None and known[0] == host and known[1] == port:
            return known[2]
        if known is not None:
            known[2].close()
        pool = ServerPool(host, port, tls=_tls(server))
        self._dynamic[key] = (host, port, pool)
        return pool

    def values(self) -> list[ServerPool]:
        """Every pool made so far."""
        return [*self._fixed.values(), *(pool for _, _, pool in self._dynamic.values())]

    def close(self) -> None:
        for pool in self._fixed.values():
            pool.close()
        for _, _, pool in self._dynamic.values():
            pool.close()


def _resolved(server: Server) -> bool:
    return server.resolution is not None and server.resolution.resolvers is not None


def _tls(server: Server) -> ClientTls | None:
    """``server ... ssl``: the server's handshakes, one context per server and process."""
    return ClientTls(server.tls) if server.ssl else None
