"""Sections while they are being parsed: mutable drafts that become frozen model values.

Rules:
1. A draft lives only inside the parser. Nothing outside ``geoproxy.config`` sees one.
2. ``Settings`` holds exactly what HAProxy copies from a ``defaults`` section into a new proxy
   (``proxy_defproxy_cpy()`` in HAProxy's proxy.c): mode, options, timeouts, errorfiles,
   balance, hash-type, cookie, retries, default-server, health-check request, maxconn and
   default_backend, and the ``stats`` page settings. ``Rules`` holds what is never inherited:
   binds, ACLs, use_backend, servers, stick tables and rules, force-persist and ignore-persist,
   ``stats admin`` rules.
3. A new proxy starts from a deep copy of its defaults' ``Settings``; a ``defaults`` section
   without ``from`` starts from HAProxy's built-in defaults (the model's field defaults).
4. ACL names in conditions are checked when the rule is read (HAProxy refuses an ACL declared
   after its use) but bound to the final ``Acl`` when the section is frozen, because every
   ``acl`` line with that name, even a later one, extends the same ACL in HAProxy.
"""

from __future__ import annotations

import copy
import enum
from dataclasses import dataclass, field

from geoproxy.config.model import (
    Acl,
    AclTest,
    Balance,
    Compression,
    Condition,
    ConditionTerm,
    CookiePolicy,
    ErrorFile,
    ForwardFor,
    HashSettings,
    HttpCheck,
    HttpMode,
    Location,
    LogTarget,
    OriginalTo,
    ProxyMode,
    Sample,
    Server,
    StatsAuth,
    StickRuleKind,
    StickTable,
    Timeouts,
)
from geoproxy.config.model_tcp import CheckProtocol, TcpAction, TcpCheckStep
from geoproxy.config.model_tls import BindTls
from geoproxy.rules.spec import Action, CaptureSlot, LogFormat, ScUpdate, TrackSc


class ProxyKind(enum.Enum):
    DEFAULTS = "defaults"
    FRONTEND = "frontend"
    BACKEND = "backend"
    LISTEN = "listen"

    @property
    def has_frontend(self) -> bool:
        """HAProxy's PR_CAP_FE: frontends, listens, and defaults (which may serve either)."""
        return self is not ProxyKind.BACKEND

    @property
    def has_backend(self) -> bool:
        """HAProxy's PR_CAP_BE."""
        return self is not ProxyKind.FRONTEND


def default_server_template() -> Server:
    """The ``default-server`` every backend starts with: the model's (HAProxy's) defaults."""
    return Server(name="", host="", port=0, location=Location("", 0))


@dataclass(slots=True)
class StatsDraft:
    """The ``stats`` keywords read so far (model: ``StatsConfig``); inherited from defaults as
    HAProxy shares a defaults section's ``uri_auth`` with its proxies."""

    location: Location
    uri: str = "/haproxy?stats"
    realm: str = "HAProxy Statistics"
    auths: list[StatsAuth] = field(default_factory=list)
    refresh: float | None = None
    hide_version: bool = False
    scopes: list[str] = field(default_factory=list)
    metrics_uri: str | None = None


@dataclass(frozen=True, slots=True)
class ErrorFilesImport:
    """``errorfiles NAME [CODE...]``: the pages of an ``http-errors`` section, all of them when
    ``codes`` is empty; resolved once every section is read."""

    name: str
    codes: tuple[int, ...]
    location: Location


@dataclass(slots=True)
class Settings:
    """What a proxy inherits from its ``defaults`` section (rule 2)."""

    mode_location: Location | None = None  # where `mode http` was said, if it was
    timeouts: Timeouts = field(default_factory=Timeouts)
    # `errorfile` pages and `errorfiles` imports, in declaration order (kw_http_errors rule 3)
    errorfiles: list[ErrorFile | ErrorFilesImport] = field(default_factory=list)
    forwardfor: ForwardFor | None = None
    http_mode: HttpMode = HttpMode.KEEP_ALIVE
    # frontend side
    maxconn: int = 0
    default_backend: str | None = None
    default_backend_location: Location | None = None
    httplog: bool = False
    httplog_location: Location | None = None
    dontlognull: bool = False
    log_global: bool = False
    logs: list[LogTarget] = field(default_factory=list)
    # backend side
    balance: Balance = field(default_factory=Balance)
    hash: HashSettings = field(default_factory=HashSettings)
    cookie: CookiePolicy | None = None
    dynamic_cookie_key: str | None = None
    retries: int = 3
    redispatch: bool = False
    redispatch_interval: int = -1
    persist: bool = False
    allbackups: bool = False
    abortonclose: bool = False
    httpchk: bool = False
    check_request: HttpCheck = field(default_factory=HttpCheck)
    http_check_location: Location | None = None
    default_server: Server = field(default_factory=default_server_template)
    stats: StatsDraft | None = None
    # mode tcp (model_tcp): None until a `mode` line; a proxy without one runs HAProxy's tcp
    mode: ProxyMode | None = None
    tcplog: bool = False
    # the check ruleset chosen by `option tcp-check` or a protocol check (the last `option`
    # naming a check wins, `option httpchk` included); `tcp-check` lines are in `tcp_checks`
    check_protocol: CheckProtocol | None = None
    check_steps: tuple[TcpCheckStep, ...] = ()  # a protocol check's fixed ruleset
    check_location: Location | None = None
    tcp_checks: list[TcpCheckStep] = field(default_factory=list)
    tcp_check_location: Location | None = None
    # option external-check (the last check option wins), external-check command|path
    external_check: Location | None = None
    external_command: str | None = None
    external_path: str = ""
    # monitor-uri, unique-id-*, compression, option http-buffer-request
    monitor_uri: str | None = None
    unique_id_format: str | None = None
    unique_id_header: str | None = None
    unique_id_location: Location | None = None
    compression: Compression | None = None
    buffer_request: bool = False
    originalto: OriginalTo | None = None
    log_format: LogFormat | None = None


