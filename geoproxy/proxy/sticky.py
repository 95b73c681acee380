"""One backend's persistence, per process: cookie (or route) persistence and stick tables,
compiled once from the configuration and applied to each request and response.

Order, as HAProxy processes a request: ``force-persist`` / ``ignore-persist`` rules, then the
persistence cookie (a valid one makes the request "direct"), then ``stick match`` / ``stick on``
lookups (skipped when the cookie already chose a server), then balancing; the stick lookups and
the ``stick on`` / ``stick store-request`` stores travel inside the acquire round trip.
``stick store-response`` entries are learnt from the response and written before it goes on
(only a response that brings a new key costs that round trip).
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from geoproxy.balance.view import AdminState, BackendView, ServerView
from geoproxy.config.model import (
    Backend,
    Config,
    CookieMode,
    StickRule,
    StickRuleKind,
    StickTable,
    StickTableType,
)
from geoproxy.persistence import (
    NO_PERSISTENCE,
    Persistence,
    PersistenceRequest,
    SampleSource,
    fetch,
    read_request,
    server_cookie,
)
from geoproxy.proxy.acl import Predicate, compile_condition
from geoproxy.state.store import StickEntry, StickRequest

Environ = dict[str, Any]
Headers = list[tuple[str, str]]

_CACHE_LIMIT = 64


def request_headers(environ: Environ) -> Headers:
    """The request's headers as (name, value) pairs, rebuilt from the WSGI environ."""
    headers = []
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            headers.append((key[5:].replace("_", "-").lower(), value))
    if "CONTENT_TYPE" in environ:
        headers.append(("content-type", environ["CONTENT_TYPE"]))
    return headers


def _converter(table: StickTable) -> Callable[[str], str | None]:
    """The sample value as the table stores it (HAProxy converts to the table's type and drops
    samples that do not convert)."""
    kind = table.type
    if kind is StickTableType.STRING or kind is StickTableType.BINARY:
        length = table.length
        return lambda value: value[:length]
    if kind is StickTableType.INTEGER:
        return lambda value: str(int(value)) if value.lstrip("-").isdigit() else None

    def address(value: str) -> str | None:
        try:
            parsed = ipaddress.ip_address(value)
        except ValueError:
            return None
        if kind is StickTableType.IP and parsed.version == 6:
            mapped = parsed.ipv4_mapped
            return str(mapped) if mapped else None
        return str(parsed)

    return address


@dataclass(frozen=True, slots=True)
class _CompiledRule:
    kind: StickRuleKind
    rule: StickRule
    table: str
    ttl: float | None
    convert: Callable[[str], str | None]
    condition: Predicate | None

    def applies(self, environ: Environ) -> bool:
        return self.condition is None or self.condition(environ)

    def entry(self, source: SampleSource) -> StickEntry | None:
        value = fetch(self.rule.sample, source)
        if value is None:
            return None
        key = self.convert(value)
        return StickEntry(self.table, key, self.ttl) if key is not None else None


