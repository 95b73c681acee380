"""A server's response: its head, parsed strictly, and its body, streamed.

Rules:

1. The head is parsed strictly and anything invalid is a ``BadResponse`` (502): the status line
   is ``HTTP/1.0`` or ``HTTP/1.1``, a 3-digit status in 100..599 and an optional reason; header
   names are tokens; values hold no control character but HTAB (so no NUL, CR, LF: gunicorn
   would refuse to send such a value to the client anyway); obs-fold is refused; lines end with
   CRLF; the head fits in the connection's buffer (16 KiB, HAProxy's default tune.bufsize).
2. Body framing (RFC 9112 6.3): none for responses to HEAD, for 1xx, 204 and 304; else chunked
   when Transfer-Encoding ends with chunked (decoded here); else until the server closes when
   Transfer-Encoding is present; else Content-Length (repeated values must agree); else until
   close. Transfer-Encoding wins over Content-Length, and such a connection is not reused.
3. The headers handed on are the server's, in order and case, minus hop-by-hop ones
   (Connection, Keep-Alive, Proxy-Connection, TE, Transfer-Encoding, Upgrade, and those named by
   Connection; a 101 keeps Connection and Upgrade, which describe the switch). Content-Length
   is kept, once, when it frames the body or describes a HEAD/304 response; never with
   Transfer-Encoding.
4. A connection is reused only when the whole request was sent, the whole body was read, no
   byte follows it, and the server keeps the connection alive (HTTP/1.1 without
   ``Connection: close``, or HTTP/1.0 with ``Connection: keep-alive``).
5. A 101 (Switching Protocols) keeps its connection out of the pool for good: ``detach`` hands
   it to whoever tunnels the new protocol, with the bytes the server sent after the head.
6. ``timeout server`` is an inactivity timeout: it applies to each read, so a server that stalls
   between two body reads raises ``ServerTimeout``; one that closes mid-body ``BadResponse``.
"""

from __future__ import annotations

import enum
import re
import socket
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import Final

from geoproxy.errors import BadResponse, ServerTimeout
from geoproxy.forward.pool import Connection, ServerPool

# Largest body chunk handed to the caller, and largest recv() for a body.
CHUNK_SIZE: Final = 65536
# A chunk-size line (with its extensions) or a trailer line must fit in this.
_MAX_LINE: Final = 4096
_MAX_TRAILER_LINES: Final = 100

# Heads are decoded as latin-1 (each byte one character) and checked whole, in C: the status
# line then every header line; a second pass extracts the fields.
_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_TEXT = r"[\t\x20-\x7e\x80-\xff]*"
_STATUS_LINE: Final = re.compile(rf"HTTP/1\.([01]) ([1-5][0-9]{{2}})(?: ({_TEXT}))?")
_HEAD: Final = re.compile(rf"{_STATUS_LINE.pattern}((?:\r\n{_TOKEN}:{_TEXT})*)")
# Fields of a head _HEAD accepted (so names are tokens, values text): the value keeps its
# trailing whitespace, stripped by the caller (a backtracking-free pattern: twice as fast).
_FIELD: Final = re.compile(r"\r\n([^:]+):[ \t]*([^\r]*)")
_FIELD_LINE: Final = re.compile(rf"{_TOKEN}:{_TEXT}")
_CHUNK_SIZE_LINE: Final = re.compile(rb"([0-9A-Fa-f]{1,15})[ \t]*(?:;[\t\x20-\x7e\x80-\xff]*)?")
_DIGITS: Final = re.compile(r"[0-9]+")

_FRAMING_OR_HOP_BY_HOP: Final = frozenset(
    {
        "content-length",
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "transfer-encoding",
        "upgrade",
    }
)
_KEPT_BY_101: Final = frozenset({"connection", "upgrade"})
_NO_BODY_STATUSES: Final = frozenset({204, 304})


class ServerClosed(Exception):
    """The server closed (or reset) the connection before sending a byte of the response."""


class BodyKind(enum.Enum):
    NONE = "none"
    LENGTH = "content-length"
    CHUNKED = "chunked"
    CLOSE = "until-close"


