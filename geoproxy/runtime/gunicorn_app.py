"""Embedding gunicorn: one master, gevent workers running ``ProxyApp``.

Where each piece of per-process state is made (gunicorn's hooks are the places for it):
- the master registers the configured servers in Redis once, and reaps a worker's in-flight
  counts the moment that worker exits (``child_exit``), whatever killed it; its greenlets
  serve the ``stats socket`` and keep the listening sockets of disabled frontends out of
  LISTEN (``frontend_gate.py``), and a new worker ends its copies of them (``post_fork``);
- each worker, after fork and gevent's monkey-patching, opens its own Redis client, builds its
  local snapshot and its pools (``load``), and starts its background loops
  (``post_worker_init``); on exit it flushes its pending releases (``worker_exit``).
SIGHUP re-reads the configuration: a configuration with errors is refused and the running one
stays, its workers untouched (HAProxy's old process serves on); a valid one is registered and
gunicorn replaces the workers gracefully. If Redis cannot be reached then, the reload goes on
all the same (DESIGN.md invariant 4) and the new workers register it when Redis answers.
"""

from __future__ import annotations

import contextlib
import logging
import os
import resource
import socket
import sys
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any

from gunicorn import sock as gunicorn_sock
from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter

from geoproxy.admin.mount import frontend_kinds
from geoproxy.admin.runtime_api.context import HostInfo
from geoproxy.config import load
from geoproxy.config.model import Config
from geoproxy.errors import ConfigError
from geoproxy.health.checker import HealthChecker
from geoproxy.proxy.app import ProxyApp
from geoproxy.resolve.resolver import Resolver
from geoproxy.resolve.startup import seed_addresses
from geoproxy.runtime.frontend_gate import FrontendGate, HostFirstOps, pause_listeners
from geoproxy.runtime.stats_socket import BoundSocket, RuntimeApiServer
from geoproxy.state.frontends import FrontendDirectory
from geoproxy.state.redis_store import REDIS_ERRORS, RedisFleetState

log = logging.getLogger("geoproxy")

WORKER_CLASS = "geoproxy.runtime.worker.ProxyWorker"


HOSTNAME_ENV = "GEOPROXY_HOSTNAME"


def worker_id(pid: int) -> str:
    """The id under which a worker counts its requests in Redis: unique among live workers of
    the fleet, and computable by the master from the pid alone. The host part is
    ``$GEOPROXY_HOSTNAME`` when set (hosts that share a name, containers), else the hostname."""
    return f"{os.environ.get(HOSTNAME_ENV) or socket.gethostname()}:{pid}"


def bind_addresses(config: Config) -> list[str]:
    addresses = []
    for frontend in config.frontends:
        for bind in frontend.binds:
            host = f"[{bind.host}]" if ":" in bind.host else bind.host
            addresses.append(f"{host}:{bind.port}")
    return addresses


