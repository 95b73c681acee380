"""Where the stats pages hang in a worker: one ``StatsApp`` per frontend that enables stats.

Rules:
1. Built once per worker, from the configuration; the proxy asks ``serves(environ)`` only on
   frontends that have a page, so other frontends pay one dict lookup at most.
2. The metrics path is ``stats metrics-uri`` when given; otherwise ``/metrics`` on a listener
   that serves nothing but stats (no server of its own and no backend to send to), never on a
   frontend whose ``/metrics`` may belong to the application.
3. The page needs the fleet's state in Redis; a fleet state without it gets no page.
4. A backend with ``stats`` keywords serves the page to the requests routed to it, as HAProxy
   does (``mount_backend_stats``); its metrics path is only ``stats metrics-uri``'s.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from geoproxy import __version__
from geoproxy.admin.app import StatsApp, StatsSite
from geoproxy.admin.prometheus import CONTENT_TYPE, render_metrics
from geoproxy.admin.rows import with_frontends
from geoproxy.balance.view import AdminState
from geoproxy.config.model import Config, Frontend, ProxyMode
from geoproxy.state.frontends import PROXY, STATS
from geoproxy.state.redis_store import REDIS_ERRORS, RedisFleetState
from geoproxy.state.store import FleetReport, FleetState

StatsApps = dict[str, StatsApp]
DEFAULT_METRICS_URI = "/metrics"


@dataclass(frozen=True, slots=True)
class RedisControl:
    """``FleetControl`` on the worker's own fleet state (its Redis client)."""

    fleet: RedisFleetState

    def fleet_report(self) -> FleetReport:
        return self.fleet.fleet_report()

    def set_admin(self, backend: str, server: str, state: AdminState) -> None:
        self.fleet.health.set_admin(backend, server, state)

    def set_weight(self, backend: str, server: str, weight: int) -> None:
        self.fleet.health.set_weight(backend, server, weight)


def serves_only_stats(frontend: Frontend, config: Config) -> bool:
    """No ``use_backend`` and no default backend with servers: a dedicated stats listener."""
    if frontend.use_backends:
        return False
    backend = config.backend(frontend.default_backend) if frontend.default_backend else None
    return backend is None or not backend.servers


def frontend_kinds(config: Config) -> dict[str, str]:
    """Every frontend's name and kind, as ``gp:frontends`` records them for ``geoproxy top``:
    ``stats`` for a listener serving only the page (its BACKEND is UP), else ``proxy``."""
    return {
        f.name: STATS if f.stats is not None and serves_only_stats(f, config) else PROXY
        for f in config.frontends
    }


def configuration_order(config: Config) -> tuple[str, ...]:
    """Proxy names in the order their sections appear in the file."""
    sections = [(f.location.line, f.name) for f in config.frontends]
    sections += [(b.location.line, b.name) for b in config.backends]
    return tuple(dict.fromkeys(name for _, name in sorted(sections)))


def mount_stats(config: Config, fleet: FleetState) -> StatsApps:
    if not isinstance(fleet, RedisFleetState):
        return {}
    control = RedisControl(fleet)
    order = configuration_order(config)
    frontends = tuple(frontend.name for frontend in config.frontends)
    applets = tuple(name for name, kind in frontend_kinds(config).items() if kind == STATS)
    tcp = tuple(dict.fromkeys(
        [f.name for f in config.frontends if f.mode is ProxyMode.TCP]
        + [b.name for b in config.backends if b.mode is ProxyMode.TCP]))
    apps: StatsApps = {}
    for frontend in config.frontends:
        stats = frontend.stats
        if stats is None:
            continue
        metrics = stats.metrics_uri
        if metrics is None and serves_only_stats(frontend, config):
            metrics = DEFAULT_METRICS_URI
        site = StatsSite(
            name=frontend.name,
            order=order,
            frontends=frontends,
            version=None if stats.hide_version else __version__,
            metrics_uri=metrics,
            applets=applets,
            tcp=tcp,
        )
        apps[frontend.name] = StatsApp(stats, site, control)
    return apps


def mount_backend_stats(config: Config, fleet: FleetState) -> StatsApps:
    """Rule 4: one page per backend that has ``stats`` keywords (not the backend half of a
    ``listen``, whose frontend half already serves it)."""
    if not isinstance(fleet, RedisFleetState):
        return {}
    control = RedisControl(fleet)
    order = configuration_order(config)
    frontends = tuple(frontend.name for frontend in config.frontends)
    apps: StatsApps = {}
    for backend in config.backends:
        stats = backend.stats
        half = config.frontend(backend.name)
        if stats is None or (half is not None and half.location == backend.location):
            continue
        site = StatsSite(
            name=backend.name,
            order=order,
            frontends=frontends,
            version=None if stats.hide_version else __version__,
            metrics_uri=stats.metrics_uri,
        )
        apps[backend.name] = StatsApp(stats, site, control)
    return apps


Service = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def metrics_service(config: Config, fleet: FleetState) -> Service | None:
    """``http-request use-service prometheus-exporter``: the fleet's metrics, as the stats
    listener's ``/metrics`` serves them, whatever the request's path."""
    if not isinstance(fleet, RedisFleetState):
        return None
    control = RedisControl(fleet)
    frontends = tuple(frontend.name for frontend in config.frontends)

    def serve(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        try:
            body = render_metrics(with_frontends(control.fleet_report(), frontends))
            status, content_type = "200 OK", CONTENT_TYPE
        except REDIS_ERRORS:
            body = b"the fleet's state is unreachable (Redis)\n"
            status, content_type = "503 Service Unavailable", "text/plain"
        start_response(status, [("content-type", content_type),
                                ("content-length", str(len(body)))])
        return [body]

    return serve