@dataclass(frozen=True, slots=True)
class ResponseHead:
    """A parsed response head; ``length`` is meaningful for ``BodyKind.LENGTH`` only."""

    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: BodyKind
    length: int
    keep_alive: bool
    http11: bool = True  # HTTP/1.1, not HTTP/1.0

    @property
    def is_interim(self) -> bool:
        """1xx responses other than 101 precede the final response."""
        return self.status < 200 and self.status != 101


def read_head(conn: Connection) -> bytes:
    """Receive one response head; return it without its final blank line.

    Raises ``ServerClosed`` when the connection ends before any byte, ``BadResponse`` when it
    ends inside the head or the head does not fit the buffer, ``ServerTimeout`` on timeout.
    """
    scanned = 0
    while True:
        found = conn.buf.find(b"\r\n\r\n", conn.start + max(scanned - 3, 0), conn.end)
        if found >= 0:
            head = bytes(conn.view[conn.start : found])
            conn.start = found + 4
            return head
        scanned = conn.buffered
        try:
            received = conn.fill()
        except BufferError:
            raise BadResponse("response head too large") from None
        except TimeoutError:
            raise ServerTimeout("timeout server waiting for the response head") from None
        except OSError as exc:
            received = 0
            if scanned == 0:
                raise ServerClosed(str(exc)) from exc
        if received == 0:
            if scanned == 0:
                raise ServerClosed("connection closed before the response")
            raise BadResponse("connection closed inside the response head")


# Per-process cache of parsed heads: a server answers most requests with the same head bytes
# within a second (only Date changes, once a second), and parsing costs ~15 us a head where a
# hit costs ~2. Bounded (emptied when full; only heads up to 2 KB): servers whose heads are
# all different only pay a dictionary miss. Entries hold the headers as a tuple; each hit
# gets its own list.
_HEAD_CACHE_LIMIT: Final = 256
_HEAD_CACHE_BYTES: Final = 2048  # larger heads are not kept: the cache stays under 0.6 MB
_CachedHead = tuple[int, str, tuple[tuple[str, str], ...], "BodyKind", int, bool, bool]
_parsed_heads: dict[tuple[bytes, bool], _CachedHead] = {}


def parse_head(head: bytes, *, is_head: bool) -> ResponseHead:
    """Parse a response head (as ``read_head`` returns it) by the module rules."""
    key = (head, is_head)
    known = _parsed_heads.get(key)
    if known is not None:
        status, reason, fields, body, length, keep_alive, http11 = known
        return ResponseHead(status, reason, list(fields), body, length, keep_alive, http11)
    parsed = _parse_head(head, is_head)
    if len(head) > _HEAD_CACHE_BYTES:
        return parsed
    if len(_parsed_heads) >= _HEAD_CACHE_LIMIT:
        _parsed_heads.clear()
    _parsed_heads[key] = (
        parsed.status,
        parsed.reason,
        tuple(parsed.headers),
        parsed.body,
        parsed.length,
        parsed.keep_alive,
        parsed.http11,
    )
    return parsed


def _parse_head(head: bytes, is_head: bool) -> ResponseHead:
    text = head.decode("latin-1")
    matched = _HEAD.fullmatch(text)
    if matched is None:
        raise BadResponse(_diagnosis(text))
    minor, status_digits, reason, fields = matched.groups()
    status = int(status_digits)
    headers: list[tuple[str, str]] = []
    tokens: set[str] = set()
    codings: list[str] = []
    lengths: list[str] = []
    length_at = -1
    kept = _KEPT_BY_101 if status == 101 else frozenset()
    for field in _FIELD.findall(fields):
        value = field[1]
        if value[-1:] in (" ", "\t"):
            value = value.rstrip(" \t")
            field = (field[0], value)
        lowered = field[0].lower()
        if lowered not in _FRAMING_OR_HOP_BY_HOP:
            headers.append(field)
            continue
        if lowered == "content-length":
            if length_at < 0:
                length_at = len(headers)
                headers.append(field)
            lengths += value.split(",")
        elif lowered == "transfer-encoding":
            codings += (coding.strip(" \t").lower() for coding in value.split(","))
        elif lowered == "connection":
            if "," in value:
                tokens.update(token.strip(" \t").lower() for token in value.split(","))
            else:
                tokens.add(value.lower())
        if lowered in kept:
            headers.append(field)
    body, length = _body_framing(status, is_head, codings, lengths)
    named = tokens - {"close", "keep-alive"} - kept
    headers = _handed_on(headers, length_at, length if not codings else -1, named)
    keep_alive = ("close" not in tokens) if minor == "1" else ("keep-alive" in tokens)
    if body is BodyKind.CLOSE or status == 101 or (codings and (lengths or minor == "0")):
        keep_alive = False
    return ResponseHead(status, reason or "", headers, body, length, keep_alive, minor == "1")


