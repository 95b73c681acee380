"""The typed configuration every other layer reads.

Rules:
1. Everything here is a frozen, slotted dataclass or an enum. Nothing downstream of the parser
   ever sees a raw configuration line; it sees these values.
2. Times are seconds as ``float``; ``None`` means "not set" (HAProxy's meaning for an unset
   timeout is "no limit", and its documentation warns about it, as ``geoproxy check`` does).
3. Defaults are HAProxy's, so that a value left out of a configuration means here what it means
   in HAProxy's configuration manual. Each default names its manual keyword.
4. ``defaults`` sections are resolved by the parser: a ``Frontend`` or ``Backend`` carries the
   final values it runs with, never a reference to the defaults it inherited them from.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:  # TCP proxies' own values (model_tcp imports this module)
    from geoproxy.config.model_tcp import ProxyProtocol, TcpCheck, TcpRequestRules

from geoproxy.config.model_tls import BindTls, ServerTls
from geoproxy.counters.datatypes import StoreItem
from geoproxy.rules.auth import Userlist
from geoproxy.rules.spec import Action, CaptureSlot, LogFormat, MatchSpec, SampleExpr

# tune.bufsize and tune.http.maxhdr's defaults, and tune.maxrewrite's (the buffer's reserve)
DEFAULT_BUFSIZE: Final = 16384
DEFAULT_MAXHDR: Final = 101
MAXREWRITE: Final = 1024

@dataclass(frozen=True, slots=True)
class Location:
    """Where a value came from, for error messages: ``file:line``."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


# --------------------------------------------------------------------------------------------
# ACLs and conditions (`acl NAME CRITERION [-i] PATTERN...`, `if|unless COND`)


@dataclass(frozen=True, slots=True)
class AclTest:
    """One ACL test: a sample expression (a fetch and its converters) and how its samples are
    matched (``-m`` method, ``-i``, patterns, those of ``-f`` files included). See
    ``geoproxy.rules.spec``."""

    expr: SampleExpr
    match: MatchSpec


@dataclass(frozen=True, slots=True)
class Acl:
    """A named ACL. Several ``acl`` lines with the same name are ORed, as in HAProxy."""

    name: str
    tests: tuple[AclTest, ...]
    location: Location


@dataclass(frozen=True, slots=True)
class ConditionTerm:
    """One term of a condition: a named ACL or an anonymous ``{ ... }`` ACL, maybe negated."""

    test: Acl
    negated: bool = False


@dataclass(frozen=True, slots=True)
class Condition:
    """``if`` / ``unless`` followed by terms: ANDed within a group, groups ORed (``||``, ``or``).

    Named ACLs are already resolved to their ``Acl`` value by the parser.
    """

    unless: bool
    any_of: tuple[tuple[ConditionTerm, ...], ...]
    location: Location


# --------------------------------------------------------------------------------------------
# Balancing


class BalanceAlgorithm(enum.Enum):
    ROUNDROBIN = "roundrobin"
    STATIC_RR = "static-rr"
    LEASTCONN = "leastconn"
    FIRST = "first"
    SOURCE = "source"
    URI = "uri"
    URL_PARAM = "url_param"
    HDR = "hdr"
    RANDOM = "random"
    HASH = "hash"  # balance hash EXPR (HAProxy 2.6): a sample expression, map or consistent


@dataclass(frozen=True, slots=True)
class Balance:
    """``balance ALGORITHM [ARGS]``. HAProxy's default is roundrobin.

    ``param`` is the parameter name for url_param and the header name (lower-case) for hdr.
    ``uri_len``/``uri_depth``/``uri_whole``/``uri_path_only`` are ``balance uri`` options
    (0: no limit), ``use_domain_only`` belongs to ``hdr``, ``draws`` to ``random`` (HAProxy's
    default: 2, the least loaded of two random picks).
    """

    algorithm: BalanceAlgorithm = BalanceAlgorithm.ROUNDROBIN
    param: str | None = None
    uri_len: int = 0
    uri_depth: int = 0
    uri_whole: bool = False
    uri_path_only: bool = False
    use_domain_only: bool = False
    draws: int = 2
    expression: str | None = None  # balance hash: the sample fetch, as written


