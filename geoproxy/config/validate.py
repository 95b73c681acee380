"""The whole-configuration pass, as HAProxy's ``check_config_validity()``.

Rules:
1. It runs only on a configuration whose lines all parsed: a wrong line would make the checks
   below report consequences instead of causes.
2. Errors: a ``default_backend`` or ``use_backend`` naming no backend, two binds on the same
   address, a stick rule without a stick table, no frontend at all.
3. Warnings: HAProxy's ("missing timeouts", http-check rules without ``option httpchk``, a
   proxy without ``bind``), and geoproxy's own where a configuration is legal but surely not
   what was meant (a backend without servers, unless it is a ``listen`` section serving the
   stats page; persistence cookies nobody can get; a frontend without any backend, whose
   requests no rule answers get a 503, as in HAProxy: a frontend that only redirects is one)
   or where geoproxy departs from HAProxy (``cookie ... prefix indirect``, see the
   persistence spec).
4. Each message carries the location of the line at fault, or of the section when the fault is
   an absence.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

from geoproxy.config.draft import ProxyDraft
from geoproxy.config.model import (
    Acl,
    Backend,
    Bind,
    Config,
    CookieMode,
    Diagnostic,
    Frontend,
    HttpRule,
    Location,
)
from geoproxy.config.validate_tables import table_errors
from geoproxy.config.validate_tcp import mode_errors, mode_warnings
from geoproxy.rules.conditions import acl_usable

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
    errors.extend(_userlist_errors(config))
    errors.extend(table_errors(config))
    warnings.extend(_rule_warnings(config))
    for frontend in config.frontends:
        kind = "listen" if frontend.name in listens else "frontend"
        errors.extend(_frontend_errors(frontend, backends))
        warnings.extend(_frontend_warnings(frontend, kind))
        if frontend.name not in listens and frontend.timeouts.client is None:
            warnings.append(_missing_timeouts(frontend.location, f"frontend '{frontend.name}'"))
    errors.extend(_bind_collisions(config.frontends))
    kinds = {f.name: ("listen" if f.name in listens else "frontend") for f in config.frontends}
    errors.extend(mode_errors(config, kinds))
    stats_only = {f.name for f in config.frontends if f.stats is not None}
    for backend in config.backends:
        errors.extend(_stick_errors(backend, backends))
        errors.extend(_server_errors(backend, config))
        serves_stats = backend.stats is not None or (
            backend.name in listens and backend.name in stats_only)
        if not (serves_stats and not backend.servers):
            warnings.extend(_backend_warnings(backend))
        missing = backend.timeouts.connect is None or backend.timeouts.server is None
        if backend.name in listens:
            half = config.frontend(backend.name)
            if missing or (half is not None and half.timeouts.client is None):
                warnings.append(_missing_timeouts(backend.location, f"proxy '{backend.name}'"))
        elif missing:
            warnings.append(_missing_timeouts(backend.location, f"backend '{backend.name}'"))
    return errors, warnings


def _conditions(proxy: Frontend | Backend) -> Iterator[tuple[str, HttpRule]]:
    rules = proxy.rules
    for side, listed in (("request", rules.request), ("response", rules.response),
                         ("after", rules.after_response)):
        for rule in listed:
            yield side, rule


def _acls_used(proxy: Frontend | Backend) -> Iterator[tuple[Acl, Location]]:
    for acl in proxy.acls:
        yield acl, acl.location
    for _, rule in _conditions(proxy):
        if rule.condition is not None:
            for group in rule.condition.any_of:
                for term in group:
                    yield term.test, rule.location
    if isinstance(proxy, Frontend):
        for use in proxy.use_backends:
            if use.condition is not None:
                for group in use.condition.any_of:
                    for term in group:
                        yield term.test, use.location


def _userlist_errors(config: Config) -> Iterator[Diagnostic]:
    """``http_auth(L)`` and ``http_auth_group(L)`` must name a ``userlist`` section."""
    names = {userlist.name for userlist in config.userlists}
    proxies: tuple[Frontend | Backend, ...] = (*config.frontends, *config.backends)
    for proxy in proxies:
        for acl, location in _acls_used(proxy):
            for test in acl.tests:
                fetch = test.expr.fetch
                if fetch.name in ("http_auth", "http_auth_group") and \
                        str(fetch.args[0]) not in names:
                    yield Diagnostic(location, fetch.name, (
                        f"proxy '{proxy.name}': unable to find userlist '{fetch.args[0]}' "
                        f"referenced in arg 1 of ACL keyword '{fetch.name}'."))


def _rule_warnings(config: Config) -> Iterator[Diagnostic]:
    """HAProxy's warning for a rule whose ACL reads what the rule's side cannot see."""
    proxies: tuple[Frontend | Backend, ...] = (*config.frontends, *config.backends)
    seen: set[tuple[Location, str]] = set()  # a listen's rules are in both of its halves
    for proxy in proxies:
        kind = "frontend" if isinstance(proxy, Frontend) else "backend"
        for side, rule in _conditions(proxy):
            if rule.condition is None:
                continue
            response = side != "request"
            for group in rule.condition.any_of:
                for term in group:
                    if not acl_usable(term.test, response) and \
                            (rule.location, term.test.name) not in seen:
                        seen.add((rule.location, term.test.name))
                        where = "http-request" if side == "request" else "http-response"
                        yield Diagnostic(rule.location, rule.keyword, (
                            f"acl '{term.test.name}' will never match because it only "
                            f"involves keywords that are incompatible with '{kind} {where} "
                            "header rule'"))


def _missing_timeouts(location: Location, label: str) -> Diagnostic:
    return Diagnostic(location, "timeout", _MISSING_TIMEOUTS.format(label=label))


def _frontend_warnings(frontend: Frontend, kind: str) -> Iterator[Diagnostic]:
    where = frontend.location
    if not frontend.binds:  # HAProxy's warning, word for word
        yield Diagnostic(where, "bind", f"proxy '{frontend.name}' has no 'bind' directive. "
                         "Please declare it as a backend if this was intended.")
    if frontend.default_backend is None and not frontend.use_backends and not frontend.stats:
        yield Diagnostic(where, "default_backend", (
            f"{kind} '{frontend.name}' has no 'default_backend' and no 'use_backend' rule: "
            "the requests its rules do not answer get a 503 (the connections of a TCP "
            "frontend are closed)."))


def _frontend_errors(frontend: Frontend,
                     backends: dict[str, Backend]) -> Iterator[Diagnostic]:
    where = frontend.location
    if frontend.default_backend is not None and frontend.default_backend not in backends:
        yield Diagnostic(frontend.default_backend_location or where, "default_backend", (
            f"Proxy '{frontend.name}': unable to find required default_backend: "
            f"'{frontend.default_backend}'."))
    for rule in frontend.use_backends:
        if rule.name_format is None and rule.backend not in backends:
            yield Diagnostic(rule.location, "use_backend", (
                f"Proxy '{frontend.name}': unable to find required use_backend: "
                f"'{rule.backend}'."))


def _bind_collisions(frontends: tuple[Frontend, ...]) -> Iterator[Diagnostic]:
    """Two listeners on one port collide when their hosts are equal or one is a wildcard of
    the same family: an IPv6 listener takes no IPv4 client when an IPv4 one shares its port
    (``runtime/listeners.py``), so ``bind :25`` and ``bind :::25`` both serve, as in HAProxy."""
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
    if _is_ipv6(first) != _is_ipv6(second):
        return False
    return _is_wildcard(first) or _is_wildcard(second)


def _is_ipv6(host: str) -> bool:
    return ":" in host


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


def _server_errors(backend: Backend, config: Config) -> Iterator[Diagnostic]:
    """A checked server needs a port to check; a ``resolvers`` name must exist."""
    for server in backend.servers:
        if server.check and server.maps_port and server.check_port is None:
            yield Diagnostic(server.location, "server", (
                f"backend '{backend.name}': server '{server.name}' has neither service port "
                "nor check port."))
        resolution = server.resolution
        if resolution and resolution.resolvers and \
                config.resolvers_section(resolution.resolvers) is None:
            yield Diagnostic(server.location, "server", (
                f"backend '{backend.name}': server '{server.name}': unable to find required "
                f"resolvers '{resolution.resolvers}'."))


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