def _handed_on(
    headers: list[tuple[str, str]], length_at: int, length: int, named: set[str]
) -> list[tuple[str, str]]:
    """Settle the Content-Length header at ``length_at`` (its one value, or none when
    ``length`` is -1) and drop the headers the server's Connection ``named``."""
    if length_at >= 0:
        if length < 0:
            del headers[length_at]
        else:
            headers[length_at] = (headers[length_at][0], str(length))
    if named:
        headers = [header for header in headers if header[0].lower() not in named]
    return headers


def _diagnosis(text: str) -> str:
    """Say what is wrong with a head ``_HEAD`` refused (the slow path, for the log)."""
    lines = text.split("\r\n")
    if _STATUS_LINE.fullmatch(lines[0]) is None:
        return f"invalid status line {lines[0][:100]!r}"
    bad = next((line for line in lines[1:] if _FIELD_LINE.fullmatch(line) is None), "")
    return f"invalid header line {bad[:100]!r}"


def _body_framing(
    status: int, is_head: bool, codings: list[str], lengths: list[str]
) -> tuple[BodyKind, int]:
    length = -1
    if lengths and not codings:
        if len(lengths) == 1:
            value = lengths[0].strip(" \t")
        else:
            values = {value.strip(" \t") for value in lengths}
            if len(values) != 1:
                raise BadResponse(f"conflicting content-length values {sorted(values)!r}")
            value = values.pop()
        if _DIGITS.fullmatch(value) is None:
            raise BadResponse(f"invalid content-length {value!r}")
        length = int(value)
    if is_head or status < 200 or status in _NO_BODY_STATUSES:
        return BodyKind.NONE, max(length, 0)
    if codings:
        if codings.count("chunked") > 1:
            raise BadResponse("chunked applied twice")
        return (BodyKind.CHUNKED if codings[-1] == "chunked" else BodyKind.CLOSE), 0
    if length >= 0:
        return BodyKind.LENGTH, length
    return BodyKind.CLOSE, 0


