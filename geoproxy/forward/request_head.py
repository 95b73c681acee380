"""The request head sent to a server, built from the WSGI environ gunicorn made.

Rules:

1. The request line is ``METHOD origin-form HTTP/1.1``. An absolute-form target loses its scheme
   and authority: only configured servers are ever dialled, so the authority never routes
   anything (DESIGN.md invariant 7). ``OPTIONS *`` keeps ``*``. Any other target form (a
   CONNECT authority) is refused with ``UnforwardableRequest``.
2. Header names are lower-cased, as HAProxy 2.x emits them; headers keep the client's order.
3. Hop-by-hop headers (RFC 9110 7.6.1) stop here: Connection, Proxy-Connection, Keep-Alive, TE,
   Transfer-Encoding, Upgrade, and every header the client's Connection names. Expect stops too:
   gunicorn already answered ``100 Continue`` and the body is streamed to the server anyway.
4. Framing is re-done for the server from the client's: ``content-length: N`` when the client
   sent one, ``transfer-encoding: chunked`` when it sent chunked (gunicorn de-chunks
   ``wsgi.input``; the sender re-chunks it; the client's other codings, e.g. ``gzip, chunked``,
   are kept since the bytes still carry them), nothing otherwise.
5. ``cookie`` replaces the Cookie header (in place), removes it (``None``) or keeps it (``KEEP``).
   Repeated Cookie headers arrive joined by gunicorn and leave as that one header.
6. ``append`` headers come after the client's; ``connection: close`` last when ``server_close``.
   An ``upgrade`` request (the client asked to switch protocols and the worker can tunnel)
   keeps its Upgrade header and ends with ``connection: upgrade`` instead (no close: a server
   that does not switch answers a plain response).
7. An HTTP/1.1 request must carry Host (RFC 9112 3.2): a client without one (HTTP/1.0) gets the
   absolute-form authority, or an empty Host.
8. An absolute-form target whose authority is not the Host header's value is refused with
   ``UnforwardableRequest`` (a 400), as HAProxy 2.6 refuses it: they are compared without case,
   without user info, and without the scheme's default port (80 for http, 443 for https).
   Routing reads Host; a request naming two hosts would route by one and mean the other.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final


class Keep(enum.Enum):
    """Type of ``KEEP``: leave the client's Cookie header as it is."""

    KEEP = "keep"


KEEP: Final = Keep.KEEP


class Framing(enum.Enum):
    """How the request body is delimited on the way to the server."""

    NONE = "none"
    LENGTH = "content-length"
    CHUNKED = "chunked"


@dataclass(frozen=True, slots=True)
class BodyFraming:
    """The request body's framing; ``length`` is meaningful for ``Framing.LENGTH`` only."""

    kind: Framing
    length: int = 0

    @property
    def has_body(self) -> bool:
        return self.kind is Framing.CHUNKED or self.length > 0


NO_BODY: Final = BodyFraming(Framing.NONE)
CHUNKED: Final = BodyFraming(Framing.CHUNKED)


class UnforwardableRequest(ValueError):
    """The request cannot be expressed to a server (target form, framing): answer 400."""


# Environ keys that never reach the server as the client sent them (rule 3; Transfer-Encoding
# comes back as our own framing header).
_ALWAYS_DROPPED: Final = frozenset(
    {
        "HTTP_CONNECTION",
        "HTTP_PROXY_CONNECTION",
        "HTTP_KEEP_ALIVE",
        "HTTP_TE",
        "HTTP_TRANSFER_ENCODING",
        "HTTP_UPGRADE",
        "HTTP_EXPECT",
    }
)
_ABSOLUTE_FORM: Final = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://([^/?#]*)(.*)", re.DOTALL)
_DEFAULT_PORTS: Final = {"http": ":80", "https": ":443"}
_TOKEN: Final = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_FIELD_VALUE_FORBIDDEN: Final = re.compile(r"[\x00\r\n]")

_UPGRADE_KEY: Final = frozenset({"HTTP_UPGRADE"})
_SPECIAL_KEYS: Final = frozenset({"HTTP_COOKIE", "HTTP_HOST", "CONTENT_LENGTH", "CONTENT_TYPE"})

# Per-process caches, bounded: clients choose the keys, so a flood of distinct header names or
# Connection values must not grow them without limit. ``_line_prefixes`` maps every environ key
# seen to the start of its header line ("user-agent: "), or to "" for keys that are no header.
_CACHE_LIMIT: Final = 1024
_line_prefixes: dict[str, str] = {}
_connection_drops: dict[str, frozenset[str]] = {}


