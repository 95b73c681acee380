"""The WSGI proxy app: one request, from frontend to server and back (DESIGN.md's seven steps).

Rules:
1. Nothing here talks to Redis or to sockets directly: fleet state (``FleetState``) and the
   transport (``geoproxy.forward``) do; this module sequences them.
2. A lease taken is released exactly once: by the error path that gives up on it, or by the
   response body's ``close()``, which gunicorn calls whatever happens to the client.
3. A request whose bytes reached a server is never sent again (invariant 5): only
   ``ConnectFailed`` leads to a retry.
4. A request that asks to switch protocols keeps its Upgrade header only when the server
   loop offers to tunnel; a 101 then becomes a ``SwitchedBody`` (``geoproxy.proxy.upgrade``).
5. No exception reaches gunicorn as a traceback for the client: upstream failures become
   HAProxy's 502/503/504 pages; a failure after the response started cuts the client connection,
   as HAProxy does.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import chain
from typing import Any, NoReturn

from geoproxy.admin.mount import StatsApps, metrics_service, mount_backend_stats, mount_stats
from geoproxy.balance.policy import PickMode, Ranking, RequestKeys
from geoproxy.balance.rank import eligible
from geoproxy.balance.view import BackendView, OperState, ServerView
from geoproxy.config.model import Config, Observe
from geoproxy.counters.registry import CounterTables
from geoproxy.errors import ClientGone, ConnectFailed, SilentClose, UpstreamError
from geoproxy.forward import KEEP, UnforwardableRequest, UpstreamResponse, build_request_head, send
from geoproxy.persistence import KEEP as PERSISTENCE_KEEP
from geoproxy.persistence import NO_PERSISTENCE, Persistence, rewrite_response
from geoproxy.proxy import counting
from geoproxy.proxy.body import ProxiedBody, Traffic
from geoproxy.proxy.content_rules import rejects
from geoproxy.proxy.errorpages import ErrorPage
from geoproxy.proxy.exchange import ExchangeFeatures
from geoproxy.proxy.httplog import accept_date
from geoproxy.proxy.queueing import CLIENT_CLOSED, QueueOutcome, wait_in_queue
from geoproxy.proxy.replies import after_response, has_after_rules, reply_page, response_rules
from geoproxy.proxy.requestlog import LogNote, note_of
from geoproxy.proxy.retry import redispatches
from geoproxy.proxy.runtime import (
    BackendRuntime,
    FrontendRuntime,
    build_backends,
    build_frontends,
)
from geoproxy.proxy.upgrade import UPGRADE_OFFER, SwitchedBody, tunnel_timeout
from geoproxy.rules.engine import run_rules
from geoproxy.rules.run import LocalReply
from geoproxy.rules.txn import ENVIRON_KEY, SESSION_STICK, Txn, txn_of
from geoproxy.state.store import FleetState, Lease, StickRequest

Environ = dict[str, Any]
StartResponse = Callable[..., Any]

log = logging.getLogger("geoproxy.proxy")


@dataclass(frozen=True, slots=True)
class ClientTimeouts:
    """HAProxy's client-side timeouts for one frontend, in seconds (None: no limit).

    ``request_head``: ``timeout http-request``, else ``timeout client``;
    ``idle``: ``timeout http-keep-alive``, else ``timeout http-request``, else ``timeout client``;
    ``client``: ``timeout client``, for every read of the request body.
    """

    request_head: float | None
    idle: float | None
    client: float | None


class ProxyApp:
    """The WSGI callable of one worker process."""

    def __init__(self, config: Config, fleet: FleetState, rng: random.Random | None = None) -> None:
        self.config = config
        self.fleet = fleet
        # this worker's view of the fleet's stick counters, kept in step by the fleet state
        self.counters = CounterTables.of(config)
        sync_counters = getattr(fleet, "sync_counters", None)
        if sync_counters is not None and self.counters.tables:
            sync_counters(self.counters)
        self._backends = build_backends(config, rng or random.Random(), self.counters)
        frontends = build_frontends(config, self._backends, self.counters)
        self._by_address: dict[tuple[str, str], FrontendRuntime] = {}
        self._by_port: dict[str, FrontendRuntime] = {}
        for frontend in frontends:
            for bind in frontend.config.binds:
                self._by_address[(bind.host, str(bind.port))] = frontend
                self._by_port.setdefault(str(bind.port), frontend)
        self._first_frontend = frontends[0]
        # Responses streaming now, per (backend, server), for backends whose servers ask for
        # their sessions to be shut down on a health transition.
        self._sessions: dict[tuple[str, str], set[ProxiedBody]] = {}
        self._shutdown_rules = {
            backend.name: backend
            for backend in config.backends
            if any(
                s.on_marked_down_shutdown_sessions or s.on_marked_up_shutdown_backup_sessions
                for s in backend.servers
            )
        }
        if self._shutdown_rules:
            fleet.on_transition(self._on_transition)
        on_shutdown_request = getattr(fleet, "on_shutdown_request", None)
        if on_shutdown_request is not None:  # the Runtime API's 'shutdown sessions server'
            on_shutdown_request(self._shut_down_sessions)
        self._stats: StatsApps = mount_stats(config, fleet)
        self._backend_stats: StatsApps = mount_backend_stats(config, fleet)
        # monitor-uri's neighbours: unique-id, compression, http-buffer-request
        self._features = ExchangeFeatures(config)
        self._metrics = metrics_service(config, fleet)
        # per backend: the last snapshot seen and its eligible servers (snapshots are
        # immutable and replaced on each heartbeat, so this is computed twice a second)
        self._eligible: dict[str, tuple[BackendView, tuple[ServerView, ...]]] = {}

    def _on_transition(
        self, backend: str, server: str, before: OperState, after: OperState
    ) -> None:
        """HAProxy's ``on-marked-down shutdown-sessions`` and ``on-marked-up
        shutdown-backup-sessions``, applied to this worker's streaming responses."""
        config = self._shutdown_rules.get(backend)
        changed = config.server(server) if config else None
        if config is None or changed is None:
            return
        running = (OperState.UP, OperState.GOING_DOWN)
        if changed.on_marked_down_shutdown_sessions and after is OperState.DOWN:
            victims = [server]
        elif (
            changed.on_marked_up_shutdown_backup_sessions
            and before not in running
            and after in running
            and not changed.backup
        ):
            victims = [s.name for s in config.servers if s.backup]
        else:
            return
        for name in victims:
            for body in list(self._sessions.get((backend, name), ())):
                body.abort()

    def _shut_down_sessions(self, backend: str, server: str) -> None:
        """Abort this worker's responses streaming from ``backend/server`` now."""
        for body in list(self._sessions.get((backend, server), ())):
            body.abort()

    def client_timeouts(self, listener: Any) -> ClientTimeouts:
        """The client-side timeouts of the frontend that listens on ``listener`` (its address)."""
        host, port = (listener[0], str(listener[1])) if isinstance(listener, tuple) else ("", "")
        frontend = (
            self._by_address.get((host, port)) or self._by_port.get(port) or self._first_frontend
        )
        timeouts = frontend.config.timeouts
        request_head = timeouts.http_request or timeouts.client
        return ClientTimeouts(
            request_head=request_head,
            idle=timeouts.http_keep_alive or request_head,
            client=timeouts.client,
        )

    def log_refused(
        self,
        base: Environ,
        status: int,
        size: int,
        began: tuple[float, int],
        empty: bool,
    ) -> None:
        """Log a request the worker refused itself (400, 408, 414, 431) as HAProxy logs it:
        ``frontend frontend/<NOSRV>`` and ``"<BADREQ>"``; with ``option dontlognull``, a
        connection that sent nothing is not logged."""
        frontend = self.frontend_for(base)
        if frontend.log is None or (empty and frontend.config.dontlognull):
            return
        accepted, head_ms = began
        environ = dict(base)
        environ["geoproxy.accepted"] = accepted
        environ["geoproxy.head_ms"] = head_ms
        note = LogNote(frontend.log, environ, frontend.config.name)
        note.request_line = "<BADREQ>"
        note.finish(status, size, "cR" if status == 408 else "PR")

    def log_connection_error(self, base: Environ, accepted: float, message: str,
                             empty: bool) -> None:
        """Log a connection that ended before any request, in its TLS handshake, as HAProxy
        logs it: ``CLIENT:PORT [DATE] FRONTEND/BIND: MESSAGE`` (BIND: the listener's number
        in the frontend, from 1); with ``option dontlognull``, not when the client sent
        nothing (``empty``)."""
        frontend = self.frontend_for(base)
        if frontend.log is None or (empty and frontend.config.dontlognull):
            return
        host, port = base.get("SERVER_NAME", ""), base.get("SERVER_PORT", "")
        binds = frontend.config.binds
        number = next((i for i, b in enumerate(binds, 1)
                       if str(b.port) == port and b.host in (host, "", "*", "0.0.0.0")), 1)
        frontend.log.write(f"{base.get('REMOTE_ADDR', '')}:{base.get('REMOTE_PORT', '')} "
                           f"[{accept_date(accepted)}] {frontend.config.name}/{number}: "
                           f"{message}")

    def frontend_for(self, environ: Environ) -> FrontendRuntime:
        """The frontend whose ``bind`` accepted this connection."""
        port = environ.get("SERVER_PORT", "")
        return (
            self._by_address.get((environ.get("SERVER_NAME", ""), port))
            or self._by_port.get(port)
            or self._first_frontend
        )

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if SESSION_STICK in environ:
            counting.start_request(environ)
        try:
            result = self._handle(environ, start_response)
        except BaseException:
            txn: Txn | None = environ.get(ENVIRON_KEY)
            if txn is not None and counting.counts(txn):  # the request ends here: its
                counting.end(txn, 0, 0)  # stick counters stop counting it
            raise
        return counting.finish(result, environ)

    def _handle(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        frontend = self.frontend_for(environ)
        monitor = frontend.monitor
        if monitor is not None and monitor.matches(environ):  # before anything, never logged
            return self._answer(environ, start_response, frontend.errors.page(
                monitor.status(environ)))
        stats = self._stats.get(frontend.config.name) if self._stats else None
        is_stats = stats is not None and stats.serves(environ)
        note = None
        if frontend.log is not None and not is_stats:
            note = LogNote(frontend.log, environ, frontend.config.name)
        txn = None
        if frontend.needs_txn:
            txn = Txn(environ, frontend.config.name, time.time())
            txn.nbsrv = self._nbsrv
            if note is not None and frontend.log_format is not None:
                note.formatter = (txn, frontend.log_format)
        if frontend.content_rules and frontend.rejects(txn or txn_of(environ)):  # first
            _note_rejected(environ)
            raise ClientGone("rejected by a tcp-request content rule")  # closed, no answer
        try:
            rules = frontend.rules
            if rules is not None and txn is not None:
                rules.capture_request(txn)
                reply = run_rules(rules.request, txn) if rules.request else None
                if reply is not None:
                    return self._reply(environ, start_response, frontend, None, reply)
            if is_stats and stats is not None:
                return stats(environ, start_response)
            if environ["REQUEST_METHOD"] == "CONNECT":
                return self._answer(environ, start_response, frontend.errors.page(405), frontend)
            backend = frontend.backend_for(txn)
            if backend is None:
                return self._answer(environ, start_response, frontend.errors.page(503), frontend)
            if backend.content_rules and backend.config.location != frontend.config.location:
                # the backend's tcp-request content rules (not a listen's own: they ran)
                content_txn = txn or txn_of(environ)
                content_txn.backend = backend.config.name
                if rejects(backend.content_rules, content_txn):
                    _note_rejected(environ)
                    raise ClientGone("rejected by a tcp-request content rule")
            if txn is not None:
                txn.backend = backend.config.name
                if backend.rules is not None and backend.rules.request and \
                        frontend.runs_backend_rules(backend):
                    reply = run_rules(backend.rules.request, txn)
                    if reply is not None:
                        return self._reply(environ, start_response, frontend, backend, reply)
            if self._backend_stats:
                stats = self._backend_stats.get(backend.config.name)
                if stats is not None and stats.serves(environ):
                    return stats(environ, start_response)
            return self._proxy(environ, start_response, frontend, backend)
        except ClientGone:
            raise
        except Exception:
            log.exception("internal error while proxying %s", environ.get("RAW_URI"))
            return self._answer(environ, start_response, frontend.errors.page(500), frontend)

    def _nbsrv(self, name: str) -> int:
        """``nbsrv(BACKEND)``: how many of its servers can take a request now."""
        backend = self._backends.get(name)
        if backend is None:
            return 0
        return len(eligible(self.fleet.view(name), backend.config.allbackups))

    def _reply(
        self,
        environ: Environ,
        start_response: StartResponse,
        frontend: FrontendRuntime,
        backend: BackendRuntime | None,
        reply: LocalReply,
    ) -> Iterable[bytes]:
        """A rule's answer (``deny``, ``return``, ``redirect``, ``auth``, ``use-service``)."""
        counting.count_reply(environ.get(ENVIRON_KEY), reply)
        note = note_of(environ)
        if reply.service is not None and self._metrics is not None:
            if note is not None:
                note.termination = "LR"
                note.finish(200, 0)
            return self._metrics(environ, start_response)
        if note is not None:
            note.termination = reply.termination
        page = reply_page(reply, frontend, backend)
        return self._answer(environ, start_response, page, frontend, backend)

    # -- one request -------------------------------------------------------------------------

    def _proxy(
        self,
        environ: Environ,
        start_response: StartResponse,
        frontend: FrontendRuntime,
        backend: BackendRuntime,
    ) -> Iterable[bytes]:
        exchange = self._features.request(environ, frontend, backend)
        if exchange.refusal:
            return self._answer(environ, start_response, frontend.errors.page(exchange.refusal))
        sticky = backend.persistence
        view = self.fleet.view(backend.config.name)
        note = note_of(environ)
        if note is not None:
            note.set_backend(backend.config.name)
        persistence = NO_PERSISTENCE
        stick = None
        now = 0.0
        if sticky.is_active:
            now = time.time()
            persistence = sticky.read(environ, view, now)
            stick = sticky.stick_request(environ, view, direct=persistence.is_direct)
        lease = self._take_server(environ, frontend, backend, persistence.server, stick)
        if note is not None:
            note.queued = time.monotonic()
            if persistence.policy is not None:
                note.cookie_request = persistence.status.value
        if lease is None:
            return self._error(environ, start_response, frontend, backend, 503)
        forwardfor = (backend.forwardfor or frontend.forwardfor)(environ)
        upstream_cookie = persistence.upstream_cookie
        upgrade = UPGRADE_OFFER in environ
        try:
            head, framing = build_request_head(
                environ,
                cookie=KEEP if upstream_cookie is PERSISTENCE_KEEP else upstream_cookie,
                append=exchange.headers + ((forwardfor,) if forwardfor else ()) + exchange.after,
                server_close=backend.server_close,
                upgrade=upgrade,
            )
        except UnforwardableRequest:
            self.fleet.release(lease)
            return self._answer(environ, start_response, frontend.errors.page(400), frontend)
        acquired = lease.server
        txn: Txn | None = environ.get(ENVIRON_KEY)
        try:
            direct = lease.stuck or (
                persistence.server is not None and persistence.server.name == lease.server
            )
            response, lease = self._send(environ, backend, lease, (head, framing), direct)
        except UpstreamError as error:
            if error.status in (502, 504):  # the server failed (stick counters' http_fail)
                counting.count_response(txn, error.status)
            return self._error(environ, start_response, frontend, backend, error.status)
        if response.status == 101 and not upgrade:
            # a server cannot switch a client that did not ask: HAProxy answers 502
            response.close()
            self.fleet.count_error(backend.config.name, lease.server, "resp")
            self.fleet.release(lease)
            return self._error(environ, start_response, frontend, backend, 502)
        headers = response.headers
        counting.count_response(txn, response.status)
        if note is not None:
            note.connected = response.connected_at
            note.answered = time.monotonic()
        if sticky.is_active:
            redispatched = lease.server != acquired
            entries = sticky.entries_to_store(environ, headers, stick, redispatched)
            if entries:
                self.fleet.stick_store(entries, lease.server)
        code, reason = response.status, response.reason
        if txn is not None:
            txn.server = lease.server
            answered = response_rules(txn, frontend, backend, response.status, response.reason,
                                      response.headers)
            if answered is not None:
                response.close()
                self.fleet.release(lease)
                return self._reply(environ, start_response, frontend, backend, answered)
            code, reason, headers = txn.status, txn.reason, txn.headers
        if sticky.is_active:
            headers = self._persist_response(
                backend, persistence, lease, (code, headers), now, note)
        compressed = exchange.compress(environ, response, headers)
        if compressed is not None:
            headers = compressed
        status = f"{code} {reason}"
        if txn is not None and has_after_rules(frontend, backend):
            status, headers = after_response(txn, frontend, backend, status, headers)
        start_response(status, headers)
        # every streaming response is findable by its server: on-marked-down rules and the
        # Runtime API's 'shutdown sessions server' cut them
        sessions = self._sessions.setdefault((backend.config.name, lease.server), set())
        traffic = Traffic(
            frontend.config.name,
            len(head) + framing.length,
            # ": " and CRLF per header, summed in C (no Python frame per header)
            len(status) + 13 + sum(map(len, chain.from_iterable(headers))) + 4 * len(headers),
        )
        body: ProxiedBody
        if response.status == 101:
            timeout = tunnel_timeout(frontend.config.timeouts, backend.config.timeouts)
            body = SwitchedBody(
                response, self.fleet, lease, sessions, traffic, note, timeout=timeout
            )
            counting.end_with_body(body, txn)
            return body
        if note is not None and code != response.status:
            note.status = code
        body = ProxiedBody(response, self.fleet, lease, sessions, traffic, note)
        counting.end_with_body(body, txn)
        return exchange.body(body)

    def _persist_response(
        self,
        backend: BackendRuntime,
        persistence: Persistence,
        lease: Lease,
        response: tuple[int, list[tuple[str, str]]],
        now: float,
        note: LogNote | None,
    ) -> list[tuple[str, str]]:
        """The response headers (status, headers) after cookie persistence (and its log
        letter noted)."""
        status, headers = response
        answered = backend.persistence.server(self.fleet.view(backend.config.name), lease.server)
        if answered is None or persistence.policy is None:
            return headers
        rewritten = rewrite_response(persistence, answered, status, headers, now)
        if note is not None:
            note.cookie_response = rewritten.status.value
        return rewritten.headers

    def _take_server(
        self,
        environ: Environ,
        frontend: FrontendRuntime,
        backend: BackendRuntime,
        direct: ServerView | None,
        stick: StickRequest | None,
    ) -> Lease | None:
        """The server for a new request: the persistent one (waiting in its queue while it is
        full, unless that queue is full), else a balanced pick (waiting in the backend's queue
        while every candidate is full). None: answer 503."""
        name = backend.config.name
        if direct is not None:
            only = Ranking(PickMode.FIRST_WITH_ROOM, (direct,))
            lease = self.fleet.acquire(name, only, stick)
            if lease is not None or not direct.maxconn:
                return lease
            waited = wait_in_queue(self.fleet, backend.config, only, direct.name,
                                   abandoned=_abandoned(environ, frontend, backend))
            if waited is QueueOutcome.ABORTED:
                _abort_queued(environ)
            if waited is QueueOutcome.TIMED_OUT:
                _note_queue_timeout(environ)
                return None
            if isinstance(waited, Lease):
                return waited
        ranking = self._ranking(environ, backend)
        if ranking is None and stick is None:
            return None
        lease = self.fleet.acquire(name, ranking or Ranking(PickMode.FIRST_WITH_ROOM, ()), stick)
        if lease is not None or ranking is None:
            return lease
        if all(server.maxconn for server in ranking.candidates):
            waited = wait_in_queue(self.fleet, backend.config, ranking,
                                   abandoned=_abandoned(environ, frontend, backend))
            if isinstance(waited, Lease):
                return waited
            if waited is QueueOutcome.ABORTED:
                _abort_queued(environ)
            _note_queue_timeout(environ)
        return None

    def _ranking(
        self, environ: Environ, backend: BackendRuntime, avoid: str | None = None
    ) -> Ranking | None:
        """The balancing policy's ranking of the usable servers; None when none is usable."""
        view = self.fleet.view(backend.config.name)
        cached = self._eligible.get(backend.config.name)
        if cached is not None and cached[0] is view:
            candidates = cached[1]
        else:
            candidates = eligible(view, backend.config.allbackups)
            self._eligible[backend.config.name] = (view, candidates)
        if avoid is not None and len(candidates) > 1:
            candidates = tuple(server for server in candidates if server.name != avoid)
        if not candidates:
            return None
        policy = backend.policy
        keys = _request_keys(environ) if policy.needs_request else None
        return policy.rank(candidates, keys)

    def _acquire(
        self, environ: Environ, backend: BackendRuntime, avoid: str | None = None
    ) -> Lease | None:
        ranking = self._ranking(environ, backend, avoid)
        return self.fleet.acquire(backend.config.name, ranking) if ranking else None

    def _acquire_same(self, backend: BackendRuntime, server: str) -> Lease | None:
        view = self.fleet.view(backend.config.name).server(server)
        if view is None or not view.accepts_persistent:
            return None
        return self.fleet.acquire(backend.config.name, Ranking(PickMode.FIRST_WITH_ROOM, (view,)))

    def _send(
        self,
        environ: Environ,
        backend: BackendRuntime,
        lease: Lease,
        request: tuple[bytes, Any],
        direct: bool,
    ) -> tuple[UpstreamResponse, Lease]:
        """Send ``request`` (head, framing), retrying on connection failures as HAProxy does:
        ``retries`` more attempts, on the same server or on another one as
        ``retry.redispatches`` says (``direct``: persistence chose the server). Raises the last
        ``UpstreamError``; every lease not returned has been released."""
        head, framing = request
        note = note_of(environ)
        body = environ["wsgi.input"] if framing.has_body else None
        is_head = environ["REQUEST_METHOD"] == "HEAD"
        retries_left = backend.config.retries
        current: Lease | None = lease
        while True:
            assert current is not None
            if note is not None:
                note.sending = time.monotonic()
                note.set_server(current.server)
            try:
                pool = backend.pools.pool(
                    current.server, environ, self.fleet.view(backend.config.name))
                response = send(
                    pool,
                    head,
                    framing,
                    body,
                    connect_timeout=backend.connect_timeout,
                    server_timeout=backend.server_timeout,
                    is_head=is_head,
                )
                if backend.observe:
                    self._observe(backend, current.server, response.status)
                return response, current
            except ConnectFailed:
                self.fleet.count_error(backend.config.name, current.server, "conn")
                if backend.observe:
                    self._observe(backend, current.server, None)
                self.fleet.release(current)
                if retries_left == 0:
                    raise
                retries_left -= 1
                failed = current.server
                view = self.fleet.view(backend.config.name)
                failures = backend.config.retries - retries_left
                redispatch = redispatches(backend.config, view, failed, failures, direct)
                self.fleet.count_retry(backend.config.name, failed, redispatch)
                if note is not None:
                    note.retries += 1
                    note.redispatched = note.redispatched or redispatch
                if redispatch:
                    direct = False
                    current = self._acquire(environ, backend, avoid=failed)
                    if current is not None and current.server == failed:
                        time.sleep(backend.turnaround)
                else:
                    time.sleep(backend.turnaround)
                    current = self._acquire_same(backend, failed)
                if current is None:
                    raise
            except UpstreamError:
                self.fleet.count_error(backend.config.name, current.server, "resp")
                if backend.observe.get(current.server) is Observe.LAYER7:
                    self._observe(backend, current.server, None)
                self.fleet.release(current)
                raise
            except BaseException:
                self.fleet.release(current)
                raise

    def _observe(self, backend: BackendRuntime, server: str, status: int | None) -> None:
        """Passive health (``observe``): connection failures count as errors at layer 4; at
        layer 7 so do invalid or missing responses and 5xx statuses but 501 and 505, as in
        HAProxy."""
        level = backend.observe.get(server)
        if level is None:
            return
        if status is None:
            ok = False
        elif level is Observe.LAYER7:
            ok = status < 500 or status in (501, 505)
        else:
            ok = True
        self.fleet.observe(backend.config.name, server, ok)

    # -- answers geoproxy makes itself ------------------------------------------------------

    def _error(
        self,
        environ: Environ,
        start_response: StartResponse,
        frontend: FrontendRuntime,
        backend: BackendRuntime,
        status: int,
    ) -> Iterable[bytes]:
        page = backend.errors.get(status) or frontend.errors.page(status)
        return self._answer(environ, start_response, page, frontend, backend)

    @staticmethod
    def _answer(
        environ: Environ,
        start_response: StartResponse,
        page: ErrorPage,
        frontend: FrontendRuntime | None = None,
        backend: BackendRuntime | None = None,
    ) -> Iterable[bytes]:
        if page.is_silent:
            raise SilentClose("an empty errorfile: the connection closes without an answer")
        status, headers = page.status, list(page.headers)
        if frontend is not None and has_after_rules(frontend, backend):
            status, headers = after_response(
                environ.get(ENVIRON_KEY), frontend, backend, status, headers
            )
        if page.close and not any(name.lower() == "connection" for name, _ in headers):
            headers.append(("Connection", "close"))
        note = note_of(environ)
        if note is not None:
            note.finish(int(status[:3]), len(page.raw))
        start_response(status, headers)
        return [page.body]


def _request_keys(environ: Environ) -> RequestKeys:
    def header(name: str) -> str | None:
        value: str | None = environ.get("HTTP_" + name.upper().replace("-", "_"))
        return value

    port = environ.get("SERVER_PORT", "")
    return RequestKeys(
        source=environ.get("REMOTE_ADDR", ""),
        uri=environ.get("RAW_URI") or environ.get("PATH_INFO", "/"),
        header=header,
        destination_port=int(port) if port.isdigit() else 0,
    )


def _note_queue_timeout(environ: Environ) -> None:
    """The log's termination state for a request that waited in a queue until its end."""
    note = note_of(environ)
    if note is not None:
        note.termination = "sQ"


def _abandoned(
    environ: Environ, frontend: FrontendRuntime, backend: BackendRuntime
) -> Callable[[], bool] | None:
    """What tells a queued request that its client left: the worker's probe, when both its
    frontend and its backend have ``option abortonclose`` (HAProxy 2.6 needs both: in a
    backend alone the option changes nothing; a frontend gets it from defaults or as a
    listen). None: the request waits on, as HAProxy's does without the option."""
    if not (frontend.config.abortonclose and backend.config.abortonclose):
        return None
    probe: Callable[[], bool] | None = environ.get(CLIENT_CLOSED)
    return probe


def _abort_queued(environ: Environ) -> NoReturn:
    """The client closed while its request was queued (``option abortonclose``): nothing is
    sent or answered, and the log says so as HAProxy 2.6's does: no server, no status, ``CQ``."""
    note = note_of(environ)
    if note is not None:
        note.queued = time.monotonic()
        note.finish(-1, 0, "CQ")
    raise ClientGone("the client closed while its request was queued")


def _note_rejected(environ: Environ) -> None:
    """Log a request a ``tcp-request content`` rule rejected as HAProxy does: no status,
    ``PR``, ``<BADREQ>``."""
    note = note_of(environ)
    if note is not None:
        note.request_line = "<BADREQ>"
        note.finish(-1, 0, "PR")
