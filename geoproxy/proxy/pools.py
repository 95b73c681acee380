"""Which connection pool a request to a server uses, in one worker.

Rules:
1. A server with a fixed address has one pool, built at start-up.
2. A server without a port (``server s1 10.0.0.1``) is reached on the port the client
   connected to, one with the address ``*`` (or ``0.0.0.0``) at the address the client
   connected to (HAProxy's meanings): one pool per such destination, made on first use.
3. A server whose address run-time resolution manages (``resolvers``) is reached at the
   address its snapshot holds; when that address changes, the next request gets a pool to the
   new address, and the old pool's idle connections are closed.
4. A server with ``ssl`` has TLS pools: its client context is built once per server. One
   whose ``sni`` is an expression (``sni req.hdr(host)``) has a pool per name sent, as
   HAProxy keys its idle server connections by SNI: the name is evaluated per request, and
   at most ``MAX_NAMED`` such pools live in a worker (the least recently used one is closed).
5. A server with ``send-proxy``/``send-proxy-v2`` gets, per client connection, a private pool
   beside the shared one (``geoproxy.forward.private``): its connections start with the PROXY
   header of the client's addresses (source, and the address and port it connected to), and
   carry that client connection's requests only. A request without its connection's
   ``PrivatePools`` (none is expected) gets a pool that keeps no connection.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from geoproxy.balance.view import BackendView
from geoproxy.config.model import Backend, Server
from geoproxy.config.model_tcp import ProxyProtocol
from geoproxy.forward.pool import ServerPool
from geoproxy.forward.private import PRIVATE
from geoproxy.proxy.unique_id import LOCAL_ADDRESS
from geoproxy.rules.expr import compile_text
from geoproxy.rules.fetch_types import CompileEnv
from geoproxy.rules.txn import Txn, txn_of
from geoproxy.runtime.tls_client import ClientTls
from geoproxy.tcp.proxyproto import Addresses, encode_v1, encode_v2

Environ = dict[str, Any]


MAX_NAMED = 256  # pools of servers whose SNI is an expression, per backend (rule 4)


class ServerPools:
    """Every pool of one backend's servers (module rules)."""

    __slots__ = ("_fixed", "_servers", "_dynamic", "_tls", "_sni", "_named")

    def __init__(self, backend: Backend, env: CompileEnv | None = None) -> None:
        self._servers: dict[str, Server] = {s.name: s for s in backend.servers}
        self._tls: dict[str, ClientTls] = {s.name: ClientTls(s.tls) for s in backend.servers
                                           if s.ssl}
        # rule 4: the servers whose SNI is an expression, and its closure
        self._sni: dict[str, Callable[[Txn], str | None]] = {
            s.name: compile_text(s.tls.sni_expr, env or CompileEnv())
            for s in backend.servers if s.ssl and s.tls.sni_expr is not None}
        self._named: OrderedDict[tuple[str, str, int, str | None], ServerPool] = OrderedDict()
        self._fixed: dict[str, ServerPool] = {
            s.name: ServerPool(s.host, s.port, tls=self._tls.get(s.name))
            for s in backend.servers
            if not s.maps_port and not s.maps_address and not _resolved(s)
            and s.name not in self._sni
        }
        # (server, host, port) -> pool, for rules 2 and 3
        self._dynamic: dict[str, tuple[str, int, ServerPool]] = {}

    def __getitem__(self, name: str) -> ServerPool:
        """The pool of a fixed-address server (rule 1)."""
        return self._fixed[name]

    def pool(self, name: str, environ: Environ, view: BackendView) -> ServerPool:
        """The pool for a request of ``environ`` to server ``name`` (rules 1-5); ``view`` is
        the backend's snapshot (read only for servers under run-time resolution)."""
        shared = self._shared(name, environ, view)
        version = self._servers[name].send_proxy
        if version is None:
            return shared
        header = proxy_header(version, environ)
        private = environ.get(PRIVATE)
        if private is None:
            return shared.private(header, 0)
        pool: ServerPool = private.pool(shared, header)
        return pool

    def _shared(self, name: str, environ: Environ, view: BackendView) -> ServerPool:
        """Rules 1-4."""
        fixed = self._fixed.get(name)
        if fixed is not None:
            return fixed
        server = self._servers[name]
        seen = view.server(name) if _resolved(server) else None
        host = (seen.address if seen is not None else None) or server.host
        if server.maps_address:
            host = environ.get(LOCAL_ADDRESS) or environ.get("SERVER_NAME") or host
        port = server.port or int(environ.get("SERVER_PORT") or 0)
        sni = self._sni.get(name)
        if sni is not None:
            return self._named_pool(name, host, port, sni(txn_of(environ)))
        key = f"{name}:{host}:{port}" if server.maps_port or server.maps_address else name
        known = self._dynamic.get(key)
        if known is not None and known[0] == host and known[1] == port:
            return known[2]
        if known is not None:
            known[2].close()
        pool = ServerPool(host, port, tls=self._tls.get(name))
        self._dynamic[key] = (host, port, pool)
        return pool

    def _named_pool(self, name: str, host: str, port: int, sni: str | None) -> ServerPool:
        """Rule 4: the pool of server ``name`` at ``host:port`` sending SNI ``sni``."""
        key = (name, host, port, sni or None)
        pool = self._named.get(key)
        if pool is not None:
            self._named.move_to_end(key)
            return pool
        pool = ServerPool(host, port, tls=self._tls[name].named(sni or None))
        self._named[key] = pool
        if len(self._named) > MAX_NAMED:
            _, oldest = self._named.popitem(last=False)
            oldest.close()
        return pool

    def values(self) -> list[ServerPool]:
        """Every pool made so far."""
        return [*self._fixed.values(), *(pool for _, _, pool in self._dynamic.values()),
                *self._named.values()]

    def close(self) -> None:
        for pool in self._fixed.values():
            pool.close()
        for _, _, pool in self._dynamic.values():
            pool.close()
        for pool in self._named.values():
            pool.close()


def proxy_header(version: ProxyProtocol, environ: Environ) -> bytes:
    """The PROXY header of the client connection of ``environ`` (rule 5)."""
    source = (str(environ.get("REMOTE_ADDR") or ""), _port(environ.get("REMOTE_PORT")))
    destination = (str(environ.get(LOCAL_ADDRESS) or environ.get("SERVER_NAME") or ""),
                   _port(environ.get("SERVER_PORT")))
    addresses = Addresses(source, destination)
    return encode_v1(addresses) if version is ProxyProtocol.V1 else encode_v2(addresses)


def _port(value: object) -> int:
    try:
        return int(str(value or 0))
    except ValueError:
        return 0


def _resolved(server: Server) -> bool:
    return server.resolution is not None and server.resolution.resolvers is not None
