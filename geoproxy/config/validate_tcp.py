"""The whole-configuration pass for ``mode``: what HAProxy 2.6's ``check_config_validity()``
says about TCP and HTTP proxies side by side.

Rules:
1. Errors: an HTTP frontend that sends traffic to a TCP backend (``use_backend`` or
   ``default_backend``), in HAProxy's words. A TCP frontend that sends to an HTTP backend is
   legal in HAProxy (it upgrades the connection to HTTP); geoproxy does not upgrade, and says so.
2. Warnings, HAProxy's: HTTP-only settings in a TCP proxy are ignored (``option httplog`` falls
   back to ``option tcplog``; ``option forwardfor``, ``cookie``, ``stats``, layer-7 ``balance``
   algorithms, which fall back to round robin), and ``tcp-check`` rules without
   ``option tcp-check`` do nothing.
"""

from __future__ import annotations

from collections.abc import Iterator

from geoproxy.config.draft import ProxyDraft
from geoproxy.config.model import (
    Backend,
    BalanceAlgorithm,
    Config,
    Diagnostic,
    Frontend,
    Location,
    ProxyMode,
)
from geoproxy.config.model_tcp import CheckProtocol

LAYER7_BALANCE = frozenset({BalanceAlgorithm.URI, BalanceAlgorithm.URL_PARAM,
                            BalanceAlgorithm.HDR})


def mode_errors(config: Config, kinds: dict[str, str]) -> Iterator[Diagnostic]:
    """Rule 1; ``kinds`` names each frontend's section kind ("frontend" or "listen")."""
    backends = {backend.name: backend for backend in config.backends}
    for frontend in config.frontends:
        routes: list[tuple[str, Location, str]] = [
            (rule.backend, rule.location, "in a 'use_backend' rule")
            for rule in frontend.use_backends
        ]
        if frontend.default_backend is not None:
            routes.append((frontend.default_backend, frontend.location,
                           "as its default backend"))
        for name, location, how in routes:
            backend = backends.get(name)
            if backend is None or backend.mode is frontend.mode:
                continue
            yield _mismatch(frontend, kinds.get(frontend.name, "frontend"), backend, location, how)


def _mismatch(frontend: Frontend, kind: str, backend: Backend, location: Location,
              how: str) -> Diagnostic:
    keyword = "use_backend" if how.startswith("in a") else "default_backend"
    if frontend.mode is ProxyMode.HTTP:
        message = (f"http {kind} '{frontend.name}' ({frontend.location}) tries to use "
                   f"incompatible tcp backend '{backend.name}' ({backend.location}) {how} "
                   "(see 'mode').")
    else:
        message = (f"tcp {kind} '{frontend.name}' ({frontend.location}) uses http backend "
                   f"'{backend.name}' ({backend.location}) {how}: HAProxy upgrades such "
                   "connections to HTTP, geoproxy does not; give both the same 'mode'.")
    return Diagnostic(location, keyword, message)


def mode_warnings(drafts: list[ProxyDraft]) -> Iterator[Diagnostic]:
    """Rule 2, from the drafts (they know where each setting was written)."""
    for draft in drafts:
        settings = draft.settings
        if not draft.kind.has_frontend and not draft.kind.has_backend:
            continue
        label = draft.label
        tcp = (settings.mode or ProxyMode.TCP) is ProxyMode.TCP
        if draft.kind.has_backend and settings.tcp_check_location is not None and \
                settings.check_protocol is not CheckProtocol.TCP_CHECK and \
                draft.rules.own_tcp_checks:
            yield Diagnostic(settings.tcp_check_location, "tcp-check", (
                f"backend '{draft.name}' uses tcp-check rules without 'option tcp-check', so "
                "the rules are ignored."))
        if not tcp or draft.kind.value == "defaults":
            continue
        if draft.kind.has_frontend and settings.httplog and settings.httplog_location:
            yield Diagnostic(settings.httplog_location, "option", (
                f"'option httplog' not usable with {label} (needs 'mode http'). Falling back "
                "to 'option tcplog'."))
        if draft.kind.has_frontend and settings.forwardfor is not None:
            yield Diagnostic(draft.location, "option", (
                f"'option forwardfor' ignored for {label} as it requires HTTP mode."))
        if draft.kind.has_frontend and settings.stats is not None:
            yield Diagnostic(settings.stats.location, "stats", (
                f"'stats' statement ignored for {label} as it requires HTTP mode."))
        if not draft.kind.has_backend:
            continue
        if settings.cookie is not None:
            yield Diagnostic(settings.cookie.location, "cookie", (
                f"cookie will be ignored for backend '{draft.name}' (needs 'mode http')."))
        if settings.balance.algorithm in LAYER7_BALANCE:
            yield Diagnostic(draft.location, "balance", (
                f"Layer 7 hash not possible for backend '{draft.name}' (needs 'mode http'). "
                "Falling back to round robin."))
