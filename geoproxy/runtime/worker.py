"""geoproxy's gunicorn worker: gunicorn's gevent worker with an HTTP/1.1 server loop of its own.

gunicorn still runs the master, forks the workers, handles signals, reloads and heartbeats, and
the app is still a WSGI callable (``geoproxy.proxy.app.ProxyApp``). What this worker replaces
is gunicorn's per-request machinery (its Python request parser, environ and response writer),
which cost more CPU per request than the whole proxying did. Why, and what it does instead:
1. Requests are parsed in C by llhttp (``geoproxy.runtime.http1``), strictly; the environ holds
   what the app reads, built from a per-connection template.
2. HAProxy's client-side timeouts: ``timeout http-request`` answers 408 when a request's head
   does not arrive in time (counted from the connection's start for its first request, from
   the first byte for the next ones); ``timeout http-keep-alive`` closes an idle keep-alive
   connection silently; ``timeout client`` bounds every read of a body and every write. The
   worker runs ``geoproxy.watchdog``, which enforces them (and ``timeout server`` and the
   Redis timeout) without a gevent timer per wait.
3. Answers to malformed requests are HAProxy's pages (400, 414, 431), then the connection closes.
4. Responses carry only what the server (or geoproxy) sent, plus HAProxy's framing headers
   (``geoproxy.runtime.http1_response``).
5. A response that the server cut mid-body cuts the client connection quietly, as HAProxy does.
6. Requests of a connection are served one after the other, pipelined ones included. A body
   the app did not read is read and dropped before the next request (the connection closes
   instead when the client still waits for ``100 Continue``).
7. A request that asks to switch protocols (``Connection: upgrade``) is offered a tunnel
   (``geoproxy.proxy.upgrade``): when the app answers with a ``SwitchedBody``, the 101 head
   goes to the client and the connection becomes a tunnel to the server
   (``geoproxy.runtime.tunnel``) until either side is done; it then closes. Any other answer
   is a plain response, and the connection goes on with the next request.
8. A connection accepted by a ``mode tcp`` frontend is served by ``geoproxy.runtime.
   tcp_service`` to its end (a tunnel to a server). An HTTP frontend's connection first goes
   through that service's prelude when its bind has ``accept-proxy`` (the PROXY header gives
   the client's address) or the frontend has ``tcp-request connection`` rules.
9. Each listening socket is served by a ``FrontendListener``, which a disabled frontend
   (``disable frontend`` on the Runtime API) pauses: the worker reads the fleet's disabled
   frontends before its first accept, then at every heartbeat of its fleet state
   (``geoproxy.runtime.frontend_gate``). Connections already accepted, and the other
   frontends, are served on.
10. A bind with ``ssl`` (``geoproxy.runtime.tls``): after the PROXY header and the
   ``tcp-request connection`` rules, the handshake runs here, in the connection's greenlet,
   bounded by ``timeout client``; a failed one closes the connection, with one line in the
   frontend's log as HAProxy writes it (``fe/1: SSL handshake failure``). The contexts
   are built once, when the worker starts. The connection's TLS facts go in its base environ
   (``ssl_fc*`` fetches, ``%ft``'s ``~``) and its ``wsgi.url_scheme`` is ``https``. A ``mode
   tcp`` frontend's connections shake hands in ``tcp_session`` (after the same stages).
11. A connection speaks HTTP/2 when its bind has ``proto h2`` (from its first byte, prior
   knowledge) or when its TLS handshake chose ALPN ``h2``: it is served by
   ``geoproxy.runtime.h2_connection.serve_h2`` (after the PROXY prelude and the handshake),
   with the environ every request of the connection shares (``connection_environ``, with the
   TLS facts). When the worker stops, its heartbeat (``notify``) tells those connections to go
   away (GOAWAY).
12. Each client connection (HTTP/1.1 or HTTP/2) owns the server connections private to it
   (``send-proxy`` servers, ``geoproxy.forward.private``): its base environ holds them, and
   they are closed when it ends.
13. A plain HTTP/1.1 connection's requests carry a probe (``CLIENT_CLOSED``,
   ``geoproxy.runtime.client_probe``) that says whether the client closed its side: a request
   waiting in a queue of a backend with ``option abortonclose`` asks it, and is dropped when
   the client left.
"""

from __future__ import annotations

import socket
import sys
import time
from functools import partial
from typing import Any

