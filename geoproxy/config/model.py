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


class AclCriterion(enum.Enum):
    """The ACL fetches geoproxy evaluates. The value is HAProxy's spelling."""

    PATH = "path"
    PATH_BEG = "path_beg"
    PATH_END = "path_end"
    PATH_SUB = "path_sub"
    PATH_REG = "path_reg"
    HDR = "hdr"  # exact match on a header value: hdr(host) -i example.com
    HDR_BEG = "hdr_beg"
    HDR_END = "hdr_end"
    HDR_SUB = "hdr_sub"
    HDR_DOM = "hdr_dom"
    HDR_REG = "hdr_reg"
    METHOD = "method"
    SRC = "src"  # client address against addresses or CIDR networks
    # TCP fetches (also usable, where they mean something, in HTTP proxies); HAProxy's
    # 1.x spellings (req_ssl_sni, req_len...) are read as the same criteria
    DST_PORT = "dst_port"  # integer patterns: N, N:M, eq|ge|gt|le|lt N
    SRC_PORT = "src_port"
    REQ_LEN = "req.len"  # bytes received from the client and not yet forwarded
    SSL_HELLO_TYPE = "req.ssl_hello_type"  # 1: a TLS ClientHello waits in the buffer
    SSL_SNI = "req.ssl_sni"  # the ClientHello's server name, exact
    SSL_SNI_BEG = "req.ssl_sni_beg"
    SSL_SNI_END = "req.ssl_sni_end"
    SSL_SNI_SUB = "req.ssl_sni_sub"
    SSL_SNI_REG = "req.ssl_sni_reg"
    SSL_SNI_DOM = "req.ssl_sni_dom"
    SSL_SNI_LEN = "req.ssl_sni_len"  # integer patterns against the name's length
    SSL_SNI_FOUND = "req.ssl_sni_found"
    PAYLOAD_BIN = "req.payload_bin"  # req.payload(OFFSET,LENGTH) -m bin HEX
    PAYLOAD_FOUND = "req.payload_found"  # req.payload(OFFSET,LENGTH) -m found
    PROTO_HTTP = "req.proto_http"  # the predefined ACL HTTP: the request is HTTP
    WAIT_END = "wait_end"  # the predefined ACL WAIT_END: tcp-request inspect-delay is over
    ALWAYS_TRUE = "always_true"  # also the predefined ACL `TRUE`
    ALWAYS_FALSE = "always_false"  # also the predefined ACL `FALSE`


@dataclass(frozen=True, slots=True)
class AclTest:
    """One ACL test: a fetch, its argument (the header name for ``hdr*``), flags and patterns.

    ``patterns`` are matched with OR, as in HAProxy. ``ignore_case`` is the ``-i`` flag; header
    names in ``argument`` are stored lower-case.
    """

    criterion: AclCriterion
    argument: str | None
    patterns: tuple[str, ...]
    ignore_case: bool = False


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
    error_limit: int = 10
    on_error: OnError = OnError.FAIL_CHECK
    on_marked_down_shutdown_sessions: bool = False
    on_marked_up_shutdown_backup_sessions: bool = False
    send_proxy: ProxyProtocol | None = None  # send-proxy / send-proxy-v2
    check_send_proxy: bool = False  # check-send-proxy: the checks send the header too

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)


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
    """``stick-table type T [len N] size N [expire T] [nopurge]``.

    ``size`` is an entry count (HAProxy's k/m/g suffixes resolved), ``expire`` seconds or None.
    """

    type: StickTableType
    size: int
    location: Location
    length: int = 32
    expire: float | None = None
    nopurge: bool = False


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


@dataclass(frozen=True, slots=True)
class ForwardFor:
    """``option forwardfor [except NETWORK] [header NAME] [if-none]``."""

    header: str = "X-Forwarded-For"
    except_network: str | None = None
    if_none: bool = False


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
    """``use_backend NAME if|unless COND``."""

    backend: str
    condition: Condition
    location: Location


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
    tcp_request: TcpRequestRules | None = None  # tcp-request content, inspect-delay

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

    @property
    def request_limits(self) -> RequestLimits:
        """What a request head may hold, as HAProxy sizes it: the head must fit in the buffer
        less its rewrite reserve (``tune.maxrewrite``: 1024 bytes, at most half the buffer),
        and ``tune.http.maxhdr`` counts the request line with the header fields."""
        head = self.bufsize - min(MAXREWRITE, self.bufsize // 2)
        return RequestLimits(max_head=head, max_fields=self.maxhdr - 1)


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