def build_request_head(
    environ: Mapping[str, Any],
    *,
    cookie: str | None | Keep,
    append: Sequence[tuple[str, str]],
    server_close: bool,
    upgrade: bool = False,
) -> tuple[bytes, BodyFraming]:
    """Return the request head's bytes (ending with the blank line) and the body framing.

    ``environ`` is gunicorn's; ``append`` holds extra headers (e.g. X-Forwarded-For) whose
    names must be tokens and whose values must not contain CR, LF or NUL (``ValueError``).
    Raises ``UnforwardableRequest`` for a target or framing a server cannot be sent.
    ``upgrade``: keep the client's Upgrade header and ask for the switch (rule 6).
    """
    framing = _framing(environ)
    target, authority = _origin_form(environ.get("RAW_URI") or "/")
    if authority is not None and "HTTP_HOST" in environ:
        _check_host(environ["RAW_URI"], environ["HTTP_HOST"])
    dropped = _dropped_keys(environ.get("HTTP_CONNECTION"))
    if upgrade:
        dropped = dropped - _UPGRADE_KEY
    parts = [environ["REQUEST_METHOD"], " ", target, " HTTP/1.1\r\n"]
    cookie_sent = has_host = False
    for key, value in environ.items():
        prefix = _line_prefixes.get(key)
        if prefix is None:
            prefix = _learn_line_prefix(key)
        if not prefix or key in dropped:
            continue
        if key in _SPECIAL_KEYS:
            if key == "HTTP_COOKIE":
                cookie_sent = True
                if cookie is None:
                    continue
                if cookie is not KEEP:
                    value = _checked_value(cookie)
            elif key == "HTTP_HOST":
                has_host = True
            elif key == "CONTENT_LENGTH":
                if framing.kind is not Framing.LENGTH:
                    continue
                value = str(framing.length)
            elif not value:
                continue  # WSGI allows an empty CONTENT_TYPE for "none"
        parts += (prefix, value, "\r\n")
    if not has_host:
        parts.insert(4, f"host: {authority or ''}\r\n")
    if framing.kind is Framing.CHUNKED:
        parts += ("transfer-encoding: ", environ["HTTP_TRANSFER_ENCODING"], "\r\n")
    if isinstance(cookie, str) and not cookie_sent:
        parts += ("cookie: ", _checked_value(cookie), "\r\n")
    _add_own_lines(parts, append, server_close and not upgrade)
    if upgrade:
        parts.insert(-1, "connection: upgrade\r\n")
    return "".join(parts).encode("latin-1"), framing


def _add_own_lines(parts: list[str], append: Sequence[tuple[str, str]], close: bool) -> None:
    for name, value in append:
        if _TOKEN.fullmatch(name) is None:
            raise ValueError(f"invalid header name {name!r}")
        parts += (name.lower(), ": ", _checked_value(value), "\r\n")
    if close:
        parts.append("connection: close\r\n")
    parts.append("\r\n")


def _framing(environ: Mapping[str, Any]) -> BodyFraming:
    transfer_encoding = environ.get("HTTP_TRANSFER_ENCODING")
    if transfer_encoding is not None:
        # gunicorn refuses a request whose last coding is not chunked; refuse it here too in
        # case another server built the environ
        if transfer_encoding.rpartition(",")[2].strip(" \t").lower() != "chunked":
            raise UnforwardableRequest(f"transfer-encoding {transfer_encoding!r}")
        return CHUNKED
    content_length = environ.get("CONTENT_LENGTH")
    if not content_length:
        return NO_BODY
    if not (content_length.isascii() and content_length.isdigit()):
        raise UnforwardableRequest(f"content-length {content_length!r}")
    return BodyFraming(Framing.LENGTH, int(content_length))


def _origin_form(raw_uri: str) -> tuple[str, str | None]:
    """Return (origin-form target, authority of an absolute-form target or None)."""
    if raw_uri[:1] == "/" or raw_uri == "*":
        return raw_uri, None
    match = _ABSOLUTE_FORM.fullmatch(raw_uri)
    if match is None:
        raise UnforwardableRequest(f"request target {raw_uri!r}")
    _scheme, authority, rest = match.groups()
    if rest[:1] != "/":
        rest = "/" + rest
    return rest, authority.rpartition("@")[2]


def _check_host(raw_uri: str, host: str) -> None:
    """Refuse an absolute-form target whose authority is not ``host`` (rule 8)."""
    match = _ABSOLUTE_FORM.fullmatch(raw_uri)
    assert match is not None
    scheme, authority, _ = match.groups()
    default_port = _DEFAULT_PORTS.get(scheme.lower(), "")

    def normal(value: str) -> str:
        value = value.rpartition("@")[2].strip(" \t").lower()
        if default_port and value.endswith(default_port):
            return value[: -len(default_port)]
        return value

    if normal(authority) != normal(host):
        raise UnforwardableRequest(f"host {host!r} is not the target's authority {authority!r}")


def _dropped_keys(connection: str | None) -> frozenset[str]:
    if not connection:
        return _ALWAYS_DROPPED
    dropped = _connection_drops.get(connection)
    if dropped is None:
        named = (token.strip(" \t") for token in connection.split(","))
        dropped = _ALWAYS_DROPPED.union(
            "HTTP_" + token.upper().replace("-", "_") for token in named if token
        )
        if len(_connection_drops) < _CACHE_LIMIT:
            _connection_drops[connection] = dropped
    return dropped


def _learn_line_prefix(key: str) -> str:
    if key[:5] == "HTTP_":
        prefix = key[5:].lower().replace("_", "-") + ": "
    elif key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        prefix = key.lower().replace("_", "-") + ": "
    else:
        prefix = ""
    if len(_line_prefixes) < _CACHE_LIMIT:
        _line_prefixes[key] = prefix
    return prefix


def _checked_value(value: str) -> str:
    if _FIELD_VALUE_FORBIDDEN.search(value) is not None:
        raise ValueError(f"header value with CR, LF or NUL: {value!r}")
    return value
