"""One connection of a ``mode tcp`` frontend, from accept to close (the sibling of the HTTP
loop; HAProxy's TCP stream).

Steps, in order:
1. ``accept-proxy``: the PROXY header gives the client's addresses.
2. ``tcp-request connection`` rules, on the addresses alone.
3. ``tcp-request content`` rules: while a rule cannot decide, read more, until ``inspect-delay``
   (or ``timeout client``) passes, the client closes or the buffer is full.
4. ``use_backend`` (or ``default_backend``) on what was read; then the backend's own content
   rules, the same way.
5. A lease from fleet state (stick rules, the balancing policy, the fleet-wide ``maxconn``
   queue), exactly as an HTTP request takes one: the connection counts in flight on its
   server for its whole life, so ``leastconn`` balances connections fleet-wide and a SIGKILLed
   worker's connections are given back by the reaper.
6. Connect within ``timeout connect``, retrying and redispatching as HAProxy does; then the
   PROXY header (``send-proxy``), the bytes already read, and the tunnel both ways until both
   sides are done, a timeout or ``shutdown-sessions`` (``geoproxy.runtime.tunnel``).
7. At the end: the lease released, the traffic counted, the tcplog line written. Nothing
   raises out of ``run``.
"""

from __future__ import annotations

import contextlib
import socket
import time
from typing import Final

from geoproxy.balance.policy import PickMode, Ranking, RequestKeys
from geoproxy.balance.rank import eligible
from geoproxy.config.model_tcp import ProxyProtocol
from geoproxy.proxy.httplog import Counters
from geoproxy.proxy.queueing import QueueOutcome, wait_in_queue
from geoproxy.proxy.retry import redispatches
from geoproxy.runtime.tcp_service import (
    DEFAULT_HEADER_TIMEOUT,
    Listener,
    TcpBackend,
    TcpService,
    data_timeouts,
    read_proxy_header,
    silent_drop,
)
from geoproxy.runtime.tls import handshake
from geoproxy.runtime.tunnel import BULK_BUFFER_SIZE, Tunnel
from geoproxy.state.store import Lease
from geoproxy.tcp.counters import count_session
from geoproxy.tcp.counters import end as end_tracking
from geoproxy.tcp.facts import BUFFER_SIZE, TcpFacts
from geoproxy.tcp.proxyproto import Addresses, encode_v1, encode_v2
from geoproxy.tcp.rules import CompiledRule, Verdict, evaluate
from geoproxy.tcp.tcplog import TcpLog, format_tcp_line

# connections of this process being served now: in all, per frontend, backend and server
# (tcplog's %ac/%fc/%bc/%sc, per process as HAProxy counts them)
_open: dict[str, int] = {}
_NO_HEADER: Final = b""


class _Rejected(Exception):
    """The session ends before reaching a server; ``termination`` is the log's state."""

    def __init__(self, termination: str, *, logged: bool = True) -> None:
        super().__init__(termination)
        self.termination = termination
        self.logged = logged


def _ms(seconds: float) -> int:
    return int(seconds * 1000)


