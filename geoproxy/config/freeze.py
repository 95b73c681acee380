"""Section drafts -> the frozen ``Frontend`` and ``Backend`` values every layer reads.

Rules:
1. A ``frontend`` becomes a ``Frontend``, a ``backend`` a ``Backend``, a ``listen`` both, with
   the same name; the frontend half's ``default_backend`` is the listen itself unless one is
   named (HAProxy then sends the traffic to the named one).
2. Each half keeps only the timeouts of its side, as HAProxy copies them (client,
   http-request, http-keep-alive for frontends; connect, server, queue, check, tunnel,
   http-request, http-keep-alive for backends).
3. Conditions are bound to the section's final ACLs here (``draft.py`` rule 4).
"""

from __future__ import annotations

from geoproxy.config.acl import PREDEFINED
from geoproxy.config.draft import (
    ConditionDraft,
    HttpRuleDraft,
    ProxyDraft,
    ProxyKind,
    StatsDraft,
    bind_condition,
)
from geoproxy.config.freeze_tcp import tcp_check, tcp_request_rules
from geoproxy.config.kw_resolve import ResolversDraft
from geoproxy.config.model import (
    Acl,
    Backend,
    Balance,
    Bind,
    Condition,
    ExternalCheck,
    Frontend,
    HttpRule,
    HttpRules,
    Monitor,
    ProxyMode,
    Resolvers,
    StatsConfig,
    StickRule,
    Timeouts,
    UniqueId,
    UseBackend,
)
from geoproxy.config.validate_tcp import LAYER7_BALANCE


def freeze(drafts: list[ProxyDraft]) -> tuple[tuple[Frontend, ...], tuple[Backend, ...]]:
    """Every frontend and backend, in configuration order."""
    frontends: list[Frontend] = []
    backends: list[Backend] = []
    for rank, draft in enumerate(drafts, start=1):
        acls = _acls(draft)
        if draft.kind.has_frontend:
            frontends.append(_frontend(draft, acls))
        if draft.kind.has_backend:
            backends.append(_backend(draft, acls, rank))
    return tuple(frontends), tuple(backends)


def _acls(draft: ProxyDraft) -> dict[str, Acl]:
    rules = draft.rules
    return {name: Acl(name, tuple(tests), rules.acl_locations[name])
            for name, tests in rules.acls.items()}


def _bind(condition: ConditionDraft, acls: dict[str, Acl]) -> Condition:
    return bind_condition(condition, acls, PREDEFINED)


def _rule(rule: HttpRuleDraft, acls: dict[str, Acl]) -> HttpRule:
    condition = _bind(rule.condition, acls) if rule.condition else None
    return HttpRule(rule.action, condition, rule.location, rule.keyword)


def _http_rules(draft: ProxyDraft, acls: dict[str, Acl], frontend: bool) -> HttpRules:
    """The proxy's rules; captures belong to the frontend half only."""
    rules = draft.rules
    return HttpRules(
        # `redirect` lines run after the `http-request` rules, as in HAProxy
        request=tuple(_rule(r, acls) for r in sorted(
            rules.http_request, key=lambda r: r.keyword == "redirect")),
        response=tuple(_rule(r, acls) for r in rules.http_response),
        after_response=tuple(_rule(r, acls) for r in rules.http_after_response),
        request_captures=tuple(rules.request_captures) if frontend else (),
        response_captures=tuple(rules.response_captures) if frontend else (),
    )


def _frontend(draft: ProxyDraft, acls: dict[str, Acl]) -> Frontend:
    settings, rules = draft.settings, draft.rules
    mode = settings.mode or ProxyMode.TCP
    timeouts = settings.timeouts
    default_backend = settings.default_backend
    default_backend_location = settings.default_backend_location
    if default_backend is None and draft.kind is ProxyKind.LISTEN:
        default_backend = draft.name
    return Frontend(
        name=draft.name,
        location=draft.location,
        binds=tuple(Bind(host, port, location, accept, tls, proto, v6only)
                    for host, port, location, accept, tls, proto, v6only in rules.binds),
        default_backend=default_backend,
        default_backend_location=default_backend_location,
        use_backends=tuple(
            UseBackend(rule.backend, _bind(rule.condition, acls) if rule.condition else None,
                       rule.location, rule.name_format)
            for rule in rules.use_backends),
        acls=tuple(acls.values()),
        timeouts=Timeouts(client=timeouts.client, http_request=timeouts.http_request,
                          http_keep_alive=timeouts.http_keep_alive, tarpit=timeouts.tarpit,
                          client_fin=timeouts.client_fin),
        forwardfor=settings.forwardfor if mode is ProxyMode.HTTP else None,
        httplog=settings.httplog and mode is ProxyMode.HTTP,
        dontlognull=settings.dontlognull,
        abortonclose=settings.abortonclose,
        http_mode=settings.http_mode,
        maxconn=settings.maxconn,
        errorfiles=tuple(draft.error_pages.values()),
        stats=_stats(settings.stats, rules.stats_admin, acls) if mode is ProxyMode.HTTP else None,
        log_global=settings.log_global,
        logs=tuple(settings.logs),
        mode=mode,
        # HAProxy falls back to the TCP format for `option httplog` in a TCP frontend
        tcplog=settings.tcplog or (settings.httplog and mode is ProxyMode.TCP),
        tcp_request=tcp_request_rules(draft, acls, frontend=True),
        monitor=Monitor(settings.monitor_uri,
                        tuple(_bind(cond, acls) for cond in rules.monitor_fail))
        if settings.monitor_uri else None,
        unique_id=UniqueId(settings.unique_id_format, settings.unique_id_header,
                           settings.unique_id_location)
        if settings.unique_id_format else None,
        compression=settings.compression,
        buffer_request=settings.buffer_request,
        originalto=settings.originalto,
        rules=_http_rules(draft, acls, frontend=True),
        log_format=settings.log_format,
        stick_table=rules.stick_table,
    )


