"""Prometheus text format for the fleet, with the metric names of HAProxy's own exporter
(``haproxy_server_*``, ``haproxy_backend_*``, ``haproxy_frontend_*``) where they apply.

Rules:
1. Figures are fleet-wide: each scrape reads Redis once (one ``FleetReport``) and a fresh
   registry renders it, so every host answers the same numbers and no process keeps series of
   its own.
2. Names, label names (``proxy``, ``server``, ``state``) and meanings follow HAProxy 2.6's
   exporter; ``geoproxy_*`` metrics are geoproxy's own (live workers per host).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from geoproxy.admin.rows import server_status
from geoproxy.state.store import BackendReport, FleetReport, FrontendReport, ServerReport

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_SERVER_STATES = ("DOWN", "UP", "MAINT", "DRAIN", "NOLB")

Figure = Callable[[ServerReport], float]

# (name without prefix, counter?, help, figure) for haproxy_server_*
_SERVER: tuple[tuple[str, bool, str, Figure], ...] = (
    ("current_queue", False, "Number of current queued connections.", lambda s: s.queued),
    ("max_queue", False, "Highest value of queued connections encountered since process "
     "started.", lambda s: s.max_queued),
    ("current_sessions", False, "Number of current sessions on the frontend, backend or "
     "server", lambda s: s.inflight),
    ("max_sessions", False, "Highest value of current sessions encountered since process "
     "started", lambda s: s.max_inflight),
    ("limit_sessions", False, "Frontend/listener/server's maxconn, backend's fullconn",
     lambda s: s.maxconn),
    ("sessions", True, "Total number of sessions since process started", lambda s: s.total),
    ("bytes_in", True, "Total number of request bytes since process started",
     lambda s: s.bytes_in),
    ("bytes_out", True, "Total number of response bytes since process started",
     lambda s: s.bytes_out),
    ("connection_errors", True, "Total number of failed connections to server since the "
     "worker process started", lambda s: s.err_conn),
    ("response_errors", True, "Total number of invalid responses since the worker process "
     "started", lambda s: s.err_resp),
    ("retry_warnings", True, "Total number of server connection retries since the worker "
     "process started", lambda s: s.retries),
    ("redispatch_warnings", True, "Total number of server redispatches due to connection "
     "failures since the worker process started", lambda s: s.redispatches),
    ("weight", False, "Server's effective weight, or sum of active servers' effective weights "
     "for a backend", lambda s: s.weight),
    ("check_failures", True, "Total number of failed individual health checks per "
     "server/backend, since the worker process started", lambda s: s.check_failures),
    ("check_up_down", True, "Total number of failed checks causing UP to DOWN server "
     "transitions, per server/backend, since the worker process started", lambda s: s.downs),
    ("downtime_seconds", True, "Total time spent in DOWN state, for server or backend",
     lambda s: s.downtime),
    ("queue_limit", False, "Limit on the number of connections in queue, for servers only "
     "(maxqueue argument)", lambda s: s.maxqueue),
    ("max_session_rate", False, "Highest value of sessions per second observed since the "
     "worker process started", lambda s: s.rate_max),
    ("loadbalanced", True, "Total number of requests routed by load balancing since the "
     "worker process started (ignores queue pop and stickiness)", lambda s: s.total),
)


def _server_families(backends: Iterable[BackendReport]) -> Iterator[Metric]:
    labels = ["proxy", "server"]
    for name, counter, text, figure in _SERVER:
        family: Metric
        if counter:
            family = CounterMetricFamily(f"haproxy_server_{name}", text, labels=labels)
        else:
            family = GaugeMetricFamily(f"haproxy_server_{name}", text, labels=labels)
        for backend in backends:
            for server in backend.servers:
                family.add_metric([backend.name, server.name], figure(server))
        yield family
    status = GaugeMetricFamily("haproxy_server_status", "Current status of the service, per "
                               "state label value.", labels=["proxy", "server", "state"])
    last_change = GaugeMetricFamily("haproxy_server_check_last_change_seconds", "How long ago "
                                    "the last server state changed, in seconds", labels=labels)
    for backend in backends:
        for server in backend.servers:
            word = server_status(server).split(" ", 1)[0]
            current = {"no": "UP"}.get(word, word)
            for state in _SERVER_STATES:
                status.add_metric([backend.name, server.name, state], float(state == current))
            if server.since_change is not None:
                last_change.add_metric([backend.name, server.name], server.since_change)
    yield status
    yield last_change


def _backend_families(backends: Iterable[BackendReport]) -> Iterator[Metric]:
    def gauge(name: str, text: str) -> GaugeMetricFamily:
        return GaugeMetricFamily(f"haproxy_backend_{name}", text, labels=["proxy"])

    def counter(name: str, text: str) -> CounterMetricFamily:
        return CounterMetricFamily(f"haproxy_backend_{name}", text, labels=["proxy"])

    families: dict[str, tuple[GaugeMetricFamily | CounterMetricFamily,
                              Callable[[BackendReport], float]]] = {
        "current_queue": (gauge("current_queue", "Number of current queued connections."),
                          lambda b: b.queued),
        "max_queue": (gauge("max_queue", "Highest value of queued connections encountered "
                            "since process started."), lambda b: b.max_queued),
        "current_sessions": (gauge("current_sessions", "Number of current sessions on the "
                                   "frontend, backend or server"),
                             lambda b: sum(s.inflight for s in b.servers)),
        "max_sessions": (gauge("max_sessions", "Highest value of current sessions encountered "
                               "since process started"), lambda b: b.max_inflight),
        "sessions": (counter("sessions", "Total number of sessions since process started"),
                     lambda b: sum(s.total for s in b.servers)),
        "bytes_in": (counter("bytes_in", "Total number of request bytes since process "
                             "started"), lambda b: sum(s.bytes_in for s in b.servers)),
        "bytes_out": (counter("bytes_out", "Total number of response bytes since process "
                              "started"), lambda b: sum(s.bytes_out for s in b.servers)),
        "connection_errors": (counter("connection_errors", "Total number of failed "
                                      "connections to server since the worker process "
                                      "started"), lambda b: sum(s.err_conn for s in b.servers)),
        "response_errors": (counter("response_errors", "Total number of invalid responses "
                                    "since the worker process started"),
                            lambda b: sum(s.err_resp for s in b.servers)),
        "active_servers": (gauge("active_servers", "Total number of active UP servers with a "
                                 "non-zero weight"), lambda b: _usable(b, backup=False)),
        "backup_servers": (gauge("backup_servers", "Total number of backup UP servers with a "
                                 "non-zero weight"), lambda b: _usable(b, backup=True)),
        "max_session_rate": (gauge("max_session_rate", "Highest value of sessions per second "
                                   "observed since the worker process started"),
                             lambda b: b.rate_max),
    }
    for backend in backends:
        for family, figure in families.values():
            family.add_metric([backend.name], figure(backend))
    yield from (family for family, _ in families.values())
    status = GaugeMetricFamily("haproxy_backend_status", "Current status of the service, per "
                               "state label value.", labels=["proxy", "state"])
    for backend in backends:
        up = _usable(backend, backup=False) + _usable(backend, backup=True) > 0
        status.add_metric([backend.name, "DOWN"], float(not up))
        status.add_metric([backend.name, "UP"], float(up))
    yield status


def _usable(backend: BackendReport, backup: bool) -> int:
    return sum(
        1
        for s in backend.servers
        if s.backup is backup and s.admin == "ready" and s.oper in ("up", "going-down")
        and s.weight > 0
    )


def _frontend_families(frontends: Iterable[FrontendReport]) -> Iterator[Metric]:
    sessions = CounterMetricFamily("haproxy_frontend_sessions", "Total number of sessions "
                                   "since process started", labels=["proxy"])
    bytes_in = CounterMetricFamily("haproxy_frontend_bytes_in", "Total number of request bytes "
                                   "since process started", labels=["proxy"])
    bytes_out = CounterMetricFamily("haproxy_frontend_bytes_out", "Total number of response "
                                    "bytes since process started", labels=["proxy"])
    status = GaugeMetricFamily("haproxy_frontend_status", "Current status of the service, per "
                               "state label value.", labels=["proxy", "state"])
    for front in frontends:
        sessions.add_metric([front.name], front.sessions)
        bytes_in.add_metric([front.name], front.bytes_in)
        bytes_out.add_metric([front.name], front.bytes_out)
        status.add_metric([front.name, "DOWN"], 0.0)
        status.add_metric([front.name, "UP"], 1.0)
    yield from (sessions, bytes_in, bytes_out, status)


def _host_families(report: FleetReport) -> Iterator[Metric]:
    workers = GaugeMetricFamily("geoproxy_live_workers", "geoproxy worker processes alive now "
                                "(heartbeat in Redis), per host", labels=["host"])
    per_host: dict[str, int] = {}
    for worker in report.workers:
        host = worker.rpartition(":")[0]
        per_host[host] = per_host.get(host, 0) + 1
    for host, count in sorted(per_host.items()):
        workers.add_metric([host], count)
    yield workers


class FleetCollector(Collector):
    """A collector over one report (rule 1: built per scrape)."""

    def __init__(self, report: FleetReport) -> None:
        self._report = report

    def collect(self) -> Iterable[Metric]:
        report = self._report
        yield from _frontend_families(report.frontends)
        yield from _backend_families(report.backends)
        yield from _server_families(report.backends)
        yield from _host_families(report)


def render_metrics(report: FleetReport) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FleetCollector(report))
    return generate_latest(registry)
