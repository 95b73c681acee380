"""Per-process runtime objects built once from the configuration: what a request needs from its
frontend and backend without looking anything up twice."""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from geoproxy.balance.factory import policy_for
from geoproxy.balance.policy import Policy
from geoproxy.config.model import Backend, Config, ForwardFor, Frontend, Observe
from geoproxy.config.model_tcp import TcpAction
from geoproxy.forward.pool import ServerPool
from geoproxy.proxy.accesslog import AccessLog
from geoproxy.proxy.acl import Predicate, compile_condition
from geoproxy.proxy.errorpages import ErrorPages
from geoproxy.proxy.sticky import BackendPersistence

Environ = dict[str, Any]

# HAProxy waits min(1 s, timeout connect) before retrying a refused connection, so as not to
# hammer a server that is restarting.
MAX_TURNAROUND = 1.0


def _forwardfor_rule(forwardfor: ForwardFor | None) -> Callable[[Environ], tuple[str, str] | None]:
    """The header ``option forwardfor`` adds for one request, or None."""
    if forwardfor is None:
        return lambda environ: None
    header = forwardfor.header
    environ_key = "HTTP_" + header.upper().replace("-", "_")
    network = (
        ipaddress.ip_network(forwardfor.except_network, strict=False)
        if forwardfor.except_network
        else None
    )

    def rule(environ: Environ) -> tuple[str, str] | None:
        source: str = environ.get("REMOTE_ADDR", "")
        if forwardfor.if_none and environ_key in environ:
            return None
        if network is not None:
            try:
                if ipaddress.ip_address(source) in network:
                    return None
            except ValueError:
                pass
        return (header, source)

    return rule


@dataclass(frozen=True, slots=True)
class BackendRuntime:
    config: Backend
    policy: Policy
    pools: dict[str, ServerPool]
    errors: ErrorPages
    connect_timeout: float | None
    server_timeout: float | None
    turnaround: float
    server_close: bool
    forwardfor: Callable[[Environ], tuple[str, str] | None] | None
    persistence: BackendPersistence
    observe: dict[str, Observe]  # servers under passive health observation


@dataclass(frozen=True, slots=True)
class FrontendRuntime:
    config: Frontend
    rules: tuple[tuple[Predicate, BackendRuntime], ...]
    default_backend: BackendRuntime | None
    errors: ErrorPages
    forwardfor: Callable[[Environ], tuple[str, str] | None]
    log: AccessLog | None  # None: this frontend logs no request
    # tcp-request content rules: (condition or None, whether the rule rejects)
    content_rules: tuple[tuple[Predicate | None, bool], ...] = ()

    def backend_for(self, environ: Environ) -> BackendRuntime | None:
        for holds, backend in self.rules:
            if holds(environ):
                return backend
        return self.default_backend

    def rejects(self, environ: Environ) -> bool:
        """``tcp-request content`` in an HTTP proxy, evaluated on each request as HAProxy
        does: the first rule that holds decides; none holds: accepted."""
        for holds, rejects in self.content_rules:
            if holds is None or holds(environ):
                return rejects
        return False


def build_backends(config: Config, rng: random.Random) -> dict[str, BackendRuntime]:
    backends = {}
    for backend in config.backends:
        timeouts = backend.timeouts
        backends[backend.name] = BackendRuntime(
            config=backend,
            policy=policy_for(backend, rng),
            pools={server.name: ServerPool(server.host, server.port) for server in backend.servers},
            errors=ErrorPages(backend.errorfiles),
            connect_timeout=timeouts.connect,
            server_timeout=timeouts.server,
            turnaround=min(MAX_TURNAROUND, timeouts.connect or MAX_TURNAROUND),
            server_close=backend.http_server_close,
            forwardfor=_forwardfor_rule(backend.forwardfor) if backend.forwardfor else None,
            persistence=BackendPersistence(backend, config),
            observe={s.name: s.observe for s in backend.servers if s.observe is not None},
        )
    return backends


def build_frontends(config: Config, backends: dict[str, BackendRuntime]) -> list[FrontendRuntime]:
    frontends = []
    for frontend in config.frontends:
        default = backends.get(frontend.default_backend) if frontend.default_backend else None
        errors = ErrorPages(frontend.errorfiles)
        frontends.append(
            FrontendRuntime(
                config=frontend,
                rules=tuple(
                    (compile_condition(rule.condition), backends[rule.backend])
                    for rule in frontend.use_backends
                ),
                default_backend=default,
                errors=errors,
                forwardfor=_forwardfor_rule(frontend.forwardfor),
                log=_access_log(config, frontend),
                content_rules=_content_rules(frontend),
            )
        )
    return frontends


def _content_rules(frontend: Frontend) -> tuple[tuple[Predicate | None, bool], ...]:
    rules = frontend.tcp_request
    if rules is None:
        return ()
    return tuple(
        (compile_condition(rule.condition) if rule.condition else None,
         rule.action is not TcpAction.ACCEPT)
        for rule in rules.content
    )


def _access_log(config: Config, frontend: Frontend) -> AccessLog | None:
    """The frontend's ``log`` targets (``log global`` and its own), else standard output when
    it has ``option httplog``; None when it logs nothing."""
    targets = (config.global_.logs if frontend.log_global else ()) + frontend.logs
    log = AccessLog(targets, default_stdout=frontend.httplog)
    return log if log.enabled else None