class GeoproxyApplication(BaseApplication):  # type: ignore[misc]
    """``listeners``: the frontends' sockets, bound and listening already (``listeners.py``);
    gunicorn serves on them instead of binding (empty: gunicorn binds ``bind`` itself)."""

    def __init__(
        self,
        config: Config,
        redis_url: str,
        workers: int,
        listeners: Sequence[socket.socket] = (),
        stats_sockets: Sequence[BoundSocket] = (),
    ) -> None:
        self.config = config
        self.redis_url = redis_url
        self.workers = workers
        self._listeners = list(listeners)
        self._stats_sockets = list(stats_sockets)
        self._master_fleet: RedisFleetState | None = None
        # the master's greenlets, which a forked worker abandons (post_fork)
        self._gate: FrontendGate | None = None
        self._runtime_api_server: RuntimeApiServer | None = None
        self._registered = True  # False: the last reload could not reach Redis
        super().__init__(usage=None, prog="geoproxy")

    # -- gunicorn's configuration -------------------------------------------------------------

    def load_config(self) -> None:
        settings: dict[str, Any] = {
            "bind": bind_addresses(self.config),
            "workers": self.workers,
            "worker_class": WORKER_CLASS,
            "worker_connections": self.config.global_.maxconn or 10000,
            "keepalive": 5,
            "timeout": 30,
            "graceful_timeout": 10,
            "proc_name": "geoproxy",
            "accesslog": None,
            "errorlog": "-",
            "loglevel": "info",
            # (request limits are tune.bufsize's and tune.http.maxhdr's: geoproxy's worker
            # parses requests itself; gunicorn's limit_request_* settings are not read)
            # gunicorn 27's control socket would land in the user's home; geoproxy's runtime
            # state is in Redis and its commands talk to Redis.
            "control_socket_disable": True,
            # A proxy relays these headers; gunicorn must not interpret them for itself.
            "forwarded_allow_ips": "",
            "secure_scheme_headers": {},
            "post_fork": self._post_fork,
            "post_worker_init": _post_worker_init,
            "worker_exit": _worker_exit,
            "child_exit": self._child_exit,
        }
        for key, value in settings.items():
            self.cfg.set(key, value)

    def load(self) -> ProxyApp:
        """Build the WSGI app in a worker (after fork)."""
        fleet = RedisFleetState(self.redis_url, worker_id(os.getpid()))
        fleet.attach(self.config.backends, register=not self._registered)
        return ProxyApp(self.config, fleet)

    # -- the master's part ----------------------------------------------------------------------

    def register(self) -> None:
        """Write the configured servers, and the frontends' names for ``geoproxy top``, to
        Redis; called once by the master before workers start, and again after each
        successful reload."""
        if self._master_fleet is not None:
            self._master_fleet.close()
        self._master_fleet = RedisFleetState(self.redis_url, worker_id(os.getpid()))
        self._master_fleet.register(self.config.backends)
        seed_addresses(self._master_fleet.dns, self.config)  # init-addr, before any worker
        frontends = FrontendDirectory(self.redis_url)
        try:
            frontends.register(frontend_kinds(self.config))
        finally:
            frontends.close()

    def _child_exit(self, arbiter: Any, worker: Any) -> None:
        if self._master_fleet is None:
            return
        try:
            reaped = self._master_fleet.reap([worker_id(worker.pid)])
        except Exception as error:  # Redis away: the heartbeat TTL reaps it later
            log.warning("could not reap worker %s at once: %s", worker.pid, error)
        else:
            if reaped:
                log.info("reaped the in-flight counts of exited worker %s", worker.pid)

    def reread(self) -> bool:
        """Read the configuration file again; True when it is valid and now in use (and
        registered), False when it was refused and the running one stays."""
        try:
            config = load(self.config.path)
        except ConfigError as error:
            log.error(
                "configuration %s refused on reload; the running one stays:\n%s",
                self.config.path,
                error,
            )
            return False
        except OSError as error:
            log.error(
                "configuration %s unreadable on reload (%s); the running one stays",
                self.config.path,
                error,
            )
            return False
        for warning in config.warnings:
            log.warning("%s", warning)
        self.config = config
        try:
            self.register()
        except REDIS_ERRORS as error:
            log.warning(
                "configuration %s loaded, but Redis is unreachable (%s): the new workers "
                "register it when Redis answers",
                self.config.path,
                error,
            )
            self._registered = False
        else:
            self._registered = True
        return True

    def run(self) -> None:
        master = os.getpid()
        gate: FrontendGate | None = None
        runtime_api: RuntimeApiServer | None = None
        try:
            arbiter = GeoproxyArbiter(self)
            if self._listeners:
                fds = [listener.detach() for listener in self._listeners]
                arbiter.LISTENERS = gunicorn_sock.create_sockets(arbiter.cfg, arbiter.log, fds)
                self._listeners = []
            gate = self._gate = self._frontend_gate(arbiter)
            runtime_api = self._runtime_api_server = self._runtime_api(gate)
            arbiter.run()
        except RuntimeError as error:
            print(f"\nError: {error}\n", file=sys.stderr, flush=True)
            sys.exit(1)
        finally:
            # gunicorn's workers leave through this stack too: only the master stops these
            if os.getpid() == master:
                if runtime_api is not None:
                    runtime_api.stop()
                if gate is not None:
                    gate.stop()

    def forking(self) -> AbstractContextManager[None]:
        """Around a fork of the master: no Redis call of its frontend gate in flight."""
        return self._gate.held() if self._gate is not None else contextlib.nullcontext()

    def _post_fork(self, arbiter: Any, worker: Any) -> None:
        """In a new worker, before it runs anything: the master's greenlets came along with
        the fork (the master is gevent-patched); they must not serve here."""
        if self._runtime_api_server is not None:
            self._runtime_api_server.abandon()
        if self._gate is not None:
            self._gate.abandon()

    def _frontend_gate(self, arbiter: Arbiter) -> FrontendGate:
        """The master's part of disabled frontends (``frontend_gate.py``): this host's
        listening sockets follow the fleet's state, from before the first worker starts."""
        backlog = arbiter.cfg.backlog

        def apply(disabled: frozenset[str]) -> None:
            pause_listeners(arbiter.LISTENERS, self.config, disabled, backlog)

        gate = FrontendGate(self.redis_url, apply)
        gate.start()
        return gate

    def _runtime_api(self, gate: FrontendGate) -> RuntimeApiServer | None:
        """The ``stats socket`` server, in the master (greenlets that never block the
        arbiter); its frontend commands hold on this host's listeners before they answer."""
        if not self._stats_sockets:
            return None
        host = HostInfo(
            pid=os.getpid(),
            started=time.time(),
            workers=self.workers,
            node=os.environ.get(HOSTNAME_ENV) or socket.gethostname(),
            ulimit_n=resource.getrlimit(resource.RLIMIT_NOFILE)[0],
        )
        url = self.redis_url
        server = RuntimeApiServer(
            self._stats_sockets, lambda: self.config, lambda: HostFirstOps(url, gate), host
        )
        server.start()
        return server


