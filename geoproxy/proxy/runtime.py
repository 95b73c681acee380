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
from geoproxy.counters.registry import CounterTables
from geoproxy.proxy.accesslog import AccessLog
from geoproxy.proxy.content_rules import ContentRule, compile_content_rules, rejects
from geoproxy.proxy.errorpages import ErrorPages
from geoproxy.proxy.monitor import MonitorRule
from geoproxy.proxy.pools import ServerPools
from geoproxy.proxy.sticky import BackendPersistence
from geoproxy.proxy.unique_id import UniqueIdFormat
from geoproxy.rules.conditions import Predicate, compile_condition
from geoproxy.rules.engine import RuleSet, compile_rules
from geoproxy.rules.fetches import CompileEnv
from geoproxy.rules.logformat import LogFacts, Render, compile_access_log, compile_logformat
from geoproxy.rules.txn import Txn

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
    pools: ServerPools
    errors: ErrorPages
    connect_timeout: float | None
    server_timeout: float | None
    turnaround: float
    server_close: bool
    forwardfor: Callable[[Environ], tuple[str, str] | None] | None
    persistence: BackendPersistence
    observe: dict[str, Observe]  # servers under passive health observation
    rules: RuleSet | None = None  # its http-request/-response/-after-response rules
    content_rules: tuple[ContentRule, ...] = ()  # its tcp-request content rules


@dataclass(frozen=True, slots=True)
class Switch:
    """One ``use_backend`` rule: its condition (None: always), and its backend, or the
    log-format that names it per request (``name``)."""

    holds: Predicate | None
    backend: BackendRuntime | None
    name: Render | None = None


@dataclass(frozen=True, slots=True)
class FrontendRuntime:
    config: Frontend
    switching: tuple[Switch, ...]
    default_backend: BackendRuntime | None
    errors: ErrorPages
    forwardfor: Callable[[Environ], tuple[str, str] | None]
    log: AccessLog | None  # None: this frontend logs no request
    content_rules: tuple[ContentRule, ...] = ()  # tcp-request content rules
    monitor: MonitorRule | None = None
    unique_id: UniqueIdFormat | None = None
    unique_id_header: str | None = None
    rules: RuleSet | None = None
    # whether a request needs a ``Txn``: rules or use_backend rules read it
    needs_txn: bool = False
    backends: dict[str, BackendRuntime] | None = None  # by name, for dynamic use_backend
    log_format: Callable[[Txn, LogFacts], str] | None = None

    def backend_for(self, txn: Txn | None) -> BackendRuntime | None:
        """The backend of a request, as HAProxy's switching rules choose it: the first
        ``use_backend`` whose condition holds; a dynamic name that names no backend ends the
        rules; else the default backend."""
        for switch in self.switching:
            if switch.holds is None or (txn is not None and switch.holds(txn)):
                if switch.name is None:
                    return switch.backend
                found = (self.backends or {}).get(switch.name(txn)) if txn else None
                if found is None:
                    break
                return found
        return self.default_backend

    def rejects(self, txn: Txn) -> bool:
        """``tcp-request content`` in an HTTP proxy, on each request (``content_rules.py``)."""
        return rejects(self.content_rules, txn)

    def runs_backend_rules(self, backend: BackendRuntime) -> bool:
        """Whether ``backend``'s own rules run for this frontend's requests: not when it is
        this frontend's ``listen`` section (one proxy, one pass)."""
        return backend.rules is not None and backend.config.location != self.config.location


def compile_env(config: Config, counters: CounterTables | None = None,
                proxy: str = "") -> CompileEnv:
    return CompileEnv(userlists={userlist.name: userlist for userlist in config.userlists},
                      counters=counters, proxy=proxy)


def build_backends(config: Config, rng: random.Random,
                   counters: CounterTables | None = None) -> dict[str, BackendRuntime]:
    env = compile_env(config, counters)
    backends = {}
    for backend in config.backends:
        timeouts = backend.timeouts
        backends[backend.name] = BackendRuntime(
            config=backend,
            policy=policy_for(backend, rng),
            pools=ServerPools(backend, env),
            errors=ErrorPages(backend.errorfiles),
            connect_timeout=timeouts.connect,
            server_timeout=timeouts.server,
            turnaround=min(MAX_TURNAROUND, timeouts.connect or MAX_TURNAROUND),
            server_close=backend.http_server_close,
            forwardfor=_forwardfor_rule(backend.forwardfor) if backend.forwardfor else None,
            persistence=BackendPersistence(backend, config),
            observe={s.name: s.observe for s in backend.servers if s.observe is not None},
            rules=compile_rules(backend.rules, backend.name, env),
            content_rules=compile_content_rules(backend.tcp_request, env, backend.name),
        )
    return backends


def build_frontends(config: Config, backends: dict[str, BackendRuntime],
                    counters: CounterTables | None = None) -> list[FrontendRuntime]:
    frontends = []
    for frontend in config.frontends:
        env = compile_env(config, counters, frontend.name)
        default = backends.get(frontend.default_backend) if frontend.default_backend else None
        errors = ErrorPages(frontend.errorfiles)
        switching = tuple(
            Switch(
                compile_condition(rule.condition, env, response=False) if rule.condition
                else None,
                backends.get(rule.backend) if rule.name_format is None else None,
                compile_logformat(rule.name_format, env) if rule.name_format else None,
            )
            for rule in frontend.use_backends
        )
        rules = compile_rules(frontend.rules, frontend.name, env)
        needs_txn = bool(
            rules is not None
            or any(s.holds is not None or s.name is not None for s in switching)
            or any(b.rules is not None for b in backends.values())
            or frontend.log_format is not None
            # connection-level stick counters count each request's errors and failures
            or (frontend.tcp_request is not None
                and any(rule.counter is not None for rule in frontend.tcp_request.connection))
        )
        frontends.append(
            FrontendRuntime(
                config=frontend,
                switching=switching,
                default_backend=default,
                errors=errors,
                forwardfor=_forwardfor_rule(frontend.forwardfor),
                log=_access_log(config, frontend),
                content_rules=compile_content_rules(frontend.tcp_request, env, frontend.name),
                monitor=MonitorRule(frontend.monitor) if frontend.monitor else None,
                unique_id=UniqueIdFormat(frontend.unique_id.format)
                if frontend.unique_id else None,
                unique_id_header=frontend.unique_id.header if frontend.unique_id else None,
                rules=rules,
                needs_txn=needs_txn,
                backends=backends,
                log_format=compile_access_log(frontend.log_format, env)
                if frontend.log_format else None,
            )
        )
    return frontends


def _access_log(config: Config, frontend: Frontend) -> AccessLog | None:
    """The frontend's ``log`` targets (``log global`` and its own), else standard output when
    it has ``option httplog``; None when it logs nothing."""
    targets = (config.global_.logs if frontend.log_global else ()) + frontend.logs
    log = AccessLog(targets, default_stdout=frontend.httplog)
    return log if log.enabled else None