class TcpSession:
    """See the module doc."""

    __slots__ = ("service", "listener", "frontend", "client", "facts", "backend", "lease",
                 "accepted", "started", "queued_ms", "connect_ms", "retries", "redispatched",
                 "bytes_out", "bytes_in", "counted", "server")

    def __init__(self, service: TcpService, listener: Listener, client: socket.socket,
                 source: tuple[str, int], destination: tuple[str, int]) -> None:
        self.service = service
        self.listener = listener
        self.frontend = listener.frontend
        self.client = client
        self.facts = TcpFacts(source, destination)
        self.backend: TcpBackend | None = None
        self.lease: Lease | None = None
        self.accepted = time.time()
        self.started = time.monotonic()
        self.queued_ms = self.connect_ms = -1
        self.retries = 0
        self.redispatched = False
        self.bytes_out = self.bytes_in = 0
        self.counted: list[str] = []
        self.server: str | None = None  # the last server tried, for the log

    # -- the whole session --------------------------------------------------------------------

    def run(self) -> None:
        termination = "--"
        logged = True
        self._count("", "f:" + self.frontend.config.name)
        try:
            termination = self._serve()
        except _Rejected as rejected:
            termination, logged = rejected.termination, rejected.logged
        except OSError:
            termination = "CR"
        finally:
            lease = self.lease
            if lease is not None:
                self.service.fleet.count_traffic(
                    lease, self.frontend.config.name, self.bytes_in, self.bytes_out)
                self.service.fleet.release(lease)
            # the server side is closed before the line is written: HAProxy's %bc and %sc
            # no longer count this session (%ac and %fc still do)
            for key in [k for k in self.counted if k[:2] in ("b:", "s:")]:
                self._uncount(key)
            if logged:
                self._log(termination)
            end_tracking(self.facts, self.bytes_in, self.bytes_out)
            for key in self.counted:
                _open[key] = _open.get(key, 1) - 1

    def _serve(self) -> str:
        listener, frontend = self.listener, self.frontend
        if listener.accept_proxy:
            timeout = frontend.config.timeouts.client or DEFAULT_HEADER_TIMEOUT
            header = read_proxy_header(self.client, timeout, exact=listener.tls is not None)
            if header is None:
                raise _Rejected("CR", logged=False)
            found, rest = header
            if found is not None:
                self.facts.source, self.facts.destination = found
            if rest:
                self.facts.received(rest)
        if frontend.connection_rules:
            self._apply(frontend.connection_rules, None, connection=True)
            self.facts.final = False  # the content rules may still wait for bytes
        count_session(self.facts)  # what connection rules tracked counts the session
        if listener.tls is not None:
            try:
                self.client, self.facts.tls = handshake(self.client, listener.tls,
                                                        frontend.config.timeouts.client)
            except (OSError, ValueError):
                raise _Rejected("CR", logged=False) from None  # a failed handshake
        if frontend.content_rules:
            self._apply(frontend.content_rules, frontend.inspect_delay)
        self.facts.final = True
        name = frontend.backend_for(self.facts)
        backend = self.service.backends.get(name) if name else None
        if backend is None:
            raise _Rejected("SC")  # no backend: nothing to connect to (HAProxy: <NOSRV>)
        self.backend = backend
        self._count("b:" + backend.config.name)
        if backend.content_rules:
            self.facts.final = False
            self._apply(backend.content_rules, backend.inspect_delay)
            self.facts.final = True
        server = self._connect(backend)
        return self._tunnel(backend, server)

    # -- rules ----------------------------------------------------------------------------------

    def _apply(self, rules: tuple[CompiledRule, ...], delay: float | None, *,
               connection: bool = False) -> None:
        """Steps 2 to 4: evaluate ``rules``, reading more while they wait."""
        facts = self.facts
        done: set[int] = set()  # stick-counter rules act once however often rules run
        limit = delay or 0.0
        client_timeout = self.frontend.config.timeouts.client
        if client_timeout is not None:
            limit = min(limit, client_timeout)
        deadline = time.monotonic() + limit
        while True:
            verdict = evaluate(rules, facts, done)
            if verdict is Verdict.ACCEPT:
                return
            if verdict is Verdict.REJECT:
                raise _Rejected("PR", logged=not connection)
            if verdict is Verdict.SILENT_DROP:
                silent_drop(self.client)
                raise _Rejected("PR", logged=not connection)
            left = deadline - time.monotonic()
            if left <= 0 or len(facts.payload) >= BUFFER_SIZE or connection:
                facts.final = True
                continue
            self.client.settimeout(left)
            try:
                data = self.client.recv(BUFFER_SIZE - len(facts.payload))
            except TimeoutError:
                data = None
            finally:
                self.client.settimeout(None)
            if data:
                facts.received(data)
            else:  # the delay passed, or the client closed: decide on what is here
                facts.final = True

    # -- the server -------------------------------------------------------------------------

    def _acquire(self, backend: TcpBackend, avoid: str | None = None) -> Lease | None:
        fleet, config = self.service.fleet, backend.config
        view = fleet.view(config.name)
        candidates = eligible(view, config.allbackups)
        if avoid is not None and len(candidates) > 1:
            candidates = tuple(server for server in candidates if server.name != avoid)
        stick = None
        if backend.persistence.is_active and avoid is None:
            environ = {"REMOTE_ADDR": self.facts.source[0], "RAW_URI": "/",
                       "REQUEST_METHOD": "GET"}
            stick = backend.persistence.stick_request(environ, view, direct=False)
        if not candidates and stick is None:
            return None
        ranking = Ranking(PickMode.FIRST_WITH_ROOM, ())
        if candidates:
            keys = self._keys() if backend.policy.needs_request else None
            ranking = backend.policy.rank(candidates, keys)
        lease = fleet.acquire(config.name, ranking, stick)
        if lease is not None or not candidates or avoid is not None:
            return lease
        if all(server.maxconn for server in ranking.candidates):
            waited = wait_in_queue(fleet, config, ranking)
            if isinstance(waited, Lease):
                return waited
            if waited is QueueOutcome.TIMED_OUT:
                raise _Rejected("sQ")
        return None

    def _keys(self) -> RequestKeys:
        facts = self.facts

        def header(name: str) -> str | None:
            environ = facts.http_request()
            value = environ.get("HTTP_" + name.upper().replace("-", "_")) \
                if isinstance(environ, dict) else None
            return value if isinstance(value, str) else None

        environ = facts.http_request()
        uri = environ.get("RAW_URI", "") if isinstance(environ, dict) else ""
        name = facts.server_name()
        return RequestKeys(source=facts.source[0], uri=str(uri), header=header,
                           destination_port=facts.destination[1],
                           server_name=name if isinstance(name, str) else None)

    def _connect(self, backend: TcpBackend) -> socket.socket:
        """Step 6: a lease and a connected socket, after retries and redispatches."""
        fleet, config = self.service.fleet, backend.config
        began = time.monotonic()
        lease = self._acquire(backend)
        self.queued_ms = _ms(time.monotonic() - began)
        if lease is None:
            raise _Rejected("SC")
        retries_left = config.retries
        while True:
            self.lease = lease
            self.server = lease.server
            self._count(f"s:{config.name}/{lease.server}")
            began = time.monotonic()
            try:
                server = self._open(backend, lease.server)
            except OSError as error:
                timed_out = isinstance(error, TimeoutError)
                fleet.count_error(config.name, lease.server, "conn")
                self._observe(backend, lease.server, False)
                fleet.release(lease)
                self.lease = None
                self._uncount(f"s:{config.name}/{lease.server}")
                if retries_left == 0:
                    raise _Rejected("sC" if timed_out else "SC") from None
                retries_left -= 1
                failed = lease.server
                failures = config.retries - retries_left
                view = fleet.view(config.name)
                redispatch = redispatches(config, view, failed, failures, False)
                fleet.count_retry(config.name, failed, redispatch)
                self.retries += 1
                self.redispatched = self.redispatched or redispatch
                next_lease = self._acquire(backend, avoid=failed) if redispatch else None
                if next_lease is None or next_lease.server == failed:
                    if next_lease is None:
                        time.sleep(backend.turnaround)
                        next_lease = self._acquire_same(backend, failed)
                    else:
                        time.sleep(backend.turnaround)
                if next_lease is None:
                    raise _Rejected("SC") from None
                lease = next_lease
                continue
            self.connect_ms = _ms(time.monotonic() - began)
            self._observe(backend, lease.server, True)
            return server

    def _acquire_same(self, backend: TcpBackend, server: str) -> Lease | None:
        fleet = self.service.fleet
        view = fleet.view(backend.config.name).server(server)
        if view is None or not view.accepts_persistent:
            return None
        return fleet.acquire(backend.config.name, Ranking(PickMode.FIRST_WITH_ROOM, (view,)))

    def _open(self, backend: TcpBackend, server: str) -> socket.socket:
        family, address = backend.address_of(server)
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.settimeout(backend.config.timeouts.connect)
            sock.connect(address)
            sock.settimeout(None)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            sock.close()
            raise
        return sock

    def _observe(self, backend: TcpBackend, server: str, ok: bool) -> None:
        configured = backend.config.server(server)
        if configured is not None and configured.observe is not None:
            # a TCP connection has no layer-7 answer: both levels judge the connect
            self.service.fleet.observe(backend.config.name, server, ok)

    # -- the tunnel ---------------------------------------------------------------------------

    def _tunnel(self, backend: TcpBackend, server: socket.socket) -> str:
        lease = self.lease
        assert lease is not None
        try:
            first = self._proxy_header(backend, lease.server) + self.facts.payload
            self.bytes_in = len(self.facts.payload)
            timeout, fin = data_timeouts(self.frontend.config, backend.config)
            tunnel = Tunnel(self.client, server, to_server=first, timeout=timeout,
                            fin_timeout=fin, buffer_size=BULK_BUFFER_SIZE)
            key = (backend.config.name, lease.server)
            tunnels = self.service.tunnels.setdefault(key, set())
            tunnels.add(tunnel)
            try:
                report = tunnel.run()
            finally:
                tunnels.discard(tunnel)
            header = len(first) - len(self.facts.payload)
            self.bytes_in = report.up - header
            self.bytes_out = report.down
            return report.ending
        finally:
            with contextlib.suppress(OSError):
                server.close()

    def _proxy_header(self, backend: TcpBackend, server: str) -> bytes:
        configured = backend.config.server(server)
        version = configured.send_proxy if configured else None
        if version is None:
            return _NO_HEADER
        addresses = Addresses(self.facts.source, self.facts.destination)
        return encode_v1(addresses) if version is ProxyProtocol.V1 else encode_v2(addresses)

    # -- counters and the log -------------------------------------------------------------------

    def _count(self, *keys: str) -> None:
        for key in keys:
            _open[key] = _open.get(key, 0) + 1
            self.counted.append(key)

    def _uncount(self, key: str) -> None:
        if key in self.counted:
            self.counted.remove(key)
            _open[key] = _open.get(key, 1) - 1

    def _log(self, termination: str) -> None:
        access = self.frontend.log
        if access is None:
            return
        if self.frontend.config.dontlognull and not self.bytes_in and not self.facts.payload:
            return
        backend = self.backend.config.name if self.backend else self.frontend.config.name
        server = self.server
        counters = Counters(
            process=_open.get("", 0),
            frontend=_open.get("f:" + self.frontend.config.name, 0),
            backend=_open.get("b:" + backend, 0) if self.backend else 0,
            server=_open.get(f"s:{backend}/{server}", 0) if server else 0,
            retries=self.retries,
            redispatched=self.redispatched,
        )
        name = self.frontend.config.name
        entry = TcpLog(
            client=self.facts.source,
            accepted=self.accepted,
            frontend=name + "~" if self.facts.tls is not None else name,  # HAProxy's %ft
            backend=backend,
            server=server,
            queue_ms=self.queued_ms,
            connect_ms=self.connect_ms,
            total_ms=_ms(time.monotonic() - self.started),
            bytes_sent=self.bytes_out,
            termination=termination,
            counters=counters,
        )
        access.write(format_tcp_line(entry))