class HashType(enum.Enum):
    """``hash-type map-based | consistent``. HAProxy's default is map-based."""

    MAP_BASED = "map-based"
    CONSISTENT = "consistent"


class HashFunction(enum.Enum):
    SDBM = "sdbm"
    DJB2 = "djb2"
    WT6 = "wt6"
    CRC32 = "crc32"


@dataclass(frozen=True, slots=True)
class HashSettings:
    """``hash-type METHOD [FUNCTION [avalanche]]``. HAProxy applies avalanche by default to
    ``consistent`` when no function is named."""

    method: HashType = HashType.MAP_BASED
    function: HashFunction = HashFunction.SDBM
    avalanche: bool = False


# --------------------------------------------------------------------------------------------
# Servers and health


class Observe(enum.Enum):
    LAYER4 = "layer4"
    LAYER7 = "layer7"


class OnError(enum.Enum):
    FASTINTER = "fastinter"
    FAIL_CHECK = "fail-check"
    SUDDEN_DEATH = "sudden-death"
    MARK_DOWN = "mark-down"


@dataclass(frozen=True, slots=True)
class Server:
    """``server NAME ADDR:PORT [params]`` with HAProxy's defaults.

    ``maxconn``/``maxqueue`` of 0 mean "no limit" as in HAProxy. ``cookie`` is the server id
    written into persistence cookies (None: this server never gets persistent clients).
    ``fastinter``/``downinter`` of None mean "same as inter". ``check_port``/``check_addr``
    are the ``port``/``addr`` parameters (where checks are sent, when not the traffic address).
    """

    name: str
    host: str
    port: int
    location: Location
    weight: int = 1
    maxconn: int = 0
    maxqueue: int = 0
    backup: bool = False
    disabled: bool = False
    cookie: str | None = None
    check: bool = False
    check_port: int | None = None
    check_addr: str | None = None
    inter: float = 2.0
    fastinter: float | None = None
    downinter: float | None = None
    rise: int = 2
    fall: int = 3
    slowstart: float = 0.0
    observe: Observe | None = None
    # ssl: traffic to the server is TLS; check_ssl: so are its checks (kw_ssl.py)
    ssl: bool = False
    check_ssl: bool = False
    tls: ServerTls = ServerTls()
    error_limit: int = 10
    on_error: OnError = OnError.FAIL_CHECK
    on_marked_down_shutdown_sessions: bool = False
    on_marked_up_shutdown_backup_sessions: bool = False
    send_proxy: ProxyProtocol | None = None  # send-proxy / send-proxy-v2
    check_send_proxy: bool = False  # check-send-proxy: the checks send the header too
    # `resolvers NAME` and its companions (geoproxy.config.kw_resolve)
    resolution: ServerResolution | None = None

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    @property
    def maps_address(self) -> bool:
        """``server NAME *:PORT`` (or ``0.0.0.0``, ``::``): each request goes to the address
        the client connected to, as HAProxy does."""
        return self.host in ("0.0.0.0", "::")

    @property
    def maps_port(self) -> bool:
        """``server NAME ADDR`` without a port: each request goes to the port the client
        connected to (the frontend's bind port), as HAProxy does."""
        return self.port == 0


class ResolvePrefer(enum.Enum):
    IPV4 = "ipv4"
    IPV6 = "ipv6"