from gunicorn.workers.ggevent import GeventWorker

from geoproxy import watchdog
from geoproxy.config.model import H2Settings, RequestLimits
from geoproxy.errors import ClientGone, UpstreamError
from geoproxy.forward.private import PRIVATE, PrivatePools
from geoproxy.proxy.app import ClientTimeouts
from geoproxy.proxy.errorpages import builtin_page
from geoproxy.proxy.exchange import LOCAL_ADDRESS
from geoproxy.proxy.queueing import CLIENT_CLOSED
from geoproxy.proxy.upgrade import UPGRADE_OFFER, SwitchedBody
from geoproxy.rules.txn import SESSION_STICK
from geoproxy.runtime.client_probe import client_closed
from geoproxy.runtime.frontend_gate import frontend_of
from geoproxy.runtime.frontend_listener import FrontendListener
from geoproxy.runtime.h2_connection import drain_all, serve_h2
from geoproxy.runtime.http1 import EMPTY_BODY, ClientReader, EmptyBody, Request, RequestBody
from geoproxy.runtime.http1_response import Response
from geoproxy.runtime.request_environ import request_environ
from geoproxy.runtime.tcp_service import Listener, TcpService, end_session
from geoproxy.runtime.tls import (
    TLS_FACTS,
    TlsFacts,
    TlsListeners,
    handshake,
    handshake_failure,
)
from geoproxy.runtime.tunnel import Tunnel

_PAGES = {status: builtin_page(status).raw for status in (400, 408, 414, 431, 500)}