class GeoproxyArbiter(Arbiter):  # type: ignore[misc]
    """gunicorn's arbiter, but a SIGHUP whose configuration is refused changes nothing: without
    this, gunicorn would replace every worker (with the old configuration) all the same; and a
    worker is forked while the master's frontend gate is idle (``frontend_gate.py`` rule 6)."""

    app: GeoproxyApplication

    def handle_hup(self) -> None:
        if self.app.reread():
            super().handle_hup()

    def spawn_worker(self) -> Any:
        with self.app.forking():  # (in the new worker, left only by its SystemExit)
            return super().spawn_worker()


def _post_worker_init(worker: Any) -> None:
    worker.geoproxy_checker = start_background(worker.wsgi, worker_id(os.getpid()))
    worker.geoproxy_resolver = start_resolver(worker.wsgi, worker_id(os.getpid()))


def _worker_exit(server: Any, worker: Any) -> None:
    checker = getattr(worker, "geoproxy_checker", None)
    if isinstance(checker, HealthChecker):
        checker.stop()
    resolver = getattr(worker, "geoproxy_resolver", None)
    if isinstance(resolver, Resolver):
        resolver.stop()
    app = getattr(worker, "wsgi", None)
    if isinstance(app, ProxyApp):
        app.fleet.stop()


def start_background(app: ProxyApp, checker_id: str) -> HealthChecker | None:
    """Start a worker's background loops: the fleet state's flusher and heartbeat, and its
    share of the fleet's health checks."""
    app.fleet.start()
    if not isinstance(app.fleet, RedisFleetState):
        return None
    checker = HealthChecker(app.fleet.health, app.config.backends, checker_id,
                            address_of=_resolved_address(app))
    checker.start()
    return checker


def start_resolver(app: ProxyApp, holder: str) -> Resolver | None:
    """A worker's share of the fleet's run-time resolution (``resolvers``), if any."""
    if not isinstance(app.fleet, RedisFleetState):
        return None
    resolver = Resolver(app.fleet.dns, app.config, holder)
    if not resolver.has_work:
        return None
    resolver.start()
    return resolver


def _resolved_address(app: ProxyApp) -> Any:
    """Where a server under run-time resolution is now: its snapshot's address ('' when it has
    none), None for a server whose configured address stands."""

    def address_of(backend: str, server: str) -> str | None:
        view = app.fleet.view(backend).server(server)
        return view.address if view is not None else None

    return address_of
