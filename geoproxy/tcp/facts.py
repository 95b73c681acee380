"""One TCP connection as ``tcp-request`` rules, ``use_backend`` and ``balance hash`` see it: its
addresses and the bytes received and not yet forwarded (HAProxy's request buffer).

Rules:
1. A fetch answers a value, ``ABSENT`` (no value, whatever comes next) or ``WAIT`` (the bytes
   so far are a prefix of something that may yet hold a value). Once the facts are ``final``
   (``inspect-delay`` over, the client closed, or the buffer full), ``WAIT`` reads as
   ``ABSENT``, as HAProxy drops ``SMP_F_MAY_CHANGE`` on the last evaluation.
2. HTTP fetches (``path``, ``hdr``, ``method``...) read the buffer as an HTTP/1 request head, as
   HAProxy's do in a TCP proxy: a WSGI-like environ once the head is complete.
3. Everything is computed at most once per buffer content (the rules may ask again and again).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from geoproxy.tcp.clienthello import Hello, hello_type, protocols, server_name

BUFFER_SIZE: Final = 16384  # tune.bufsize: a full buffer makes the facts final


class NoValue(enum.Enum):
    ABSENT = "absent"
    WAIT = "wait"


ABSENT: Final = NoValue.ABSENT
WAIT: Final = NoValue.WAIT
_METHOD_CHARS = frozenset(
    b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


@dataclass(slots=True)
class TcpFacts:
    """See the module rules. ``source``/``destination`` are (host, port): the client's and the
    address it connected to (both from the PROXY header with ``accept-proxy``)."""

    source: tuple[str, int]
    destination: tuple[str, int]
    payload: bytes = b""
    final: bool = False
    _cache: dict[str, Any] = field(default_factory=dict)
    # the connection's stick counters (track-sc0/1/2: geoproxy.tcp.counters), and which of
    # them a connection rule started
    stick: list[Any] = field(default_factory=lambda: [None, None, None])
    session_tracked: set[int] = field(default_factory=set)
    # the connection's TLS (geoproxy.rules.fetch_ssl.TlsFacts) once a bind with ssl shook hands
    tls: Any = None

    def received(self, data: bytes) -> None:
        self.payload += data
        self._cache.clear()

    def _remember(self, key: str, value: Any) -> Any:
        self._cache[key] = value
        return value

    def _unless_final(self, value: Any) -> Any:
        return ABSENT if value is WAIT and self.final else value

    def _from_hello(self, key: str, read: Callable[[bytes], Any]) -> Any:
        """What ``read`` finds in the ClientHello (``Hello.INCOMPLETE``: ``WAIT``, any other
        ``Hello``: ``ABSENT``), once per buffer content (rule 3)."""
        cached = self._cache.get(key)
        if cached is None:
            found = read(self.payload)
            if found is Hello.INCOMPLETE:
                cached = WAIT
            elif isinstance(found, Hello):
                cached = ABSENT
            else:
                cached = found
            self._remember(key, cached)
        return self._unless_final(cached)

    def hello_type(self) -> int | NoValue:
        result: int | NoValue = self._from_hello("hello", hello_type)
        return result

    def alpn(self) -> tuple[str, ...] | NoValue:
        """The ALPN protocols the ClientHello offers (``req.ssl_alpn``)."""
        result: tuple[str, ...] | NoValue = self._from_hello("alpn", protocols)
        return result

    def server_name(self) -> str | NoValue:
        result: str | NoValue = self._from_hello("sni", server_name)
        return result

    def payload_slice(self, offset: int, length: int) -> bytes | NoValue:
        """``req.payload(offset,length)``; length 0: everything from ``offset``."""
        end = offset + length if length else len(self.payload)
        if len(self.payload) < max(end, offset + 1):
            return ABSENT if self.final else WAIT
        return self.payload[offset:end]

    def http_request(self) -> dict[str, Any] | NoValue:
        """Rule 2: the environ of the HTTP request head in the buffer."""
        if "http" not in self._cache:
            self._remember("http", _http_head(self.payload, self))
        result: dict[str, Any] | NoValue = self._unless_final(self._cache["http"])
        return result


def _http_head(payload: bytes, facts: TcpFacts) -> dict[str, Any] | NoValue:
    end = payload.find(b"\r\n\r\n")
    if end < 0:
        line_end = payload.find(b"\r\n")
        first = payload if line_end < 0 else payload[:line_end]
        if not _could_be_request_line(first, complete=line_end >= 0):
            return ABSENT
        return WAIT if len(payload) < BUFFER_SIZE else ABSENT
    lines = payload[:end].decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1.") or \
            not _could_be_request_line(lines[0].encode("latin-1"), complete=True):
        return ABSENT
    method, target, version = parts
    path, _, query = target.partition("?")
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method, "RAW_URI": target, "PATH_INFO": path,
        "QUERY_STRING": query, "SERVER_PROTOCOL": version,
        "REMOTE_ADDR": facts.source[0], "REMOTE_PORT": str(facts.source[1]),
        "SERVER_NAME": facts.destination[0], "SERVER_PORT": str(facts.destination[1]),
    }
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon:
            return ABSENT
        key = name.strip().upper().replace("-", "_")
        key = key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else "HTTP_" + key
        value = value.strip()
        environ[key] = f"{environ[key]}, {value}" if key in environ else value
    return environ


def _could_be_request_line(line: bytes, *, complete: bool) -> bool:
    """Whether ``line`` is (or, unless ``complete``, may become) ``METHOD SP TARGET SP ...``."""
    method, space, _ = line.partition(b" ")
    if not method or any(byte not in _METHOD_CHARS for byte in method):
        return not method and not complete
    return bool(space) or not complete