class ProxyWorker(GeventWorker):  # type: ignore[misc]
    """A gunicorn gevent worker serving ``geoproxy.proxy.app.ProxyApp`` (see the module doc)."""

    alive: bool
    request_limits: RequestLimits
    tcp: TcpService | None
    tls: TlsListeners

    def run(self) -> None:
        watchdog.start()  # timeouts on the request path: see geoproxy.watchdog
        config = getattr(self.wsgi, "config", None)  # tune.bufsize, tune.http.maxhdr
        self.request_limits = config.global_.request_limits if config else RequestLimits()
        fleet = getattr(self.wsgi, "fleet", None)
        # rule 10: every TLS bind's contexts, once per process, from the files as they are now
        self.tls = TlsListeners(b for f in config.frontends for b in f.binds) if config \
            else TlsListeners(())
        self.tcp = None
        if config is not None and fleet is not None and TcpService.wanted(config):
            # mode tcp, accept-proxy (rule 8); the app's stick counters, one view per process
            self.tcp = TcpService(config, fleet, counters=getattr(self.wsgi, "counters", None),
                                  tls=self.tls)
        # binds with ``proto h2``: their connections speak HTTP/2 (rule 11)
        self.h2_settings = config.global_.h2 if config else H2Settings()
        self.h2_binds = frozenset(
            ("0.0.0.0" if bind.host in ("", "*", "0.0.0.0") else bind.host, bind.port)
            for frontend in (config.frontends if config else ()) for bind in frontend.binds
            if bind.proto == "h2"
        )
        self.listeners: list[FrontendListener] = []
        self.disabled_frontends = self._follow_disabled_frontends()
        super().run()

    def _follow_disabled_frontends(self) -> frozenset[str]:
        """Rule 9: the frontends disabled now (none when Redis cannot say: the heartbeat
        corrects it), and every change from now on."""
        fleet = getattr(self.wsgi, "fleet", None)
        follow = getattr(fleet, "on_disabled_frontends", None)
        if fleet is None or follow is None:
            return frozenset()
        try:
            disabled: frozenset[str] = fleet.disabled_frontends()
        except Exception as error:  # Redis away or refusing: serve, as with a stale snapshot
            self.log.warning("disabled frontends unknown at start (%s): serving all", error)
            disabled = frozenset()
        follow(self._apply_disabled)  # (after the read: a newer state is never overwritten)
        return disabled

    def server_class(self, listener: Any, *, spawn: Any, **arguments: Any) -> FrontendListener:
        """The server of one listening socket (rule 9). gunicorn's ``GeventWorker.run`` builds
        each through ``server_class`` when a worker has one, with pywsgi's arguments, which
        this worker does not use (it has its own HTTP loop)."""
        config = getattr(self.wsgi, "config", None)
        frontend = frontend_of(config, listener.getsockname()) if config else None
        server = FrontendListener(
            listener,
            frontend,
            paused=frontend in self.disabled_frontends,
            handle=partial(self.handle, listener),
            spawn=spawn,
            **{k: v for k, v in arguments.items() if k == "ssl_context"},
        )
        if self.cfg.workers > 1:
            server.max_accept = 1  # as gunicorn's own: share the accepts among the workers
        self.listeners.append(server)
        return server

    def _apply_disabled(self, disabled: frozenset[str]) -> None:
        self.disabled_frontends = disabled
        for server in self.listeners:
            if server.frontend in disabled:
                server.pause()
            else:
                server.resume()

    def handle(self, listener: socket.socket, client: socket.socket, addr: Any) -> None:
        listener_name = listener.getsockname()
        rest = b""
        session = None  # stick counters tracked by tcp-request connection rules
        tcp = self.tcp
        if tcp is not None:
            found = tcp.listener(listener_name)
            if found is not None and found.is_tcp:
                self._serve_tcp(tcp, found, client, addr)
                return
            if found is not None and (found.accept_proxy or found.frontend.connection_rules):
                try:
                    opened = tcp.prelude(client, addr, found, client.getsockname())
                except OSError:
                    opened = None
                if opened is None:
                    _close(client)
                    return
                addr, rest, session = opened
        tls_facts = None
        contexts = self.tls.get(listener_name)
        if contexts is not None:  # rule 10
            accepted = time.time()
            try:
                timeout = self.wsgi.client_timeouts(listener_name).client
                client, tls_facts = handshake(client, contexts, timeout)
            except (OSError, ValueError) as error:
                _close(client)  # a failed handshake: the connection closes, nothing to answer
                end_session(session)
                self._log_handshake_failure(addr, listener_name, accepted, error)
                return
        if (tls_facts is not None and tls_facts.alpn == "h2") or (
            self.h2_binds and _address_of(listener_name) in self.h2_binds
        ):
            self._serve_h2(client, addr, listener_name, session, tls_facts, rest)
            return
        connection = _Connection(self, client, addr, listener_name)
        private = _share(connection.base, session, tls_facts)
        if tls_facts is None:  # rule 13
            connection.base[CLIENT_CLOSED] = partial(client_closed, client)
        if rest:
            connection.reader.feed(rest)
        try:
            connection.serve()
        except OSError:
            pass  # the client went away or stalled past timeout client: nothing to answer
        except Exception:
            self.log.exception("unexpected error on a client connection")
        finally:
            _close(client)
            private.close()
            end_session(session)

    def _serve_h2(self, client: Any, addr: Any, listener_name: Any, session: Any,
                  tls_facts: TlsFacts | None, rest: bytes) -> None:
        """An HTTP/2 connection (rule 11)."""
        base = connection_environ(client, addr, listener_name)
        private = _share(base, session, tls_facts)
        try:
            serve_h2(self, client, listener_name, base, rest)
        except Exception:
            self.log.exception("unexpected error on an HTTP/2 connection")
        finally:
            _close(client)
            private.close()
            end_session(session)

    def _log_handshake_failure(self, addr: Any, listener_name: Any, accepted: float,
                               error: Exception) -> None:
        """Rule 10: one line in the frontend's log, HAProxy's words for why."""
        log = getattr(self.wsgi, "log_connection_error", None)
        if log is None:
            return
        message, empty = handshake_failure(error)
        try:
            log(_base_environ(addr, listener_name), accepted, message, empty)
        except Exception:  # a log line must never cost the worker
            self.log.exception("could not log a failed TLS handshake")

    def _serve_tcp(self, tcp: TcpService, listener: Listener, client: socket.socket,
                   addr: Any) -> None:
        """A connection of a ``mode tcp`` frontend (rule 8)."""
        try:
            tcp.serve(client, addr, listener, client.getsockname())
        except Exception:
            self.log.exception("unexpected error on a TCP connection")
        finally:
            _close(client)

    def notify(self) -> None:
        """gunicorn's heartbeat, every second, also while a stopping worker waits for its
        connections: HTTP/2 clients are told to go away (GOAWAY) once the worker stops."""
        super().notify()
        if not self.alive:
            drain_all()

    def count_request(self) -> bool:
        """Count one request; False when the worker must stop after it (``max_requests``)."""
        self.nr += 1
        if self.nr >= self.max_requests and self.alive:
            self.log.info("Autorestarting worker after current request.")
            self.alive = False
        return bool(self.alive)