class UpstreamResponse:
    """The server's final response; iterate it for the body, then ``close()`` it.

    Iterating yields the body in chunks of at most ``CHUNK_SIZE`` bytes and raises
    ``BadResponse`` or ``ServerTimeout`` if the server fails mid-body (the connection is then
    closed). The body can be iterated once. ``close()`` is idempotent: the connection goes back
    to the pool if it is reusable and the body was read to its end (this already happens as
    the last body byte arrives), and is closed otherwise.
    """

    __slots__ = (
        "status", "reason", "headers", "connected_at", "_pool", "_conn", "_body", "_length",
        "_reusable", "http11", "known_length",
    )  # fmt: skip

    def __init__(
        self, pool: ServerPool, conn: Connection, head: ResponseHead, *, request_complete: bool
    ) -> None:
        self.status = head.status
        self.reason = head.reason
        self.headers = head.headers
        self.http11 = head.http11
        # the body's end is known before the connection closes (Content-Length or chunked)
        self.known_length = head.body is BodyKind.LENGTH or head.body is BodyKind.CHUNKED
        self.connected_at = 0.0  # time.monotonic() when the connection was ready (the log's Tc)
        self._pool = pool
        self._conn: Connection | None = conn
        self._body: BodyKind | None = head.body
        self._length = head.length
        self._reusable = head.keep_alive and request_complete
        if head.status == 101:
            self._body = None  # no body: what follows is the new protocol's (rule 5)
        elif head.body is BodyKind.NONE:
            self._finish()

    def __iter__(self) -> Iterator[bytes]:
        body, self._body = self._body, None
        conn = self._conn
        if body is None or conn is None:
            return
        try:
            if body is BodyKind.LENGTH:
                yield from self._length_body(conn, self._length)
            elif body is BodyKind.CHUNKED:
                yield from self._chunked_body(conn)
            else:
                yield from self._until_close_body(conn)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def detach(self) -> tuple[socket.socket, bytes]:
        """A 101's connection, for a tunnel (rule 5): its socket, which the caller now owns
        and must close, and the bytes already received after the head. Raises ValueError when
        the response is not a 101 or was closed."""
        conn, self._conn = self._conn, None
        if conn is None or self.status != 101:
            if conn is not None:
                conn.close()
            raise ValueError("only a 101 response still open hands its connection over")
        return conn.sock, conn.take(conn.buffered)

    def _finish(self) -> None:
        """The body was read to its end: give the connection back, or close it (rule 4)."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if self._reusable:
            self._pool.release(conn)
        else:
            conn.close()

    def _length_body(self, conn: Connection, remaining: int) -> Iterator[bytes]:
        if conn.buffered or not remaining:
            data = conn.take(remaining)
            remaining -= len(data)
            if not remaining:
                self._finish()
            if data:
                yield data
        while remaining:
            data = _recv(conn, min(remaining, CHUNK_SIZE))
            if not data:
                raise BadResponse(f"connection closed {remaining} bytes before the body's end")
            remaining -= len(data)
            if not remaining:
                self._finish()
            yield data

    def _chunked_body(self, conn: Connection) -> Iterator[bytes]:
        # Chunk data already in the buffer is gathered into ``pending`` and handed out in one
        # piece before the next wait for the server: small chunks do not become small writes.
        pending: list[bytes] = []
        while True:
            line = yield from _line(conn, pending)
            size_line = _CHUNK_SIZE_LINE.fullmatch(line)
            if size_line is None:
                raise BadResponse(f"invalid chunk size line {line[:100]!r}")
            size = int(size_line[1], 16)
            if size == 0:
                break
            while size:
                if conn.buffered:
                    data = conn.take(size)
                    pending.append(data)
                else:
                    if pending:
                        yield b"".join(pending)
                        pending.clear()
                    data = _recv(conn, min(size, CHUNK_SIZE))
                    if not data:
                        raise BadResponse("connection closed inside a chunk")
                    yield data
                size -= len(data)
            if (yield from _line(conn, pending)):
                raise BadResponse("chunk data not followed by CRLF")
        for _ in range(_MAX_TRAILER_LINES):
            if not (yield from _line(conn, pending)):
                break
        else:
            raise BadResponse("too many trailer lines")
        self._finish()
        if pending:
            yield b"".join(pending)

    def _until_close_body(self, conn: Connection) -> Iterator[bytes]:
        if conn.buffered:
            yield conn.take(conn.buffered)
        while True:
            data = _recv(conn, CHUNK_SIZE)
            if not data:
                self._finish()
                return
            yield data


def _line(conn: Connection, pending: list[bytes]) -> Generator[bytes, None, bytes]:
    """Return the next CRLF-ended line of a chunked body, first handing out ``pending``
    if the server must be waited for."""
    while True:
        found = conn.buf.find(b"\r\n", conn.start, conn.end)
        if found >= 0:
            line = bytes(conn.view[conn.start : found])
            conn.start = found + 2
            return line
        if conn.buffered > _MAX_LINE:
            raise BadResponse("chunk size or trailer line too long")
        if pending:
            yield b"".join(pending)
            pending.clear()
        if _fill(conn) == 0:
            raise BadResponse("connection closed inside a chunked body")


def _recv(conn: Connection, size: int) -> bytes:
    try:
        return conn.recv(size)
    except TimeoutError:
        raise ServerTimeout("timeout server inside the response body") from None
    except OSError as exc:
        raise BadResponse(f"connection failed inside the response body: {exc}") from exc


def _fill(conn: Connection) -> int:
    try:
        return conn.fill()
    except TimeoutError:
        raise ServerTimeout("timeout server inside the response body") from None
    except OSError as exc:
        raise BadResponse(f"connection failed inside the response body: {exc}") from exc