@dataclass(frozen=True, slots=True)
class ServerResolution:
    """``server ... resolvers NAME [resolve-prefer F] [init-addr M,...] [resolve-opts O,...]
    [resolve-net N,...]``: the server's FQDN is resolved at run time through resolvers section
    ``resolvers``, every ``hold valid``. ``init_addr`` are the methods tried at start-up in
    order (``last``, ``libc``, ``none`` or an IP address; HAProxy's default ``last,libc``);
    ``allow_dup_ip``: servers sharing the FQDN may get the same address (HAProxy's
    ``prevent-dup-ip`` is the default); ``networks``: preferred networks (``resolve-net``)."""

    resolvers: str | None
    prefer: ResolvePrefer = ResolvePrefer.IPV6
    init_addr: tuple[str, ...] = ("last", "libc")
    allow_dup_ip: bool = False
    networks: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Resolvers:
    """A ``resolvers NAME`` section. ``nameservers`` are (name, host, port); ``hold`` maps
    HAProxy's ``hold`` statuses (valid, nx, timeout, refused, other, obsolete) to seconds;
    ``parse_resolv_conf``: the system's resolver is used (geoproxy resolves names through
    it whenever no nameserver is given)."""

    name: str
    location: Location
    nameservers: tuple[tuple[str, str, int], ...] = ()
    parse_resolv_conf: bool = False
    hold: tuple[tuple[str, float], ...] = (
        ("nx", 30.0), ("obsolete", 0.0), ("other", 30.0), ("refused", 30.0),
        ("timeout", 30.0), ("valid", 10.0),
    )
    resolve_retries: int = 3
    timeout_resolve: float = 1.0
    timeout_retry: float = 1.0
    accepted_payload_size: int = 512

    def hold_for(self, status: str) -> float:
        return dict(self.hold)[status]


class HttpCheckExpectKind(enum.Enum):
    STATUS = "status"
    RSTATUS = "rstatus"
    STRING = "string"
    RSTRING = "rstring"


@dataclass(frozen=True, slots=True)
class HttpCheckExpect:
    """``http-check expect [!] status|rstatus|string|rstring PATTERN``."""

    kind: HttpCheckExpectKind
    pattern: str
    negated: bool = False


@dataclass(frozen=True, slots=True)
class ExternalCheck:
    """``option external-check`` with ``external-check command`` and ``path``: the command
    runs once per check with HAProxy's arguments and environment (geoproxy.health.external).
    ``proxy_id`` is HAProxy's automatic proxy id (the proxy's rank among frontends, listens and
    backends); ``proxy_addr``/``proxy_port`` are a listen's first bind, "" in a backend."""

    command: str
    path: str  # the PATH the command runs with (HAProxy's default: "")
    location: Location  # the `option external-check` line
    proxy_id: int = 0
    proxy_addr: str = ""
    proxy_port: str = ""


@dataclass(frozen=True, slots=True)
class HttpCheck:
    """``option httpchk [METHOD] [URI] [VERSION]``; HAProxy's default is ``OPTIONS / HTTP/1.0``.

    ``http-check send [meth M] [uri U] [ver V] [hdr NAME VALUE]... [body TEXT]`` overrides the
    request line and adds ``headers`` (in order) and a ``body``; headers hidden after ``\r\n``
    in the version of ``option httpchk`` (the 1.x idiom) land in ``headers`` too. Without
    ``expect``, a 2xx or 3xx status passes, as in HAProxy.
    """

    method: str = "OPTIONS"
    uri: str = "/"
    version: str = "HTTP/1.0"
    expect: HttpCheckExpect | None = None
    headers: tuple[tuple[str, str], ...] = ()
    body: str = ""
    disable_on_404: bool = False


# --------------------------------------------------------------------------------------------
# Persistence


class CookieMode(enum.Enum):
    # No mode named: HAProxy only reads the cookie (the server sets it to the server id
    # itself); responses are never modified. Checked against HAProxy 2.6.
    PASSIVE = "passive"
    REWRITE = "rewrite"
    INSERT = "insert"
    PREFIX = "prefix"
    # geoproxy's own: the application's session id ends with its route (Tomcat's jvmRoute)
    ROUTE = "route"