class _Connection:
    """One client connection: its requests, served in order."""

    __slots__ = ("worker", "sock", "reader", "timeouts", "base", "began", "began_at")

    def __init__(self, worker: ProxyWorker, sock: Any, addr: Any, listener_name: Any) -> None:
        self.worker = worker
        self.sock = sock
        self.reader = ClientReader(sock, worker.request_limits)
        self.timeouts: ClientTimeouts = worker.wsgi.client_timeouts(listener_name)
        self.base = connection_environ(sock, addr, listener_name)
        # when the request being read began (the log's accept date and TR): the connection's
        # start for its first request, the first byte for the next ones
        self.began = time.monotonic()
        self.began_at = time.time()

    def serve(self) -> None:
        first = True
        # A connection accepted while the worker is told to stop still gets its first request
        # served (with connection: close): the client sent it to a live listener.
        while first or self.worker.alive:
            request = self._next_request(first)
            if request is None or not self._serve(request):
                return
            first = False
            self.began, self.began_at = time.monotonic(), time.time()

    def _set_timeout(self, timeout: float | None) -> None:
        self.reader.set_timeout(timeout)

    # -- reading a request --------------------------------------------------------------------

    def _next_request(self, first: bool) -> Request | None:
        """The next request, or None when the connection is to close (after the 408 or the
        error page that is due)."""
        reader = self.reader
        if not reader.ready and not reader.has_pending_input and not first:
            self._set_timeout(self.timeouts.idle)
            try:
                if not reader.fill(answered=True):
                    return None
            except TimeoutError:
                return None  # idle keep-alive connection: closed silently, as HAProxy
            self.began, self.began_at = time.monotonic(), time.time()
        if not reader.ready and reader.error is None and not self._read_head():
            return None
        if reader.ready:
            request = reader.ready.popleft()
            if request.error is None:
                return request
            error = request.error
        else:
            assert reader.error is not None
            error = reader.error
        page = _PAGES.get(error.status, _PAGES[400])
        _send_quietly(self.sock, page)
        self._log_refused(error.status, len(page))
        return None

    def _read_head(self) -> bool:
        """Read until a head is complete or broken; False when the connection is to close."""
        reader = self.reader
        limit = self.timeouts.request_head
        deadline = None if limit is None else time.monotonic() + limit
        while not reader.ready and reader.error is None:
            if deadline is not None:
                limit = deadline - time.monotonic()
                if limit <= 0:
                    self._refuse_slow_request()
                    return False
            self._set_timeout(limit)
            try:
                if not reader.fill():
                    return False
            except TimeoutError:
                self._refuse_slow_request()
                return False
        return True

    def _refuse_slow_request(self) -> None:
        _send_quietly(self.sock, _PAGES[408])
        self._log_refused(408, len(_PAGES[408]), empty=not self.reader.has_pending_input)

    def _log_refused(self, status: int, size: int, *, empty: bool = False) -> None:
        """Log a request the worker answered itself (HAProxy logs ``<BADREQ>``)."""
        log_refused = getattr(self.worker.wsgi, "log_refused", None)
        if log_refused is not None:
            head_ms = int((time.monotonic() - self.began) * 1000)
            log_refused(self.base, status, size, (self.began_at, head_ms), empty)

    # -- serving it ---------------------------------------------------------------------------

    def _serve(self, request: Request) -> bool:
        """Serve one request; True when the connection may serve another."""
        keep_going = self.worker.count_request()
        body: RequestBody | EmptyBody = (
            RequestBody(request, self.reader) if request.has_body else EMPTY_BODY
        )
        environ = self._environ(request, body)
        response = Response()
        if not keep_going:
            response.close = True
        self._set_timeout(self.timeouts.client)
        try:
            result = self.worker.wsgi(environ, response.start_response)
            try:
                if request.upgrade and isinstance(result, SwitchedBody):
                    self._tunnel(response, result)
                    return False
                response.write(self.reader, request, result)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
                # the request is over: what it left in its environ (its rules' Txn, its log
                # note) points back at the environ; emptying it frees them now, not at the
                # garbage collector's next pass over the whole heap
                environ.clear()
        except ClientGone:
            if request.error is not None and not response.head_sent:
                _send_quietly(self.sock, _PAGES.get(request.error.status, _PAGES[400]))
            return False
        except (UpstreamError, OSError):
            return False  # cut: the connection closes without a word, as HAProxy cuts it
        except Exception:
            if response.head_sent:
                self.worker.log.exception("error after the response started; connection cut")
            else:
                self.worker.log.exception("error while serving a request")
                _send_quietly(self.sock, _PAGES[500])
            return False
        if request.upgrade:
            self.reader.resume()  # no switch: what followed the request is the next one
        if response.close or not request.keep_alive:
            return False
        return body.is_consumed or self._drain(request, body)

    def _tunnel(self, response: Response, body: SwitchedBody) -> None:
        """Rule 7: the 101 head, then the tunnel, until either side is done."""
        ends = body.tunnel()
        response.write_switch(self.reader)
        tunnel = Tunnel(
            self.sock,
            ends.server,
            to_server=self.reader.take_held(),
            to_client=ends.from_server,
            timeout=ends.timeout,
        )
        body.on_abort(tunnel.cut)
        report = tunnel.run()
        body.count_tunnelled(report.up, report.down, report.ending)

    def _drain(self, request: Request, body: RequestBody | EmptyBody) -> bool:
        """Read and drop the rest of a body the app did not read (rule 6)."""
        if request.expects_continue and not body.continue_sent:
            return False
        reader = self.reader
        while True:
            request.chunks.clear()
            if request.complete:
                return request.error is None
            if request.error is not None or not reader.fill():
                return False

    def _environ(self, request: Request, body: RequestBody | EmptyBody) -> dict[str, Any]:
        environ = request_environ(
            self.base, request.fields, request.method, request.target.decode("latin-1"),
            "HTTP/" + request.version, body, (self.began, self.began_at),
        )
        if request.upgrade:
            environ[UPGRADE_OFFER] = True
        return environ


