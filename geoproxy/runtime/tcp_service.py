"""``mode tcp`` in a worker: what each listener needs, built once per process, and the entry
points the worker calls for each accepted connection.

Rules:
1. A listener belongs to the frontend whose ``bind`` it is (address first, then port, as the
   HTTP app finds frontends). A TCP frontend's connections are served by ``serve`` (one
   ``TcpSession`` each); an HTTP frontend's go through ``prelude`` first when it has
   ``accept-proxy`` or ``tcp-request connection`` rules, then to the HTTP loop.
2. Everything a connection needs is built here once: compiled rules, balancing policies, stick
   rules, resolved server addresses, log targets. A connection allocates only its session.
3. ``on-marked-down shutdown-sessions`` and ``on-marked-up shutdown-backup-sessions`` cut the
   tunnels of this process that match, from the fleet state's transition listener.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import random
import socket
from dataclasses import dataclass, field
from typing import Any

from geoproxy.balance.factory import policy_for
from geoproxy.balance.policy import Policy
from geoproxy.balance.view import OperState
from geoproxy.config.model import Backend, Config, Frontend, ProxyMode
from geoproxy.counters.registry import CounterTables
from geoproxy.proxy.accesslog import AccessLog
from geoproxy.proxy.runtime import compile_env
from geoproxy.proxy.sticky import BackendPersistence
from geoproxy.proxy.upgrade import tunnel_timeout
from geoproxy.rules.fetch_types import CompileEnv
from geoproxy.rules.logformat import Render, compile_logformat
from geoproxy.runtime.tls import BindContexts, TlsListeners
from geoproxy.runtime.tunnel import Tunnel
from geoproxy.state.store import FleetState
from geoproxy.tcp.conditions import TcpPredicate, compile_condition, txn_of
from geoproxy.tcp.counters import count_session
from geoproxy.tcp.counters import end as end_tracking
from geoproxy.tcp.facts import TcpFacts
from geoproxy.tcp.proxyproto import INCOMPLETE, ProxyHeaderError, decode
from geoproxy.tcp.rules import CompiledRule, Verdict, compile_rules, evaluate

log = logging.getLogger("geoproxy.tcp")

# HAProxy's MAX_TURNAROUND: a retry on the same server waits min(1 s, timeout connect)
MAX_TURNAROUND = 1.0
# how long an accept-proxy header may take when the frontend sets no timeout client
DEFAULT_HEADER_TIMEOUT = 10.0
Address = tuple[str, int]


@dataclass(slots=True)
class TcpBackend:
    """One backend as its TCP connections use it (rule 2)."""

    config: Backend
    policy: Policy
    persistence: BackendPersistence
    content_rules: tuple[CompiledRule, ...]
    inspect_delay: float | None
    turnaround: float
    resolved: dict[str, tuple[socket.AddressFamily, Any]] = field(default_factory=dict)

    def address_of(self, server: str) -> tuple[socket.AddressFamily, Any]:
        """The server's socket address, resolved once (HAProxy resolves at start-up)."""
        found = self.resolved.get(server)
        if found is None:
            configured = self.config.server(server)
            if configured is None:
                raise OSError(f"no server {server}")
            info = socket.getaddrinfo(configured.host, configured.port, type=socket.SOCK_STREAM)
            found = self.resolved[server] = (info[0][0], info[0][4])
        return found


@dataclass(frozen=True, slots=True)
class TcpFrontend:
    """One frontend's TCP side: its rules, its routes and its log (rule 2)."""

    config: Frontend
    connection_rules: tuple[CompiledRule, ...]
    content_rules: tuple[CompiledRule, ...]
    inspect_delay: float | None
    # use_backend: (condition or None, the backend's name, or the log-format naming it)
    routes: tuple[tuple[TcpPredicate | None, str, Render | None], ...]
    default_backend: str | None
    log: AccessLog | None
    tunnel_fin: float | None  # timeout client-fin (the backend adds server-fin)

    def backend_for(self, facts: TcpFacts) -> str | None:
        """The first ``use_backend`` whose condition holds (undecided: does not), else the
        default backend; a dynamic name that names no backend is returned as it is."""
        for holds, name, render in self.routes:
            if holds is None or holds(facts):
                return name if render is None else render(txn_of(facts))
        return self.default_backend


@dataclass(frozen=True, slots=True)
class Listener:
    frontend: TcpFrontend
    accept_proxy: bool
    is_tcp: bool
    tls: BindContexts | None = None  # a bind with ssl: the session shakes hands first