@dataclass(frozen=True, slots=True)
class CookiePolicy:
    """``cookie NAME [rewrite|insert|prefix|route] [options]``.

    When no mode is named the mode is ``PASSIVE`` (HAProxy reads the cookie and leaves the
    server's Set-Cookie alone). ``route_delim`` belongs to route mode (the character before the
    route in the session id). ``maxidle``/``maxlife`` are seconds, None when not set.
    """

    name: str
    mode: CookieMode
    location: Location
    indirect: bool = False
    nocache: bool = False
    postonly: bool = False
    preserve: bool = False
    httponly: bool = False
    secure: bool = False
    domains: tuple[str, ...] = ()
    maxidle: float | None = None
    maxlife: float | None = None
    dynamic: bool = False
    attrs: tuple[str, ...] = ()
    route_delim: str = "."


class StickTableType(enum.Enum):
    IP = "ip"
    IPV6 = "ipv6"
    INTEGER = "integer"
    STRING = "string"
    BINARY = "binary"


@dataclass(frozen=True, slots=True)
class StickTable:
    """``stick-table type T [len N] size N [expire T] [nopurge] [store D,...]``.

    ``size`` is an entry count (HAProxy's k/m/g suffixes resolved), ``expire`` seconds or None;
    ``store`` the counters each entry keeps (``geoproxy.counters.datatypes``).
    """

    type: StickTableType
    size: int
    location: Location
    length: int = 32
    expire: float | None = None
    nopurge: bool = False
    store: tuple[StoreItem, ...] = ()


class SampleFetch(enum.Enum):
    REQ_COOK = "req.cook"
    RES_COOK = "res.cook"
    SRC = "src"
    HDR = "hdr"
    RES_HDR = "res.hdr"
    URL_PARAM = "url_param"


@dataclass(frozen=True, slots=True)
class Sample:
    """A sample fetch with its argument: ``req.cook(JSESSIONID)``, ``src``, ``hdr(x-user)``."""

    fetch: SampleFetch
    argument: str | None = None


class StickRuleKind(enum.Enum):
    ON = "on"
    MATCH = "match"
    STORE_REQUEST = "store-request"
    STORE_RESPONSE = "store-response"


@dataclass(frozen=True, slots=True)
class StickRule:
    """``stick on|match|store-request|store-response SAMPLE [table NAME] [if|unless COND]``."""

    kind: StickRuleKind
    sample: Sample
    location: Location
    table: str | None = None
    condition: Condition | None = None


# --------------------------------------------------------------------------------------------
# Sections


@dataclass(frozen=True, slots=True)
class Timeouts:
    """``timeout ...`` values in seconds; None where unset.

    The 1.x aliases map here: ``contimeout`` -> connect, ``clitimeout`` -> client,
    ``srvtimeout`` -> server. ``http_keep_alive`` unset means "use http_request", and
    ``check`` unset means "use inter", as HAProxy documents. A timeout of 0 is unset, as in
    HAProxy (its "missing timeouts" warning asks for non-zero values).
    """

    connect: float | None = None
    client: float | None = None
    server: float | None = None
    queue: float | None = None
    http_request: float | None = None
    http_keep_alive: float | None = None
    check: float | None = None
    tunnel: float | None = None
    client_fin: float | None = None
    server_fin: float | None = None
    tarpit: float | None = None


@dataclass(frozen=True, slots=True)
class ForwardFor:
    """``option forwardfor [except NETWORK] [header NAME] [if-none]``."""

    header: str = "X-Forwarded-For"
    except_network: str | None = None
    if_none: bool = False


@dataclass(frozen=True, slots=True)
class OriginalTo:
    """``option originalto [except NETWORK] [header NAME]``: the address the client connected
    to, sent to the server (IPv4 destinations only, as HAProxy 2.6)."""

    header: str = "X-Original-To"
    except_network: str | None = None