def _share(base: dict[str, Any], session: Any, tls_facts: TlsFacts | None) -> PrivatePools:
    """Put in a connection's base environ what its stages give every request of it: the stick
    counters its connection rules track, its TLS facts (rule 10), its private server
    connections (rule 12, returned: the connection closes them when it ends)."""
    if session is not None:
        base[SESSION_STICK] = session.stick  # every request counts there
    if tls_facts is not None:
        base[TLS_FACTS] = tls_facts
        base["wsgi.url_scheme"] = "https"
    private = base[PRIVATE] = PrivatePools()
    return private


def connection_environ(sock: Any, addr: Any, listener_name: Any) -> dict[str, Any]:
    """What every request of a connection shares, HTTP/1.1 or HTTP/2."""
    base = _base_environ(addr, listener_name)
    base[LOCAL_ADDRESS] = _local_address(sock, listener_name)
    return base


def _address_of(listener_name: Any) -> tuple[str, int] | None:
    if isinstance(listener_name, tuple) and len(listener_name) >= 2:
        return str(listener_name[0]), int(listener_name[1])
    return None


def _base_environ(addr: Any, listener_name: Any) -> dict[str, Any]:
    """What every request of a connection shares."""
    if isinstance(listener_name, tuple):
        server_name, server_port = str(listener_name[0]), str(listener_name[1])
    else:
        server_name, server_port = str(listener_name), ""
    if isinstance(addr, tuple):
        remote_addr, remote_port = str(addr[0]), str(addr[1])
    else:
        remote_addr, remote_port = "", ""
    return {
        "SERVER_NAME": server_name,
        "SERVER_PORT": server_port,
        "REMOTE_ADDR": remote_addr,
        "REMOTE_PORT": remote_port,
        "SCRIPT_NAME": "",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }


def _local_address(client: Any, listener_name: Any) -> str:
    """The address the client connected to (HAProxy's ``dst``): the listener's, or for a
    wildcard listener the connection's own (one ``getsockname`` per connection)."""
    host = str(listener_name[0]) if isinstance(listener_name, tuple) else ""
    if host not in ("0.0.0.0", "::", ""):
        return host
    try:
        return str(client.getsockname()[0])
    except (OSError, IndexError, TypeError):
        return host


def _send_quietly(client: socket.socket, data: bytes) -> None:
    try:
        client.settimeout(1.0)
        client.sendall(data)
    except OSError:
        pass


def _close(client: socket.socket) -> None:
    try:
        client.close()
    except OSError:
        pass