@dataclass(frozen=True, slots=True)
class TermDraft:
    """A condition term before ACL binding: a named ACL, or an anonymous one already built."""

    name: str
    negated: bool
    anonymous: Acl | None = None


@dataclass(frozen=True, slots=True)
class ConditionDraft:
    unless: bool
    any_of: tuple[tuple[TermDraft, ...], ...]
    location: Location


@dataclass(frozen=True, slots=True)
class StickRuleDraft:
    kind: StickRuleKind
    sample: Sample
    location: Location
    table: str | None
    condition: ConditionDraft | None


@dataclass(frozen=True, slots=True)
class TcpRequestRuleDraft:
    action: TcpAction
    location: Location
    condition: ConditionDraft | None
    counter: TrackSc | ScUpdate | None = None


@dataclass(frozen=True, slots=True)
class HttpRuleDraft:
    action: Action
    condition: ConditionDraft | None
    location: Location
    keyword: str


@dataclass(frozen=True, slots=True)
class UseBackendDraft:
    backend: str
    condition: ConditionDraft | None
    location: Location
    name_format: LogFormat | None = None


@dataclass(slots=True)
class Rules:
    """What a proxy never inherits (rule 2)."""

    # host, port, location, accept-proxy, TLS, proto (h2: HTTP/2 with prior knowledge), v6only
    binds: list[tuple[str, int, Location, bool, BindTls | None, str, bool]] = field(
        default_factory=list)
    acls: dict[str, list[AclTest]] = field(default_factory=dict)
    acl_locations: dict[str, Location] = field(default_factory=dict)
    use_backends: list[UseBackendDraft] = field(default_factory=list)
    servers: list[Server] = field(default_factory=list)
    stick_table: StickTable | None = None
    stick_rules: list[StickRuleDraft] = field(default_factory=list)
    force_persist: list[ConditionDraft] = field(default_factory=list)
    ignore_persist: list[ConditionDraft] = field(default_factory=list)
    stats_admin: list[ConditionDraft] = field(default_factory=list)
    monitor_fail: list[ConditionDraft] = field(default_factory=list)
    # where this section's own `http-check expect` is, once it has one
    http_check_expect: Location | None = None
    # tcp-request rules (model_tcp.TcpRequestRules): never inherited, as in HAProxy 2.6's
    # anonymous defaults
    tcp_connection: list[TcpRequestRuleDraft] = field(default_factory=list)
    tcp_content: list[TcpRequestRuleDraft] = field(default_factory=list)
    inspect_delay: float | None = None
    own_tcp_checks: bool = False  # this section has `tcp-check` lines of its own
    # http-request (and redirect), http-response, http-after-response rules; captures
    http_request: list[HttpRuleDraft] = field(default_factory=list)
    http_response: list[HttpRuleDraft] = field(default_factory=list)
    http_after_response: list[HttpRuleDraft] = field(default_factory=list)
    request_captures: list[CaptureSlot] = field(default_factory=list)
    response_captures: list[CaptureSlot] = field(default_factory=list)


@dataclass(slots=True)
class ProxyDraft:
    """One ``defaults``, ``frontend``, ``backend`` or ``listen`` section being parsed."""

    kind: ProxyKind
    name: str
    location: Location
    settings: Settings = field(default_factory=Settings)
    rules: Rules = field(default_factory=Rules)
    # defaults sections only: how proxies refer to them (HAProxy warns when both happen)
    referenced_explicitly: bool = False
    referenced_implicitly: bool = False
    # the error pages once `errorfile`/`errorfiles` are resolved (kw_http_errors rule 4)
    error_pages: dict[int, ErrorFile] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """How HAProxy names this section in messages: ``frontend 'web'``."""
        kind = "proxy" if self.kind is ProxyKind.LISTEN else self.kind.value
        return f"{kind} '{self.name}'" if self.name else f"{kind} section"

    def inherit(self, kind: ProxyKind, name: str, location: Location) -> ProxyDraft:
        """A new section that starts from this defaults section's settings."""
        return ProxyDraft(kind, name, location, copy.deepcopy(self.settings))

    def knows_acl(self, name: str) -> bool:
        return name in self.rules.acls


def bind_condition(draft: ConditionDraft, acls: dict[str, Acl],
                   predefined: dict[str, Acl]) -> Condition:
    """Resolve the names of a condition to the section's final ACLs (rule 4); a section's own
    ACL hides a predefined one of the same name, as in HAProxy."""
    groups = tuple(
        tuple(
            ConditionTerm(term.anonymous or acls.get(term.name) or predefined[term.name],
                          term.negated)
            for term in group
        )
        for group in draft.any_of
    )
    return Condition(draft.unless, groups, draft.location)