@dataclass(frozen=True, slots=True)
class ErrorFile:
    """``errorfile CODE FILE``: the file holds a whole HTTP response, parsed at load time.

    ``status`` is the code the file replaces; ``response`` is the file as read, and
    ``response_status``/``reason``/``headers``/``body`` its parsed parts (the status line of
    the file may differ from ``status``: HAProxy sends the file as it is).
    """

    status: int
    path: str
    response: bytes
    location: Location
    response_status: int = 0
    reason: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""

    @property
    def is_empty(self) -> bool:
        """An empty file: HAProxy closes the connection without answering."""
        return not self.response


class CompressionAlgorithm(enum.Enum):
    """``compression algo``: the name as configured; ``token`` is what Accept-Encoding and
    Content-Encoding call it."""

    IDENTITY = "identity"
    GZIP = "gzip"
    DEFLATE = "deflate"
    RAW_DEFLATE = "raw-deflate"

    @property
    def token(self) -> str:
        return "deflate" if self is CompressionAlgorithm.RAW_DEFLATE else self.value


@dataclass(frozen=True, slots=True)
class Compression:
    """``compression algo A... | type T... | offload`` of one proxy: ``algorithms`` in
    preference order (empty: none named, nothing is compressed), ``types`` are Content-Type
    prefixes (empty: every type but multipart), ``offload`` removes Accept-Encoding from
    requests that will be compressed."""

    algorithms: tuple[CompressionAlgorithm, ...] = ()
    types: tuple[str, ...] = ()
    offload: bool = False


@dataclass(frozen=True, slots=True)
class Monitor:
    """``monitor-uri URI`` and ``monitor fail if|unless COND``: requests whose URI is exactly
    ``uri`` are answered by the proxy itself, 200, or 503 when a ``fail`` condition holds."""

    uri: str
    fail: tuple[Condition, ...] = ()


@dataclass(frozen=True, slots=True)
class UniqueId:
    """``unique-id-format FMT`` (a log-format string) and ``unique-id-header NAME``."""

    format: str
    header: str | None = None
    location: Location | None = None


class HttpMode(enum.Enum):
    """How connections are kept: ``option http-keep-alive`` (HAProxy's default),
    ``option http-server-close`` (close the server side after each response), ``option
    httpclose`` (close both sides). The last one named in a section wins."""

    KEEP_ALIVE = "http-keep-alive"
    SERVER_CLOSE = "http-server-close"
    CLOSE = "httpclose"


@dataclass(frozen=True, slots=True)
class Bind:
    """One ``bind`` address. ``*`` or an empty host means every IPv4 address (0.0.0.0)."""

    host: str
    port: int
    location: Location
    accept_proxy: bool = False  # accept-proxy: connections start with a PROXY protocol header
    tls: BindTls | None = None  # ssl crt ...: the bind terminates TLS (model_tls.py)
    proto: str = ""  # proto h2: clients speak HTTP/2 with prior knowledge (h2c)
    v6only: bool = False  # v6only: an IPv6 address that takes no IPv4 client (IPV6_V6ONLY)

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)


class ProxyMode(enum.Enum):
    """``mode http | tcp``. HAProxy's default is tcp: the parser sets it for a section that
    names no mode; the model's default is http only so that HTTP dumps stay short."""

    HTTP = "http"
    TCP = "tcp"


@dataclass(frozen=True, slots=True)
class UseBackend:
    """``use_backend NAME [if|unless COND]``; ``name_format`` is set when the name is a
    log-format string (``use_backend be_%[req.hdr(host),lower]``), evaluated per request."""

    backend: str
    condition: Condition | None
    location: Location
    name_format: LogFormat | None = None


@dataclass(frozen=True, slots=True)
class HttpRule:
    """One ``http-request``/``http-response``/``http-after-response`` rule (or a ``redirect``
    line): the action as parsed (``geoproxy.rules.spec``), its condition, and where it is.
    ``keyword`` is how messages name it: ``http-request set-header``."""

    action: Action
    condition: Condition | None
    location: Location
    keyword: str