def _stats(draft: StatsDraft | None, admin: list[ConditionDraft],
           acls: dict[str, Acl]) -> StatsConfig | None:
    if draft is None:
        return None
    return StatsConfig(
        location=draft.location,
        uri=draft.uri,
        realm=draft.realm,
        auths=tuple(draft.auths),
        admin=tuple(_bind(rule, acls) for rule in admin),
        refresh=draft.refresh,
        hide_version=draft.hide_version,
        scopes=tuple(draft.scopes),
        metrics_uri=draft.metrics_uri,
    )


def _external_check(draft: ProxyDraft, proxy_id: int) -> ExternalCheck | None:
    """``option external-check`` with its command; a listen's first bind is the proxy's
    address (HAProxy's arguments), a backend has none."""
    settings = draft.settings
    if settings.external_check is None or settings.external_command is None:
        return None
    addr = port = ""
    if draft.kind.has_frontend and draft.rules.binds:
        host, number = draft.rules.binds[0][0], draft.rules.binds[0][1]
        addr, port = host if host not in ("", "*") else "0.0.0.0", str(number)
    return ExternalCheck(settings.external_command, settings.external_path,
                         settings.external_check, proxy_id, addr, port)


def _backend(draft: ProxyDraft, acls: dict[str, Acl], proxy_id: int = 0) -> Backend:
    settings, rules = draft.settings, draft.rules
    timeouts = settings.timeouts
    mode = settings.mode or ProxyMode.TCP
    http = mode is ProxyMode.HTTP
    balance = settings.balance
    if not http and balance.algorithm in LAYER7_BALANCE:
        balance = Balance()  # HAProxy falls back to round robin (validate_tcp warns)
    return Backend(
        name=draft.name,
        location=draft.location,
        servers=tuple(rules.servers),
        balance=balance,
        hash=settings.hash,
        cookie=settings.cookie if http else None,
        dynamic_cookie_key=settings.dynamic_cookie_key,
        timeouts=Timeouts(connect=timeouts.connect, server=timeouts.server,
                          queue=timeouts.queue, http_request=timeouts.http_request,
                          http_keep_alive=timeouts.http_keep_alive, check=timeouts.check,
                          tunnel=timeouts.tunnel, tarpit=timeouts.tarpit,
                          server_fin=timeouts.server_fin),
        retries=settings.retries,
        redispatch=settings.redispatch,
        redispatch_interval=settings.redispatch_interval,
        persist=settings.persist,
        allbackups=settings.allbackups,
        abortonclose=settings.abortonclose,
        forwardfor=settings.forwardfor if http else None,
        http_mode=settings.http_mode,
        httpchk=settings.check_request if settings.httpchk else None,
        stick_table=rules.stick_table,
        stick_rules=tuple(
            StickRule(rule.kind, rule.sample, rule.location, rule.table,
                      _bind(rule.condition, acls) if rule.condition else None)
            for rule in rules.stick_rules),
        force_persist=tuple(_bind(cond, acls) for cond in rules.force_persist),
        ignore_persist=tuple(_bind(cond, acls) for cond in rules.ignore_persist),
        acls=tuple(acls.values()),
        errorfiles=tuple(draft.error_pages.values()),
        mode=mode,
        tcp_check=tcp_check(settings),
        external_check=_external_check(draft, proxy_id),
        tcp_request=tcp_request_rules(draft, acls, frontend=False),
        stats=_stats(settings.stats, rules.stats_admin, acls) if http else None,
        compression=settings.compression,
        buffer_request=settings.buffer_request,
        originalto=settings.originalto,
        rules=_http_rules(draft, acls, frontend=False),
    )


def resolvers_sections(drafts: list[ResolversDraft]) -> tuple[Resolvers, ...]:
    """Every ``resolvers`` section, in file order (the implicit ``default`` one is
    ``Config.resolvers_section``'s)."""
    return tuple(draft.freeze() for draft in drafts)
