"""The whole-configuration pass, as HAProxy's ``check_config_validity()``.

Rules:
1. It runs only on a configuration whose lines all parsed: a wrong line would make the checks
   below report consequences instead of causes.
2. Errors: a frontend without ``bind`` or without any backend to send to, a
   ``default_backend`` or ``use_backend`` naming no backend, two binds on the same address, a
   stick rule without a stick table, no frontend at all.
3. Warnings: HAProxy's ("missing timeouts", http-check rules without ``option httpchk``), and
   geoproxy's own where a configuration is legal but surely not what was meant (a backend
   without servers, unless it is a ``listen`` section serving the stats page; persistence
   cookies nobody can get) or where geoproxy departs from HAProxy (``cookie ... prefix
   indirect``, see the persistence spec).
4. Each message carries the location of the line at fault, or of the section when the fault is
   an absence.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

from geoproxy.config.draft import ProxyDraft
from geoproxy.config.model import (
    Backend,
    Bind,
    Config,
    CookieMode,
    Diagnostic,
    Frontend,
    Location,
)
from geoproxy.config.validate_tcp import mode_errors, mode_warnings

_MISSING_TIMEOUTS = (
    "missing timeouts for {label}.\n"
    "   | While not properly invalid, you will certainly encounter various problems\n"
    "   | with such a configuration. To fix this, please ensure that all following\n"
    "   | timeouts are set to a non-zero value: 'client', 'connect', 'server'."
)
_PREFIX_INDIRECT = (
    "cookie '{name}' uses 'prefix' with 'indirect': with HAProxy, a client whose server "
    "restarted and issued a new '{name}' never receives it (HAProxy removes the server's "
    "Set-Cookie) and stays on the application's \"session expired\" page. geoproxy forwards "
    "the server's new cookie anyway, prefixed; remove 'indirect' to get the same behaviour "
    "from HAProxy."
)


def validate(config: Config) -> tuple[list[Diagnostic], list[Diagnostic]]:
    """Check a parsed configuration as a whole; returns ``(errors, warnings)``."""
    errors: list[Diagnostic] = []
    warnings: list[Diagnostic] = []
    backends = {backend.name: backend for backend in config.backends}
    listens = {f.name for f in config.frontends
               if (b := backends.get(f.name)) is not None and b.location == f.location}
    if not config.frontends:
        errors.append(Diagnostic(Location(config.path, 0), "frontend",
                                 f"{config.path} has no 'frontend' or 'listen' section: "
                                 "geoproxy would not listen anywhere."))
    for frontend in config.frontends:
        kind = "listen" if frontend.name in listens else "frontend"
        errors.extend(_frontend_errors(frontend, kind, backends))
        if frontend.name not in listens and frontend.timeouts.client is None:
            warnings.append(_missing_timeouts(frontend.location, f"frontend '{frontend.name}'"))
    errors.extend(_bind_collisions(config.frontends))
    kinds = {f.name: ("listen" if f.name in listens else "frontend") for f in config.frontends}
    errors.extend(mode_errors(config, kinds))
    stats_only = {f.name for f in config.frontends if f.stats is not None}
    for backend in config.backends:
        errors.extend(_stick_errors(backend, backends))
        if not (backend.name in listens and backend.name in stats_only and not backend.servers):
            warnings.extend(_backend_warnings(backend))
        missing = backend.timeouts.connect is None or backend.timeouts.server is None
        if backend.name in listens:
            half = config.frontend(backend.name)
            if missing or (half is not None and half.timeouts.client is None):
                warnings.append(_missing_timeouts(backend.location, f"proxy '{backend.name}'"))
        elif missing:
            warnings.append(_missing_timeouts(backend.location, f"backend '{backend.name}'"))
    return errors, warnings


def _missing_timeouts(location: Location, label: str) -> Diagnostic:
    return Diagnostic(location, "timeout", _MISSING_TIMEOUTS.format(label=label))


def _frontend_errors(frontend: Frontend, kind: str,
                     backends: dict[str, Backend]) -> Iterator[Diagnostic]:
    where = frontend.location
    if not frontend.binds:
        yield Diagnostic(where, "bind", f"{kind} '{frontend.name}' has no 'bind' directive: "
                         "geoproxy would never receive its traffic.")
    if frontend.default_backend is None and not frontend.use_backends and not frontend.stats:
        yield Diagnostic(where, "default_backend", (
            f"{kind} '{frontend.name}' has no 'default_backend' and no 'use_backend' rule: "
            "every request would be answered with 503."))
    if frontend.default_backend is not None and frontend.default_backend not in backends:
        yield Diagnostic(frontend.default_backend_location or where, "default_backend", (
            f"Proxy '{frontend.name}': unable to find required default_backend: "
            f"'{frontend.default_backend}'."))
    for rule in frontend.use_backends:
        if rule.backend not in backends:
            yield Diagnostic(rule.location, "use_backend", (
                f"Proxy '{frontend.name}': unable to find required use_backend: "
                f"'{rule.backend}'."))


def _bind_collisions(frontends: tuple[Frontend, ...]) -> Iterator[Diagnostic]:
    """Two listeners on one port collide when their hosts are equal or one is a wildcard."""
    seen: list[tuple[Bind, str]] = []
    for frontend in frontends:
        for bind in frontend.binds:
            for other, owner in seen:
                if other.port == bind.port and _overlap(other.host, bind.host):
                    yield Diagnostic(bind.location, "bind", (
                        f"'bind' : {_show(bind)} collides with {_show(other)} of frontend "
                        f"'{owner}' bound at {other.location}."))
                    break
            seen.append((bind, frontend.name))


def _show(bind: Bind) -> str:
    host = f"[{bind.host}]" if ":" in bind.host else bind.host
    return f"{host}:{bind.port}"


def _overlap(first: str, second: str) -> bool:
    if first == second:
        return True
    return _is_wildcard(first) or _is_wildcard(second)


def _is_wildcard(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False


def _stick_errors(backend: Backend, backends: dict[str, Backend]) -> Iterator[Diagnostic]:
    for rule in backend.stick_rules:
        name = rule.table or backend.name
        owner = backends.get(name)
        if owner is None or owner.stick_table is None:
            yield Diagnostic(rule.location, "stick", (
                f"Proxy '{backend.name}': unable to find stick-table '{name}'."))


def _backend_warnings(backend: Backend) -> Iterator[Diagnostic]:
    label = f"backend '{backend.name}'"
    if not backend.servers:
        yield Diagnostic(backend.location, "backend", (
            f"{label} has no server: every request it receives will be answered with 503."))
    cookie = backend.cookie
    with_cookie = [s for s in backend.servers if s.cookie is not None]
    if cookie is not None and backend.servers and not with_cookie and not cookie.dynamic:
        yield Diagnostic(cookie.location, "cookie", (
            f"{label} : 'cookie {cookie.name}' is set but no server has a 'cookie' value, so "
            "no client can be made persistent."))
    if cookie is None and with_cookie:
        names = ", ".join(s.name for s in with_cookie)
        yield Diagnostic(with_cookie[0].location, "server", (
            f"{label} : the 'cookie' values of its servers ({names}) have no effect: the "
            "backend has no 'cookie' line."))
    if cookie is not None and cookie.mode is CookieMode.PREFIX and cookie.indirect:
        yield Diagnostic(cookie.location, "cookie", _PREFIX_INDIRECT.format(name=cookie.name))
    if cookie is not None and cookie.dynamic and backend.dynamic_cookie_key is None:
        yield Diagnostic(cookie.location, "cookie", (
            f"{label} : 'cookie {cookie.name} dynamic' needs a 'dynamic-cookie-key'; without "
            "one, servers without a 'cookie' value get no persistent clients."))


def check_drafts(drafts: list[ProxyDraft]) -> list[Diagnostic]:
    """The warnings that need what the frozen model does not keep (where a keyword was)."""
    warnings: list[Diagnostic] = []
    for draft in drafts:
        settings = draft.settings
        if draft.kind.has_backend and settings.http_check_location and not settings.httpchk:
            warnings.append(Diagnostic(settings.http_check_location, "http-check", (
                f"backend '{draft.name}' uses http-check rules without 'option httpchk', so "
                "the rules are ignored.")))
    warnings.extend(mode_warnings(drafts))
    return warnings