@dataclass(frozen=True, slots=True)
class HttpRules:
    """A proxy's rules, in configuration order, and its captures: ``request``
    (``http-request`` and ``redirect``), ``response``, ``after_response``;
    ``request_captures``/``response_captures`` are the slots of ``capture request|response
    header`` and ``declare capture`` (the log's ``{...}`` fields, ``capture.req.hdr(N)``)."""

    request: tuple[HttpRule, ...] = ()
    response: tuple[HttpRule, ...] = ()
    after_response: tuple[HttpRule, ...] = ()
    request_captures: tuple[CaptureSlot, ...] = ()
    response_captures: tuple[CaptureSlot, ...] = ()

    @property
    def is_empty(self) -> bool:
        return not (self.request or self.response or self.after_response
                    or self.request_captures or self.response_captures)


@dataclass(frozen=True, slots=True)
class StatsAuth:
    """``stats auth USER:PASSWORD`` (the password is what follows the first colon, in clear, as
    HAProxy reads it; no colon: an empty password)."""

    user: str
    password: str


@dataclass(frozen=True, slots=True)
class StatsConfig:
    """The ``stats ...`` keywords of a frontend or listen section (or inherited from its
    defaults), with HAProxy's defaults: any of them enables the page.

    ``uri`` is a prefix of the request URI, query string included (HAProxy's
    ``/haproxy?stats`` default); ``auths`` empty means no authentication; ``admin`` holds the
    ``stats admin if|unless COND`` conditions (any that holds grants admin rights); ``refresh``
    is seconds (None: no ``Refresh`` header); ``scopes`` limits the proxies shown (empty: all;
    ``.`` is the section itself). ``metrics_uri`` is geoproxy's own ``stats metrics-uri PATH``,
    where Prometheus scrapes (None: ``/metrics`` on a listener serving only stats, else none).
    """

    location: Location
    uri: str = "/haproxy?stats"
    realm: str = "HAProxy Statistics"
    auths: tuple[StatsAuth, ...] = ()
    admin: tuple[Condition, ...] = ()
    refresh: float | None = None
    hide_version: bool = False
    scopes: tuple[str, ...] = ()
    metrics_uri: str | None = None


@dataclass(frozen=True, slots=True)
class Frontend:
    """A ``frontend``, or the frontend half of a ``listen`` section.

    ``default_backend`` is the backend's name (for a ``listen`` section: its own name, unless
    one was named), ``default_backend_location`` the line that named it (None: the ``listen``
    section's own); ``http_mode`` is the connection mode named in the frontend.
    """

    name: str
    location: Location
    binds: tuple[Bind, ...]
    default_backend: str | None = None
    default_backend_location: Location | None = None
    use_backends: tuple[UseBackend, ...] = ()
    acls: tuple[Acl, ...] = ()
    timeouts: Timeouts = field(default_factory=Timeouts)
    forwardfor: ForwardFor | None = None
    httplog: bool = False
    dontlognull: bool = False
    http_mode: HttpMode = HttpMode.KEEP_ALIVE
    maxconn: int = 0
    errorfiles: tuple[ErrorFile, ...] = ()
    stats: StatsConfig | None = None
    # `log global` (the global section's targets) and this frontend's own `log` lines
    log_global: bool = False
    logs: tuple[LogTarget, ...] = ()
    mode: ProxyMode = ProxyMode.HTTP
    tcplog: bool = False  # option tcplog (and option httplog in a TCP frontend)
    tcp_request: TcpRequestRules | None = None  # tcp-request connection|content, inspect-delay
    monitor: Monitor | None = None
    unique_id: UniqueId | None = None
    compression: Compression | None = None
    buffer_request: bool = False  # option http-buffer-request
    # option abortonclose from defaults (or a listen's own): HAProxy 2.6 aborts a queued
    # request only when its frontend has it too, not only its backend
    abortonclose: bool = False
    originalto: OriginalTo | None = None
    rules: HttpRules = field(default_factory=HttpRules)
    log_format: LogFormat | None = None
    stick_table: StickTable | None = None  # for track-sc rules (a listen's: its backend's too)

    @property
    def http_server_close(self) -> bool:
        return self.http_mode is HttpMode.SERVER_CLOSE

    @property
    def http_keep_alive(self) -> bool:
        return self.http_mode is HttpMode.KEEP_ALIVE