class TcpService:
    """A worker's TCP proxies (see the module rules)."""

    def __init__(self, config: Config, fleet: FleetState, rng: random.Random | None = None,
                 counters: CounterTables | None = None, tls: TlsListeners | None = None):
        self.config = config
        self.fleet = fleet
        chooser = rng or random.Random()
        # the worker's stick counters (the HTTP app's: one view per process)
        env = compile_env(config, counters)
        self.backends = {
            backend.name: _backend(backend, config, chooser, env)
            for backend in config.backends
            if backend.mode is ProxyMode.TCP
        }
        self._by_address: dict[tuple[str, str], Listener] = {}
        self._by_port: dict[str, Listener] = {}
        for frontend in config.frontends:
            runtime = _frontend(frontend, config, env)
            for bind in frontend.binds:
                contexts = tls.get((bind.host or "0.0.0.0", bind.port)) if tls else None
                listener = Listener(runtime, bind.accept_proxy, frontend.mode is ProxyMode.TCP,
                                    contexts if bind.tls is not None else None)
                self._by_address[(bind.host, str(bind.port))] = listener
                self._by_port.setdefault(str(bind.port), listener)
        # tunnels of this process per (backend, server), for rule 3
        self.tunnels: dict[tuple[str, str], set[Tunnel]] = {}
        if any(s.on_marked_down_shutdown_sessions or s.on_marked_up_shutdown_backup_sessions
               for b in self.backends.values() for s in b.config.servers):
            fleet.on_transition(self._on_transition)

    @staticmethod
    def wanted(config: Config) -> bool:
        """Whether ``config`` needs this service (a TCP frontend, or an HTTP one with
        accept-proxy or tcp-request connection rules)."""
        return any(
            frontend.mode is ProxyMode.TCP
            or any(bind.accept_proxy for bind in frontend.binds)
            or (frontend.tcp_request is not None and frontend.tcp_request.connection)
            for frontend in config.frontends
        )

    def listener(self, name: Any) -> Listener | None:
        if not isinstance(name, tuple):
            return None
        host, port = str(name[0]), str(name[1])
        return self._by_address.get((host, port)) or self._by_port.get(port)

    def serve(self, sock: socket.socket, addr: Any, listener: Listener, local: Any) -> None:
        """Serve one connection of a TCP frontend, to its end."""
        from geoproxy.runtime.tcp_session import TcpSession  # one module per concern

        TcpSession(self, listener, sock, _address(addr), _address(local)).run()

    def prelude(
        self, sock: socket.socket, addr: Any, listener: Listener, local: Any
    ) -> tuple[Any, bytes, TcpFacts | None] | None:
        """For an HTTP frontend (rule 1): read the PROXY header (``accept-proxy``) and apply
        ``tcp-request connection`` rules. Returns the client's address (from the header, else
        ``addr``), the bytes read past the header, and the connection's facts when its rules
        track stick counters (the session's: every request on it counts there, until
        ``end_session``); None when the connection is to close."""
        source, destination, rest = _address(addr), _address(local), b""
        if listener.accept_proxy:
            timeout = listener.frontend.config.timeouts.client or DEFAULT_HEADER_TIMEOUT
            header = read_proxy_header(sock, timeout, exact=listener.tls is not None)
            if header is None:
                return None
            found, rest = header
            if found is not None:
                source, destination = found
        rules = listener.frontend.connection_rules
        session = None
        if rules:
            facts = TcpFacts(source, destination, final=True)
            verdict = evaluate(rules, facts)
            if any(tracked is not None for tracked in facts.stick):
                session = facts
            if verdict in (Verdict.REJECT, Verdict.SILENT_DROP):
                if verdict is Verdict.SILENT_DROP:
                    silent_drop(sock)
                end_session(session)
                return None
            count_session(facts)
        return (source if listener.accept_proxy else addr), rest, session

    def _on_transition(self, backend: str, server: str, before: OperState,
                       after: OperState) -> None:
        tcp = self.backends.get(backend)
        changed = tcp.config.server(server) if tcp else None
        if tcp is None or changed is None:
            return
        running = (OperState.UP, OperState.GOING_DOWN)
        if changed.on_marked_down_shutdown_sessions and after is OperState.DOWN:
            victims = [server]
        elif (changed.on_marked_up_shutdown_backup_sessions and before not in running
              and after in running and not changed.backup):
            victims = [s.name for s in tcp.config.servers if s.backup]
        else:
            return
        for name in victims:
            for tunnel in list(self.tunnels.get((backend, name), ())):
                tunnel.cut()


