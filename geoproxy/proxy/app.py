"""The WSGI proxy app: one request, from frontend to server and back (DESIGN.md's seven steps).

Rules:
1. Nothing here talks to Redis or to sockets directly: fleet state (``FleetState``) and the
   transport (``geoproxy.forward``) do; this module sequences them.
2. A lease taken is released exactly once: by the error path that gives up on it, or by the
   response body's ``close()``, which gunicorn calls whatever happens to the client.
3. A request whose bytes reached a server is never sent again (invariant 5): only
   ``ConnectFailed`` leads to a retry.
4. No exception reaches gunicorn as a traceback for the client: upstream failures become
   HAProxy's 502/503/504 pages; a failure after the response started cuts the client connection,
   as HAProxy does.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from geoproxy.balance.policy import PickMode, Ranking, RequestKeys
from geoproxy.balance.rank import eligible
from geoproxy.balance.view import BackendView, ServerView
from geoproxy.config.model import Config
from geoproxy.errors import ClientGone, ConnectFailed, UpstreamError
from geoproxy.forward import KEEP, UnforwardableRequest, UpstreamResponse, build_request_head, send
from geoproxy.persistence import KEEP as PERSISTENCE_KEEP
from geoproxy.persistence import NO_PERSISTENCE, Persistence, rewrite_response
from geoproxy.proxy.errorpages import ErrorPage
from geoproxy.proxy.runtime import (
    BackendRuntime,
    FrontendRuntime,
    build_backends,
    build_frontends,
)
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


class ProxiedBody:
    """The response body handed to gunicorn: streams the server's body, and on ``close()``
    returns the connection to its pool and releases the lease."""

    __slots__ = ("_response", "_fleet", "_lease", "_closed")

    def __init__(self, response: UpstreamResponse, fleet: FleetState, lease: Lease) -> None:
        self._response = response
        self._fleet = fleet
        self._lease = lease
        self._closed = False

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._response)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._response.close()
        finally:
            self._fleet.release(self._lease)


class ProxyApp:
    """The WSGI callable of one worker process."""

    def __init__(self, config: Config, fleet: FleetState, rng: random.Random | None = None) -> None:
        self.config = config
        self.fleet = fleet
        self._backends = build_backends(config, rng or random.Random())
        frontends = build_frontends(config, self._backends)
        self._by_address: dict[tuple[str, str], FrontendRuntime] = {}
        self._by_port: dict[str, FrontendRuntime] = {}
        for frontend in frontends:
            for bind in frontend.config.binds:
                self._by_address[(bind.host, str(bind.port))] = frontend
                self._by_port.setdefault(str(bind.port), frontend)
        self._first_frontend = frontends[0]
        # per backend: the last snapshot seen and its eligible servers (snapshots are
        # immutable and replaced on each heartbeat, so this is computed twice a second)
        self._eligible: dict[str, tuple[BackendView, tuple[ServerView, ...]]] = {}

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

    def frontend_for(self, environ: Environ) -> FrontendRuntime:
        """The frontend whose ``bind`` accepted this connection."""
        port = environ.get("SERVER_PORT", "")
        return (
            self._by_address.get((environ.get("SERVER_NAME", ""), port))
            or self._by_port.get(port)
            or self._first_frontend
        )

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        frontend = self.frontend_for(environ)
        try:
            if environ["REQUEST_METHOD"] == "CONNECT":
                return self._answer(start_response, frontend.errors.page(405))
            backend = frontend.backend_for(environ)
            if backend is None:
                return self._answer(start_response, frontend.errors.page(503))
            return self._proxy(environ, start_response, frontend, backend)
        except ClientGone:
            raise
        except Exception:
            log.exception("internal error while proxying %s", environ.get("RAW_URI"))
            return self._answer(start_response, frontend.errors.page(500))

    # -- one request -------------------------------------------------------------------------

    def _proxy(
        self,
        environ: Environ,
        start_response: StartResponse,
        frontend: FrontendRuntime,
        backend: BackendRuntime,
    ) -> Iterable[bytes]:
        sticky = backend.persistence
        view = self.fleet.view(backend.config.name)
        persistence = NO_PERSISTENCE
        stick = None
        now = 0.0
        if sticky.is_active:
            now = time.time()
            persistence = sticky.read(environ, view, now)
            stick = sticky.stick_request(environ, view, direct=persistence.is_direct)
        lease = None
        if persistence.server is not None:
            lease = self.fleet.acquire(
                backend.config.name,
                Ranking(PickMode.FIRST_WITH_ROOM, (persistence.server,)),
                stick,
            )
        if lease is None:
            lease = self._acquire(environ, backend, stick=stick)
        if lease is None:
            return self._error(start_response, frontend, backend, 503)
        forwardfor = (backend.forwardfor or frontend.forwardfor)(environ)
        upstream_cookie = persistence.upstream_cookie
        try:
            head, framing = build_request_head(
                environ,
                cookie=KEEP if upstream_cookie is PERSISTENCE_KEEP else upstream_cookie,
                append=(forwardfor,) if forwardfor else (),
                server_close=backend.server_close,
            )
        except UnforwardableRequest:
            self.fleet.release(lease)
            return self._answer(start_response, frontend.errors.page(400))
        try:
            response, lease = self._send(environ, backend, lease, head, framing)
        except UpstreamError as error:
            return self._error(start_response, frontend, backend, error.status)
        headers = response.headers
        if sticky.is_active:
            headers = self._persist_response(environ, backend, persistence, lease, response, now)
        start_response(f"{response.status} {response.reason}", headers)
        return ProxiedBody(response, self.fleet, lease)

    def _persist_response(
        self,
        environ: Environ,
        backend: BackendRuntime,
        persistence: Persistence,
        lease: Lease,
        response: UpstreamResponse,
        now: float,
    ) -> list[tuple[str, str]]:
        """The response headers after cookie persistence; learns ``stick store-response``
        entries from the server's own headers."""
        sticky = backend.persistence
        entries = sticky.response_entries(environ, response.headers)
        if entries:
            self.fleet.stick_store(entries, lease.server)
        answered = self.fleet.view(backend.config.name).server(lease.server)
        if answered is None or persistence.policy is None:
            return response.headers
        rewritten = rewrite_response(persistence, answered, response.status, response.headers, now)
        return rewritten.headers

    def _acquire(
        self,
        environ: Environ,
        backend: BackendRuntime,
        avoid: str | None = None,
        stick: StickRequest | None = None,
    ) -> Lease | None:
        view = self.fleet.view(backend.config.name)
        cached = self._eligible.get(backend.config.name)
        if cached is not None and cached[0] is view:
            candidates = cached[1]
        else:
            candidates = eligible(view, backend.config.allbackups)
            self._eligible[backend.config.name] = (view, candidates)
        if avoid is not None and len(candidates) > 1:
            candidates = tuple(server for server in candidates if server.name != avoid)
        if not candidates and stick is None:
            return None
        policy = backend.policy
        ranking = Ranking(PickMode.FIRST_WITH_ROOM, ())
        if candidates:
            keys = _request_keys(environ) if policy.needs_request else None
            ranking = policy.rank(candidates, keys)
        return self.fleet.acquire(backend.config.name, ranking, stick)

    def _acquire_same(self, backend: BackendRuntime, server: str) -> Lease | None:
        view = self.fleet.view(backend.config.name).server(server)
        if view is None or not view.accepts_persistent:
            return None
        return self.fleet.acquire(backend.config.name, Ranking(PickMode.FIRST_WITH_ROOM, (view,)))

    def _send(
        self, environ: Environ, backend: BackendRuntime, lease: Lease, head: bytes, framing: Any
    ) -> tuple[UpstreamResponse, Lease]:
        """Send the request, retrying on connection failures as HAProxy does: ``retries`` more
        attempts on the same server, the last one on another server with ``option redispatch``.
        Raises the last ``UpstreamError``; every lease not returned has been released."""
        body = environ["wsgi.input"] if framing.has_body else None
        is_head = environ["REQUEST_METHOD"] == "HEAD"
        retries_left = backend.config.retries
        current: Lease | None = lease
        while True:
            assert current is not None
            try:
                response = send(
                    backend.pools[current.server],
                    head,
                    framing,
                    body,
                    connect_timeout=backend.connect_timeout,
                    server_timeout=backend.server_timeout,
                    is_head=is_head,
                )
                return response, current
            except ConnectFailed:
                self.fleet.release(current)
                if retries_left == 0:
                    raise
                retries_left -= 1
                failed = current.server
                if retries_left == 0 and backend.config.redispatch:
                    current = self._acquire(environ, backend, avoid=failed)
                else:
                    time.sleep(backend.turnaround)
                    current = self._acquire_same(backend, failed)
                if current is None:
                    raise
            except BaseException:
                self.fleet.release(current)
                raise

    # -- answers geoproxy makes itself ------------------------------------------------------

    def _error(
        self,
        start_response: StartResponse,
        frontend: FrontendRuntime,
        backend: BackendRuntime,
        status: int,
    ) -> Iterable[bytes]:
        page = backend.errors.get(status) or frontend.errors.page(status)
        return self._answer(start_response, page)

    @staticmethod
    def _answer(start_response: StartResponse, page: ErrorPage) -> Iterable[bytes]:
        headers = list(page.headers)
        if page.close:
            headers.append(("Connection", "close"))
        start_response(page.status, headers)
        return [page.body]


def _request_keys(environ: Environ) -> RequestKeys:
    def header(name: str) -> str | None:
        value: str | None = environ.get("HTTP_" + name.upper().replace("-", "_"))
        return value

    return RequestKeys(
        source=environ.get("REMOTE_ADDR", ""),
        uri=environ.get("RAW_URI") or environ.get("PATH_INFO", "/"),
        header=header,
    )