class BackendPersistence:
    """Everything persistence needs for one backend, built at start-up."""

    def __init__(self, backend: Backend, config: Config) -> None:
        self.policy = backend.cookie
        self._persist = backend.persist
        # ``cookie ... dynamic``: ids derived once from each server's address (the views the
        # fleet state builds carry only the configured ``cookie`` values).
        self._dynamic_ids = {
            server.name: dynamic
            for server in backend.servers
            if server.cookie is None and (dynamic := server_cookie(backend, server)) is not None
        }
        self._force = tuple(compile_condition(c) for c in backend.force_persist)
        self._ignore = tuple(compile_condition(c) for c in backend.ignore_persist)
        rules = []
        for rule in backend.stick_rules:
            owner = config.backend(rule.table) if rule.table else backend
            table = owner.stick_table if owner else None
            if owner is None or table is None:
                continue  # the parser refuses this; never fail a request on it
            rules.append(
                _CompiledRule(
                    kind=rule.kind,
                    rule=rule,
                    table=owner.name,
                    ttl=table.expire,
                    convert=_converter(table),
                    condition=compile_condition(rule.condition) if rule.condition else None,
                )
            )
        self._request_rules = tuple(r for r in rules if r.kind is not StickRuleKind.STORE_RESPONSE)
        self._response_rules = tuple(r for r in rules if r.kind is StickRuleKind.STORE_RESPONSE)
        self.is_active = bool(self.policy or rules or self._force or self._ignore)
        # In insert, prefix and rewrite modes a request without a Cookie header gets a decision
        # that depends on its method and ignore-persist alone (frozen: safe to share); most
        # first requests are such. Keyed by (method, ignore-persist), bounded: clients choose
        # methods.
        self._cookieless_modes = self.policy is not None and self.policy.mode in (
            CookieMode.INSERT,
            CookieMode.PREFIX,
            CookieMode.REWRITE,
        )
        self._cookieless: dict[tuple[str, bool], Persistence] = {}

    def servers(self, view: BackendView) -> tuple[ServerView, ...]:
        """The backend's servers as persistence sees them: with their dynamic ids."""
        if not self._dynamic_ids:
            return view.servers
        ids = self._dynamic_ids
        return tuple(
            dataclasses.replace(server, cookie=ids[server.name]) if server.name in ids else server
            for server in view.servers
        )

    def server(self, view: BackendView, name: str) -> ServerView | None:
        """One server as persistence sees it (the one that answered a request)."""
        found = view.server(name)
        dynamic = self._dynamic_ids.get(name)
        if found is None or dynamic is None:
            return found
        return dataclasses.replace(found, cookie=dynamic)

    def read(self, environ: Environ, view: BackendView, now: float) -> Persistence:
        """The cookie (or route) decision for one request."""
        if self.policy is None:
            return NO_PERSISTENCE
        cookie = environ.get("HTTP_COOKIE")
        if cookie is None and self._cookieless_modes:
            ignore = bool(self._ignore) and any(rule(environ) for rule in self._ignore)
            key = (environ["REQUEST_METHOD"], ignore)
            decision = self._cookieless.get(key)
            if decision is None:
                decision = self._read(environ, view, now, cookie)
                if len(self._cookieless) < _CACHE_LIMIT:
                    self._cookieless[key] = decision
            return decision
        return self._read(environ, view, now, cookie)

    def _read(
        self, environ: Environ, view: BackendView, now: float, cookie: str | None
    ) -> Persistence:
        assert self.policy is not None
        request = PersistenceRequest(
            method=environ["REQUEST_METHOD"],
            cookie=cookie,
            target=environ.get("RAW_URI") or "/",
            persist=self._persist,
            # (no generator at all for the common backend without such rules: per request)
            force_persist=bool(self._force) and any(rule(environ) for rule in self._force),
            ignore_persist=bool(self._ignore) and any(rule(environ) for rule in self._ignore),
        )
        return read_request(self.policy, self.servers(view), request, now)

    def stick_request(
        self, environ: Environ, view: BackendView, direct: bool
    ) -> StickRequest | None:
        """The stick-table lookups and stores of one request; None when it has none."""
        if not self._request_rules:
            return None
        source = SampleSource(
            client_address=environ.get("REMOTE_ADDR", ""),
            target=environ.get("RAW_URI") or "/",
            request_headers=request_headers(environ),
        )
        lookups: list[StickEntry] = []
        stores: list[StickEntry] = []
        for rule in self._request_rules:
            if not rule.applies(environ):
                continue
            entry = rule.entry(source)
            if entry is None:
                continue
            if rule.kind in (StickRuleKind.ON, StickRuleKind.MATCH) and not direct:
                lookups.append(entry)
            if rule.kind in (StickRuleKind.ON, StickRuleKind.STORE_REQUEST):
                stores.append(entry)
        if not lookups and not stores:
            return None
        allowed = tuple(
            server
            for server in view.servers
            if server.accepts_persistent or (self._persist and server.admin is not AdminState.MAINT)
        )
        return StickRequest(tuple(lookups), tuple(stores), allowed)

    def entries_to_store(
        self,
        environ: Environ,
        response_headers: Sequence[tuple[str, str]],
        stick: StickRequest | None,
        redispatched: bool,
    ) -> list[StickEntry]:
        """The stick-table entries to point at the server that answered, once its response is
        in: what ``stick store-response`` learns from the response (e.g. the session id in the
        server's Set-Cookie, as HAProxy 1.5's ``appsession`` did), less what the acquire
        already stored for that server; and after a redispatch the request's own stores, which
        the acquire pointed at the server that failed (HAProxy stores the server that answered).
        """
        stored = () if stick is None else stick.stores
        entries = list(stored) if redispatched else []
        if not self._response_rules:
            return entries
        source = SampleSource(
            client_address=environ.get("REMOTE_ADDR", ""),
            target=environ.get("RAW_URI") or "/",
            request_headers=(),
            response_headers=response_headers,
        )
        for rule in self._response_rules:
            if rule.applies(environ):
                entry = rule.entry(source)
                if entry is not None and entry not in entries and entry not in stored:
                    entries.append(entry)
        return entries