def _address(value: Any) -> Address:
    if isinstance(value, tuple) and len(value) >= 2:
        return str(value[0]), int(value[1])
    return "", 0


def end_session(session: TcpFacts | None) -> None:
    """An HTTP connection whose ``tcp-request connection`` rules tracked counters ended."""
    if session is not None:
        end_tracking(session, 0, 0)


def read_proxy_header(sock: socket.socket, timeout: float, *, exact: bool = False
                      ) -> tuple[tuple[Address, Address] | None, bytes] | None:
    """The PROXY header at the start of ``sock`` (``accept-proxy``): the addresses it carries
    (None for LOCAL/UNKNOWN) and the bytes read past it; None when the header is invalid, the
    client left or ``timeout`` passed (the connection is then closed, as HAProxy closes it).
    ``exact`` (a bind with ``ssl``): the bytes are peeked at and only the header's are taken,
    so what follows stays in the socket for the TLS handshake, which cannot be handed bytes
    already read; the bytes past the header are then always empty."""
    data = b""
    sock.settimeout(timeout)
    try:
        while True:
            chunk = sock.recv(4096, socket.MSG_PEEK) if exact else sock.recv(4096)
            if not chunk:
                return None
            header = decode(data + chunk)
            if exact:
                taken = len(chunk) if header is INCOMPLETE else header.length - len(data)
                chunk = _take(sock, taken)  # what was peeked is there: all of it, or the head
            data += chunk
            if header is not INCOMPLETE:
                break
    except (OSError, ProxyHeaderError):
        return None
    finally:
        with contextlib.suppress(OSError):
            sock.settimeout(None)
    assert not isinstance(header, type(INCOMPLETE))
    addresses = header.addresses
    found = None if addresses is None else (addresses.source, addresses.destination)
    return found, data[header.length:]


def _take(sock: socket.socket, count: int) -> bytes:
    """Exactly ``count`` bytes (already peeked at, so already there)."""
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def silent_drop(sock: socket.socket) -> None:
    """HAProxy's ``silent-drop``: nothing reaches the client, not even a reset (the TTL of
    what is left to send is 1), and the connection is forgotten at once."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 1)
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")


def _backend(backend: Backend, config: Config, rng: random.Random,
             env: CompileEnv) -> TcpBackend:
    rules = backend.tcp_request
    connect = backend.timeouts.connect
    return TcpBackend(
        config=backend,
        policy=policy_for(backend, rng),
        persistence=BackendPersistence(backend, config),
        content_rules=compile_rules(rules.content, env, backend.name) if rules else (),
        inspect_delay=rules.inspect_delay if rules else None,
        turnaround=min(MAX_TURNAROUND, connect or MAX_TURNAROUND),
    )


def _frontend(frontend: Frontend, config: Config, env: CompileEnv) -> TcpFrontend:
    rules = frontend.tcp_request
    env = dataclasses.replace(env, proxy=frontend.name)
    targets = (config.global_.logs if frontend.log_global else ()) + frontend.logs
    access = AccessLog(targets, default_stdout=frontend.tcplog) if frontend.tcplog else None
    return TcpFrontend(
        config=frontend,
        connection_rules=compile_rules(rules.connection, env, frontend.name, connection=True)
        if rules else (),
        content_rules=compile_rules(rules.content, env, frontend.name) if rules else (),
        inspect_delay=rules.inspect_delay if rules else None,
        routes=tuple(
            (compile_condition(rule.condition, env) if rule.condition else None, rule.backend,
             compile_logformat(rule.name_format, env) if rule.name_format else None)
            for rule in frontend.use_backends),
        default_backend=frontend.default_backend,
        log=access if access is not None and access.enabled else None,
        tunnel_fin=frontend.timeouts.client_fin,
    )


def data_timeouts(frontend: Frontend, backend: Backend) -> tuple[float | None, float | None]:
    """The tunnel's inactivity timeout (``timeout tunnel``, else the first of ``timeout
    client`` and ``timeout server``) and its timeout once one direction is done (the first of
    ``timeout client-fin`` and ``server-fin`` that are set; None: the same)."""
    timeout = tunnel_timeout(frontend.timeouts, backend.timeouts)
    fins = [t for t in (frontend.timeouts.client_fin, backend.timeouts.server_fin) if t]
    return timeout, (min(fins) if fins else None)

