"""The configuration values only TCP proxies (and the checks of any proxy) need.

Rules (as ``model.py``'s): frozen, slotted dataclasses and enums; times in seconds; defaults
are HAProxy's. ``model.py`` refers to these types; they are kept apart because they are one
concern (``mode tcp``: ``tcp-request``, ``tcp-check`` and the protocol checks, the PROXY
protocol).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from geoproxy.config.model import Condition, Location


class ProxyProtocol(enum.Enum):
    """``send-proxy`` (the text header, version 1) or ``send-proxy-v2`` (binary)."""

    V1 = "v1"
    V2 = "v2"


# --------------------------------------------------------------------------------------------
# tcp-request


class TcpAction(enum.Enum):
    """What a ``tcp-request`` rule does when its condition holds."""

    ACCEPT = "accept"
    REJECT = "reject"
    # closes without a word to the client: HAProxy lets the client's packets go unanswered
    SILENT_DROP = "silent-drop"


@dataclass(frozen=True, slots=True)
class TcpRequestRule:
    """``tcp-request connection|content ACTION [if|unless COND]``."""

    action: TcpAction
    location: Location
    condition: Condition | None = None


@dataclass(frozen=True, slots=True)
class TcpRequestRules:
    """A proxy's ``tcp-request`` rules, in order. ``inspect_delay`` is ``tcp-request
    inspect-delay`` in seconds (None: content rules decide on what the first read brought)."""

    connection: tuple[TcpRequestRule, ...] = ()
    content: tuple[TcpRequestRule, ...] = ()
    inspect_delay: float | None = None


# --------------------------------------------------------------------------------------------
# tcp-check and the protocol checks


class TcpCheckAction(enum.Enum):
    CONNECT = "connect"
    SEND = "send"
    EXPECT = "expect"
    COMMENT = "comment"  # ``tcp-check comment TEXT``: names the rule after it


class ExpectKind(enum.Enum):
    """What ``tcp-check expect`` matches. ``CUSTOM`` is a protocol check's own parser
    (``custom`` names which: HAProxy's mysql and ldap functions)."""

    STRING = "string"
    RSTRING = "rstring"
    BINARY = "binary"
    RBINARY = "rbinary"
    CUSTOM = "custom"


@dataclass(frozen=True, slots=True)
class TcpCheckStep:
    """One ``tcp-check`` rule.

    ``connect``: ``port`` (0: the server's check port), ``send_proxy``. ``send``/``send-binary``:
    ``data`` (the bytes; binary rules are decoded from hex at load time). ``expect``: ``kind``,
    ``pattern`` (text; hex digits for ``binary``, a regex over the hex dump for ``rbinary``),
    ``negated`` (``!``), ``min_recv`` (-1: HAProxy's default, match as soon as possible),
    ``custom`` for ``CUSTOM``, and the status codes and texts HAProxy reports (``error_status``,
    ``ok_status``, ``on_success``, ``on_error``; "" leaves HAProxy's defaults).
    """

    action: TcpCheckAction
    comment: str = ""
    port: int = 0
    send_proxy: bool = False
    data: bytes = b""
    kind: ExpectKind = ExpectKind.STRING
    pattern: str = ""
    negated: bool = False
    min_recv: int = -1
    custom: str = ""
    error_status: str = ""
    ok_status: str = ""
    on_success: str = ""
    on_error: str = ""


class CheckProtocol(enum.Enum):
    """Which ruleset a backend's checks run: the operator's ``tcp-check`` rules, or one of
    HAProxy's protocol checks (each a fixed ruleset, as HAProxy builds them)."""

    TCP_CHECK = "tcp-check"
    REDIS = "redis-check"
    MYSQL = "mysql-check"
    PGSQL = "pgsql-check"
    LDAP = "ldap-check"
    SMTP = "smtpchk"
    SSL_HELLO = "ssl-hello-chk"


@dataclass(frozen=True, slots=True)
class TcpCheck:
    """The active check of a backend's servers when it is not a plain connect or an HTTP
    check: ``steps`` in order (a ruleset without a leading ``connect`` gets HAProxy's implicit
    one)."""

    protocol: CheckProtocol
    steps: tuple[TcpCheckStep, ...]
    location: Location