@dataclass(frozen=True, slots=True)
class Backend:
    """A ``backend``, or the backend half of a ``listen`` section.

    ``retries`` defaults to 3 as in HAProxy. ``servers`` keep configuration order, which HAProxy
    uses for ids, cookie matching and the ``first`` algorithm. ``redispatch_interval`` is the
    optional argument of ``option redispatch`` (HAProxy: -1, redispatch on the last retry; N > 0,
    on every Nth retry; N < 0, N retries before the last).
    """

    name: str
    location: Location
    servers: tuple[Server, ...] = ()
    balance: Balance = field(default_factory=Balance)
    hash: HashSettings = field(default_factory=HashSettings)
    cookie: CookiePolicy | None = None
    dynamic_cookie_key: str | None = None
    timeouts: Timeouts = field(default_factory=Timeouts)
    retries: int = 3
    redispatch: bool = False
    redispatch_interval: int = -1
    persist: bool = False
    allbackups: bool = False
    # a request whose client closed while it waited (queue, connect) is dropped, not sent
    abortonclose: bool = False
    forwardfor: ForwardFor | None = None
    http_mode: HttpMode = HttpMode.KEEP_ALIVE
    httpchk: HttpCheck | None = None
    stick_table: StickTable | None = None
    stick_rules: tuple[StickRule, ...] = ()
    force_persist: tuple[Condition, ...] = ()
    ignore_persist: tuple[Condition, ...] = ()
    acls: tuple[Acl, ...] = ()
    errorfiles: tuple[ErrorFile, ...] = ()
    mode: ProxyMode = ProxyMode.HTTP
    tcp_check: TcpCheck | None = None  # option tcp-check and the protocol checks
    external_check: ExternalCheck | None = None  # option external-check
    tcp_request: TcpRequestRules | None = None  # tcp-request content, inspect-delay
    stats: StatsConfig | None = None  # a backend serves the stats page too (HAProxy's meaning)
    compression: Compression | None = None
    buffer_request: bool = False  # option http-buffer-request
    originalto: OriginalTo | None = None
    rules: HttpRules = field(default_factory=HttpRules)

    def server(self, name: str) -> Server | None:
        for server in self.servers:
            if server.name == name:
                return server
        return None

    @property
    def http_server_close(self) -> bool:
        return self.http_mode is HttpMode.SERVER_CLOSE

    @property
    def http_keep_alive(self) -> bool:
        return self.http_mode is HttpMode.KEEP_ALIVE


@dataclass(frozen=True, slots=True)
class StatsSocket:
    """``stats socket`` in ``global``: where this host serves HAProxy's Runtime API. ``path``
    is a unix socket's path ("" for TCP, then ``host``/``port``); ``mode``, ``user`` and
    ``group`` apply to a unix socket (None: as created); ``level`` is ``user``, ``operator``
    (HAProxy's default) or ``admin``."""

    location: Location
    path: str = ""
    host: str = ""
    port: int = 0
    mode: int | None = None
    user: str | None = None
    group: str | None = None
    level: str = "operator"

    @property
    def label(self) -> str:
        return self.path or f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class LogTarget:
    """``log ADDRESS [len N] [format F] FACILITY [LEVEL [MINLEVEL]]``: where request and
    health lines go. ADDRESS is ``stdout``, ``stderr``, a unix socket path (``/dev/log``) or
    ``[udp@|ipv4@]HOST[:PORT]`` (UDP syslog, port 514 by default)."""

    address: str
    facility: str
    level: str | None = None
    location: Location | None = None


@dataclass(frozen=True, slots=True)
class GlobalSettings:
    """The ``global`` keywords geoproxy uses. ``redis_url`` and ``workers`` are geoproxy's own
    (``redis-url URL``, ``workers N``); the command line and environment override them.
    ``bufsize`` and ``maxhdr`` are ``tune.bufsize`` and ``tune.http.maxhdr``: they bound a
    request's head (``request_limits``)."""

    maxconn: int = 0
    redis_url: str | None = None
    workers: int | None = None
    logs: tuple[LogTarget, ...] = ()
    bufsize: int = DEFAULT_BUFSIZE
    maxhdr: int = DEFAULT_MAXHDR
    stats_sockets: tuple[StatsSocket, ...] = ()
    stats_timeout: float = 10.0  # ``stats timeout``: an idle Runtime API session closes
    h2: H2Settings = field(default_factory=lambda: H2Settings())  # tune.h2.*
    external_check: bool = False  # `external-check`: backends may run check commands

    @property
    def request_limits(self) -> RequestLimits:
        """What a request head may hold, as HAProxy sizes it: the head must fit in the buffer
        less its rewrite reserve (``tune.maxrewrite``: 1024 bytes, at most half the buffer),
        and ``tune.http.maxhdr`` counts the request line with the header fields."""
        head = self.bufsize - min(MAXREWRITE, self.bufsize // 2)
        return RequestLimits(max_head=head, max_fields=self.maxhdr - 1)


@dataclass(frozen=True, slots=True)
class H2Settings:
    """``tune.h2.*``: the SETTINGS geoproxy announces to HTTP/2 clients (HAProxy 2.6's
    defaults). The header list size comes from ``request_limits``, as for HTTP/1.1."""

    header_table_size: int = 4096
    initial_window_size: int = 65535
    max_concurrent_streams: int = 100
    max_frame_size: int = 16384


@dataclass(frozen=True, slots=True)
class RequestLimits:
    """Limits of one request head: ``max_head`` bytes from the request line's first byte to
    the blank line's last, ``max_fields`` header fields."""

    max_head: int = DEFAULT_BUFSIZE - MAXREWRITE
    max_fields: int = DEFAULT_MAXHDR - 1


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """A warning or an error, phrased as HAProxy phrases them: ``parsing [file:line] : ...``.

    ``keyword`` is the directive's keyword ("" for a line that could not be cut into words);
    line 0 means the whole file (it cannot be opened, it has no frontend), named by the message;
    ``message`` is HAProxy's sentence, which names the keyword itself (HAProxy's messages put
    it in different places: "'timeout client' expects ...", "unknown keyword 'x' in ...").
    """

    location: Location
    keyword: str
    message: str

    def __str__(self) -> str:
        if self.location.line == 0:  # about the whole file, which the message names
            return self.message
        return f"parsing [{self.location}] : {self.message}"


@dataclass(frozen=True, slots=True)
class Config:
    """A whole, validated configuration. ``warnings`` are printed by ``geoproxy check`` and at
    start-up; a configuration with errors never becomes a ``Config`` (the parser raises
    ``ConfigError`` with all of them)."""

    path: str
    global_: GlobalSettings
    frontends: tuple[Frontend, ...]
    backends: tuple[Backend, ...]
    warnings: tuple[Diagnostic, ...] = ()
    resolvers: tuple[Resolvers, ...] = ()
    userlists: tuple[Userlist, ...] = ()

    def resolvers_section(self, name: str) -> Resolvers | None:
        """The ``resolvers`` section ``name``; ``default`` always exists, as in HAProxy 2.6
        (built from the system's resolver when the file declares none of that name)."""
        found = next((r for r in self.resolvers if r.name == name), None)
        if found is None and name == "default":
            found = Resolvers(name, Location(self.path, 0), parse_resolv_conf=True)
        return found

    def backend(self, name: str) -> Backend | None:
        for backend in self.backends:
            if backend.name == name:
                return backend
        return None

    def frontend(self, name: str) -> Frontend | None:
        for frontend in self.frontends:
            if frontend.name == name:
                return frontend
        return None
